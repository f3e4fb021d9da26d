"""Checks that refuse a setting before any work starts, naming the setting, what is wrong with it
and the fix, instead of failing deep into a run (a gated base model used to fail in the tokenizer
asset after the whole pool was ingested; a quantized one at its first fine-tuning step).

`refusals` runs every check over the settings as plain values (the Dagster resources are passed in
duck-typed): the pool is readable and of a known format; the base model's config and tokenizer load
(a Hub failure says "gated", "offline" or "not found"), in safetensors unless pickles are admitted;
the eval tasks are well formed and harness tasks known and loadable; every harness item fits the
model's context (an answer that cannot fit is refused with task, item and fix; contexts the harness
will cut are reported, and counted per task in every eval report); the grid is usable; the storage
root is writable with free disk for the estimated footprint. Nothing is written but a probe file,
removed at once. The command line runs it before any run, and every stage job's executor before its
first step (runs.py), once per settings (`settings_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from selection_assets.core import weights

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


@dataclass(frozen=True)
class Refusal:
    """One setting refused: which (with its variable), why, and how to fix it."""

    setting: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}. Fix: {self.fix}"


class PreflightFailed(ValueError):
    """Settings refused before any work; `refusals` says which and why."""

    def __init__(self, refusals: Sequence[Refusal]):
        self.refusals = list(refusals)
        super().__init__("refused before any work:\n" + "\n".join(f"  - {r}" for r in self.refusals))


def base_model_problem(name_or_path: str, allow_pickle: bool = False) -> str | None:
    """Why `name_or_path` cannot serve as a base model to fine-tune in full, or None if it can:
    its config must load, name a causal-LM architecture, carry no quantization, and a local
    directory must hold weights, in safetensors unless `allow_pickle` (core/weights.py)."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        return f"its config cannot be loaded: {hub_failure(error)}"
    quantization = getattr(config, "quantization_config", None)
    if quantization:
        method = (quantization.get("quant_method") if isinstance(quantization, dict)
                  else getattr(quantization, "quant_method", None)) or "unknown method"
        return (f"it is quantized ({method}); full fine-tuning needs float weights: load it, dequantise it and "
                f"save_pretrained a float copy, then name that copy")
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        return f"its model type {config.model_type!r} is not a causal LM transformers can load for generation"
    local = Path(name_or_path)
    if local.is_dir() and not any(next(local.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        return f"the directory holds no weights ({', '.join(WEIGHT_PATTERNS)})"
    if local.is_dir() and not allow_pickle and not next(local.glob("*.safetensors"), None):
        return (f"the directory holds pickled weights only, which can run code when loaded: convert them to "
                f"safetensors, or if you trust their author set {weights.OPT_IN}")
    return None


def hub_failure(error: BaseException) -> str:
    """A loading error as people act on it: "gated", "offline" or "not found" first when the Hub
    (or the lack of it) is the cause, then the library's own message's first line."""
    from huggingface_hub import errors as hub

    chain, cause = [], error
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(e) for e in chain).lower()
    first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    if any(isinstance(e, hub.GatedRepoError) for e in chain) or "gated repo" in text:
        return f"gated: accept its licence on the Hub and log in (HF_TOKEN or `hf auth login`) ({first})"
    offline = (hub.OfflineModeIsEnabled, hub.LocalEntryNotFoundError)
    if any(isinstance(e, offline) for e in chain) or "offline" in text or "couldn't connect" in text:
        return f"offline: it is not in the local Hugging Face cache and the Hub cannot be reached ({first})"
    if any(isinstance(e, hub.RepositoryNotFoundError) for e in chain) or "not a valid model identifier" in text \
            or "does not appear to have" in text or "no such file" in text:
        return f"not found: no such local path or Hub repository ({first})"
    return first


def model_refusals(setting: str, name: str, allow_pickle: bool) -> list[Refusal]:
    """The base model `name` (a local directory or Hub name) that `setting` names: its config and
    tokenizer load, and it can be fine-tuned."""
    from transformers import AutoTokenizer

    refusals = []
    problem = base_model_problem(name, allow_pickle)
    if problem:
        refusals.append(Refusal(setting, f"{name!r} cannot be fine-tuned: {problem}",
                                "name a local directory or Hub causal LM that loads (see the reason above)"))
        return refusals
    try:
        AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        refusals.append(Refusal(setting, f"the tokenizer of {name!r} cannot be loaded: {hub_failure(error)}",
                                "name a model whose tokenizer is in the same directory or repository"))
    return refusals


def pool_refusals(setting: str, pool: str, source: str) -> list[Refusal]:
    """The pool (`source`, its file or name): a known format, present and readable."""
    from selection_assets.core import readers

    if pool == "world":
        return []
    path = Path(source)
    suffix, compression = readers.source_format(path)
    known = (*readers.TEXT_SUFFIXES, ".parquet")
    if path.is_dir():
        if not (path / "dataset_info.json").exists() and not (path / "state.json").exists():
            return [Refusal(setting, f"{path} is a directory but not one `datasets.save_to_disk` wrote",
                            "name a .jsonl/.json/.parquet file, a save_to_disk directory or a dataset name")]
        return []
    if suffix in known or compression:
        if compression and suffix not in readers.TEXT_SUFFIXES:
            return [Refusal(setting, f"{path}: a compressed pool must be .jsonl or .json inside, not {suffix or 'none'}",
                            "decompress it, or compress the JSON lines or JSON array itself")]
        if not path.is_file():
            return [Refusal(setting, f"no pool file at {path}", "check the path (relative paths start in the "
                                                                "directory the command runs in)")]
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as error:
            return [Refusal(setting, f"{path} cannot be read ({error.strerror})", "give this user read access")]
        return []
    if path.suffix or "/" in source and not source.count("/") == 1:
        return [Refusal(setting, f"{source!r} is neither a pool file of a known format ({', '.join(known)}, "
                                 "optionally compressed) nor a Hugging Face dataset name",
                        "name a .jsonl/.json/.parquet file, a save_to_disk directory or a dataset name")]
    return []  # a Hugging Face dataset name: its loader says what is wrong when the pool is read


def storage_refusals(setting: str, root: Path, footprint_bytes: int) -> list[Refusal]:
    """The storage root: writable (a probe file, removed at once) with free disk for the footprint."""
    root = Path(root)
    existing = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".preflight-", suffix=".tmp"):
            pass
    except OSError as error:
        return [Refusal(setting, f"{existing} is not writable ({error.strerror})",
                        "give this user write access or point it at another directory")]
    free = shutil.disk_usage(existing).free
    if footprint_bytes > free:
        return [Refusal(setting, f"about {footprint_bytes / 2**30:.1f} GiB are needed (estimated: source copy, "
                                 f"embeddings, checkpoints) and {free / 2**30:.1f} GiB are free on {existing}",
                        "free disk, choose a smaller grid or fewer methods/seeds, or point it at a larger volume")]
    return []


def footprint(source_bytes: int, largest_pool: int, hidden_size: int, parameters: int, checkpoints: int,
              embedding_spaces: int = 3) -> int:
    """Estimated bytes the experiment writes: the source twice (arrival order, then shuffled), each
    embedding space's float32 vectors of the largest pool, and every checkpoint's float32 weights."""
    return 2 * source_bytes + embedding_spaces * largest_pool * hidden_size * 4 + checkpoints * parameters * 4


def encode_pair_with(tokenizer):
    """The harness's `_encode_pair` over a plain tokenizer (as HFLM tokenises with no BOS added)."""
    from types import SimpleNamespace

    from lm_eval.api.model import TemplateLM

    shim = SimpleNamespace(backend="causal", tok_encode=lambda text, **_: tokenizer.encode(text, add_special_tokens=False))
    return (lambda context, continuation: TemplateLM._encode_pair(shim, context, continuation),
            lambda text: tokenizer.encode(text, add_special_tokens=False))


def settings_key(values: dict[str, Any]) -> str:
    """A digest of the settings a preflight passed under: passing once, it need not run again."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def remember_pass(directory: Path, key: str) -> None:
    """Record that the settings `key` passed (read by `passed`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / key).touch()


def passed(directory: Path, key: str) -> bool:
    """Whether settings `key` already passed a preflight under this storage root."""
    return (Path(directory) / key).exists() and os.access(directory, os.W_OK)
