"""LESS (Xia, Malladi et al. 2024) gradient features, following princeton-nlp/LESS.

1. Warm-up (less/scripts/train/warmup_lora_train.sh, base_training_args.sh): LoRA (rank 128,
   alpha 512, dropout 0.1 on q/k/v/o projections) fine-tuned on a random 5% of the pool for 4
   epochs, learning rate 2e-5, linear schedule with 3% warm-up, batch 32; after each epoch the LoRA
   weights, Adam's moments (exp_avg, exp_avg_sq) and the epoch's mean learning rate are kept.
2. Features (less/data_selection/collect_grad_reps.py), per checkpoint, one example at a time (the
   loss is the mean CE of its assistant tokens): the LoRA gradient g; for pool examples the Adam
   update of one more step, m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2, g <- m' / sqrt(v' + eps)
   (b1 0.9, b2 0.999, eps 1e-8, no bias correction: obtain_gradients_with_adam); for queries the
   plain gradient ("sgd"). Each is projected by a seeded Rademacher matrix (trak's projector, 8,192
   dims) and L2-normalised (merge_and_normalize_info).
3. Checkpoints combine (less/data_selection/matching.py) as sum_i w_i cos_i with w_i the epochs'
   mean learning rates rescaled to sum 1. Stored here as one vector per example, the concatenation
   of sqrt(w_i) * unit feature_i: the dot product of two such vectors is exactly that weighted sum,
   and each vector has unit norm, so the embedding machinery (shards, similarity) serves it as is.

Departures, named: gradients are projected in float32 (LESS casts them to float16 first), and the
Rademacher matrix is this module's own seeded one (trak's fast_jl kernels are CUDA only), so
features match LESS's procedure, not its bits.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from selection_assets.core import store
from selection_assets.core.progress import Progress

ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8  # hard-coded in LESS's obtain_gradients_with_adam
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class LessSettings:
    """Warm-up and feature settings; the defaults are LESS's (for a 7B model)."""

    lora_rank: int = 128
    lora_alpha: int = 512
    lora_dropout: float = 0.1
    epochs: int = 4
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.03
    batch_size: int = 32
    warmup_fraction: float = 0.05  # of the pool, drawn at random
    projection_dim: int = 8192
    projection_seed: int = 0
    max_length: int = 2048
    seed: int = 0


def lora_model(model, settings: LessSettings):
    """`model` wrapped with LESS's LoRA adapters (only they require gradients)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The LoRA parameters, by name, in the model's own order (the layout of every feature)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def warm_up(model, tokenizer, examples: list[dict], settings: LessSettings, out_dir: Path, device: str,
            log: Callable[[str], None] | None = None) -> dict:
    """LoRA warm-up on `examples` (input_ids/labels dicts); writes, per epoch, `checkpoint-<e>/` with
    the LoRA weights and Adam moments (safetensors), and a manifest with each epoch's mean learning
    rate. Returns the manifest."""
    from safetensors.torch import save_file
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback, set_seed

    from selection_assets.core.train import IGNORE_INDEX, ListDataset, training_arguments

    if not examples:
        raise ValueError("LESS warm-up has no examples")
    set_seed(settings.seed)
    model = lora_model(model, settings)
    named = trainable_parameters(model)
    out_dir = Path(out_dir)
    work_dir = store.temp_dir_beside(out_dir)
    checkpoints: list[dict] = []

    class KeepEpochState(TrainerCallback):
        """Saves LoRA weights and Adam moments at each epoch's end; tracks the learning rates used."""

        def __init__(self):
            self.rates: list[float] = []

        def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            self.rates.append(float(lr_scheduler.get_last_lr()[0]))

        def on_epoch_end(self, args, state, control, optimizer=None, **kwargs):
            epoch = len(checkpoints) + 1
            directory = work_dir / f"checkpoint-{epoch}"
            directory.mkdir()
            save_file({name: p.detach().float().cpu().contiguous() for name, p in named},
                      str(directory / "lora.safetensors"))
            moments = {}
            for name, p in named:
                state_of = optimizer.state[p]
                moments[f"exp_avg::{name}"] = state_of["exp_avg"].float().cpu().contiguous()
                moments[f"exp_avg_sq::{name}"] = state_of["exp_avg_sq"].float().cpu().contiguous()
            save_file(moments, str(directory / "adam_moments.safetensors"))
            checkpoints.append({"epoch": epoch, "directory": directory.name, "steps": int(state.global_step),
                                "mean_learning_rate": float(np.mean(self.rates)) if self.rates else 0.0})
            self.rates = []

    args = training_arguments(work_dir / "trainer", epochs=settings.epochs, learning_rate=settings.learning_rate,
                              batch_size=settings.batch_size, warmup_ratio=settings.warmup_ratio,
                              weight_decay=0.0, seed=settings.seed, device=device, n_examples=len(examples),
                              scheduler="linear")
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    trainer = Trainer(model=model, args=args, train_dataset=ListDataset(examples), data_collator=collator,
                      callbacks=[KeepEpochState()])
    trainer.remove_callback(PrinterCallback)
    began = time.perf_counter()
    result = trainer.train()
    manifest = {"checkpoints": checkpoints, "settings": asdict(settings), "examples": len(examples),
                "trainable_parameters": int(sum(p.numel() for _, p in named)),
                "train_loss": float(result.training_loss), "seconds": time.perf_counter() - began,
                "tokens": int(sum(len(e["input_ids"]) for e in examples) * settings.epochs)}
    if log:
        log(f"LESS warm-up: {len(examples)} examples, {len(checkpoints)} checkpoints, "
            f"{manifest['seconds']:.0f} s")
    store.write_json(manifest, work_dir / "manifest.json")
    shutil.rmtree(work_dir / "trainer", ignore_errors=True)
    store.replace_dir(work_dir, out_dir)
    return manifest


def checkpoint_weights(manifest: dict) -> np.ndarray:
    """Each checkpoint's weight: its epoch's mean learning rate, rescaled to sum to 1 (matching.py)."""
    rates = np.array([c["mean_learning_rate"] for c in manifest["checkpoints"]], dtype=np.float64)
    if not len(rates) or rates.sum() <= 0:
        raise ValueError("the LESS warm-up recorded no learning rates")
    return rates / rates.sum()


def adam_direction(gradient: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor) -> torch.Tensor:
    """LESS's Adam feature: one more Adam step's update from the warm-up moments, no bias correction,
    eps inside the square root (obtain_gradients_with_adam)."""
    updated_avg = ADAM_BETA1 * exp_avg + (1 - ADAM_BETA1) * gradient
    updated_avg_sq = ADAM_BETA2 * exp_avg_sq + (1 - ADAM_BETA2) * gradient**2
    return updated_avg / torch.sqrt(updated_avg_sq + ADAM_EPS)


PROJECTION_BLOCK_ROWS = 4096


def rademacher_block(block: int, rows: int, dim: int, seed: int) -> torch.Tensor:
    """Rows [block * PROJECTION_BLOCK_ROWS, +rows) of the seeded (n_parameters, dim) +-1 matrix."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + block)
    return torch.randint(0, 2, (rows, dim), generator=generator).mul_(2).sub_(1).to(torch.float32)


class RademacherProjector:
    """x -> x R / sqrt(dim) for a seeded Rademacher R, generated in blocks of parameter rows (kept
    in memory when the whole matrix fits in `cache_bytes`)."""

    def __init__(self, n_parameters: int, dim: int, seed: int, cache_bytes: int = 1 << 29):
        self.n_parameters, self.dim, self.seed = n_parameters, dim, seed
        self._blocks = math.ceil(n_parameters / PROJECTION_BLOCK_ROWS)
        self._cache = ([self._block(b) for b in range(self._blocks)]
                       if n_parameters * dim * 4 <= cache_bytes else None)

    def _block(self, block: int) -> torch.Tensor:
        rows = min(PROJECTION_BLOCK_ROWS, self.n_parameters - block * PROJECTION_BLOCK_ROWS)
        return rademacher_block(block, rows, self.dim, self.seed)

    def matrix(self) -> torch.Tensor:
        """The whole (n_parameters, dim) matrix (for tests and small models)."""
        return torch.cat([self._block(b) for b in range(self._blocks)])

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, n_parameters) float32 on CPU -> (B, dim)."""
        out = torch.zeros(vectors.shape[0], self.dim, dtype=torch.float32)
        for block in range(self._blocks):
            matrix = self._cache[block] if self._cache is not None else self._block(block)
            start = block * PROJECTION_BLOCK_ROWS
            out += vectors[:, start : start + matrix.shape[0]] @ matrix
        return out / math.sqrt(self.dim)


def load_checkpoint(model, named: list[tuple[str, torch.nn.Parameter]], directory: Path
                    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Load a warm-up checkpoint's LoRA weights into `model`; return its Adam moments by name."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(directory) / "lora.safetensors"))
    moments = load_file(str(Path(directory) / "adam_moments.safetensors"))
    with torch.no_grad():
        for name, p in named:
            p.copy_(weights[name].to(p.device, p.dtype))
    device = named[0][1].device
    return {name: (moments[f"exp_avg::{name}"].to(device), moments[f"exp_avg_sq::{name}"].to(device))
            for name, _ in named}


def example_gradient(model, named, example: dict, device: str) -> torch.Tensor | None:
    """The flattened LoRA gradient of one example's mean answer-token loss (None without answer tokens)."""
    labels = torch.as_tensor([example["labels"]], device=device)
    if not bool((labels[:, 1:] != -100).any()):
        return None
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=torch.as_tensor([example["input_ids"]], device=device), labels=labels).loss
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for _, p in named])


class GradientFeaturizer:
    """LESS features from one base model and its warm-up checkpoints (LoRA layers are injected into
    `model` once; each call loads the checkpoints in turn)."""

    def __init__(self, model, warmup_dir: Path, device: str = "cpu"):
        self.warmup_dir = Path(warmup_dir)
        self.manifest = store.read_json(self.warmup_dir / "manifest.json")
        self.settings = LessSettings(**self.manifest["settings"])
        self.weights = checkpoint_weights(self.manifest)
        self.device = device
        self.model = lora_model(model, self.settings).to(device)
        self.model.eval()  # LESS computes gradients with dropout off
        self.named = trainable_parameters(self.model)
        self.projector = RademacherProjector(sum(p.numel() for _, p in self.named), self.settings.projection_dim,
                                             self.settings.projection_seed)

    @property
    def dim(self) -> int:
        """Length of one feature vector: the projection times the checkpoints."""
        return self.settings.projection_dim * len(self.weights)

    def features(self, examples: Sequence[dict], *, optimizer_aware: bool, batch: int = 32,
                 log: Callable[[str], None] | None = None, label: str = "LESS gradients") -> np.ndarray:
        """Float32 (N, dim) unit rows of `examples` (input_ids/labels dicts): Adam directions when
        `optimizer_aware` (pool examples), plain gradients otherwise (queries). An example with no
        answer token left after truncation gets a zero row."""
        dim = self.settings.projection_dim
        out = np.zeros((len(examples), self.dim), dtype=np.float32)
        progress = Progress(label, len(examples) * len(self.weights), log, unit="gradients") if log else None
        for position, (checkpoint, weight) in enumerate(zip(self.manifest["checkpoints"], self.weights)):
            moments = load_checkpoint(self.model, self.named, self.warmup_dir / checkpoint["directory"])
            exp_avg = torch.cat([moments[name][0].reshape(-1) for name, _ in self.named])
            exp_avg_sq = torch.cat([moments[name][1].reshape(-1) for name, _ in self.named])
            for begin in range(0, len(examples), batch):
                rows, vectors = [], []
                for row in range(begin, min(begin + batch, len(examples))):
                    gradient = example_gradient(self.model, self.named, examples[row], self.device)
                    if gradient is not None:
                        if optimizer_aware:
                            gradient = adam_direction(gradient, exp_avg, exp_avg_sq)
                        rows.append(row)
                        vectors.append(gradient.float().cpu())
                if vectors:
                    projected = torch.nn.functional.normalize(self.projector.project(torch.stack(vectors)), dim=1)
                    out[rows, position * dim : (position + 1) * dim] = (math.sqrt(weight) * projected).numpy()
                if progress:
                    progress.advance(min(batch, len(examples) - begin))
        return out
