"""Supervised fine-tuning (loss on assistant tokens only) with the Hugging Face Trainer.

The same entry point pre-trains the world's tiny LM (labels = inputs) and fine-tunes a base model
on a selected subset (labels = -100 outside assistant answers). Checkpoints are saved with
`save_pretrained` into a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import functools
import gc
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from selection_assets.core import store
from selection_assets.core.progress import Progress
from selection_assets.core.tokenize import encode_conversations

IGNORE_INDEX = -100


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Optimisation settings shared by pre-training and fine-tuning. The recipe has no defaults here:
    each caller's settings (TrainResource, WorldResource) declare it once."""

    epochs: float
    learning_rate: float
    batch_size: int
    max_length: int
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int
    lora_rank: int = 0  # 0: full fine-tuning; r > 0: LoRA adapters of rank r on every linear layer, merged after
    packed: bool = False  # each step's examples in one row (no padding), attention within each example


def _with_lora(model, rank: int):
    """`model` with trainable LoRA adapters (rank `rank`, alpha 2r) on all linear layers; the base
    weights are frozen."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))


def sft_examples(tokenizer, conversations: Sequence[Sequence[dict]], max_length: int) -> list[dict]:
    """Token ids with labels only on assistant answers (their EOS included)."""
    examples = []
    for enc in encode_conversations(tokenizer, conversations, max_length):
        labels = [tok if is_answer else IGNORE_INDEX for tok, is_answer in zip(enc.input_ids, enc.answer_mask)]
        examples.append({"input_ids": enc.input_ids, "labels": labels})
    return examples


def _precision_flags(device: str) -> dict:
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return {"bf16": True}
    return {}


def _progress_callback(log: Callable[[str], None], label: str):
    """A Trainer callback that reports optimiser steps done out of the run's total to `log`."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self):
            self._progress = None

        def on_train_begin(self, args, state, control, **kwargs):
            self._progress = Progress(label, state.max_steps, log, unit="steps")

        def on_step_end(self, args, state, control, **kwargs):
            self._progress.advance()

    return ProgressCallback()


def train_causal_lm(model, tokenizer, examples: list[dict], settings: TrainSettings, out_dir: Path,
                    device: str, log: Callable[[str], None] | None = None, label: str = "fine-tuning") -> dict:
    """Train `model` on `examples` (dicts with input_ids and labels); save model and tokenizer.

    Returns training statistics (steps, final loss, seconds, trainable parameters, the real tokens
    trained on and the token positions of its batches, padding included). With
    `settings.lora_rank` > 0 only LoRA adapters train, and they are merged into the saved model, so
    a checkpoint is always a plain model directory. An empty example list is an error.
    With `log`, progress lines (steps done/total, rate, time left) go to it under `label`.
    `settings.packed` puts each step's examples into one row (`batch_collator`).
    """
    # the Trainer is imported where it runs: with it comes peft, seconds of every process start
    from transformers import PrinterCallback, Trainer, set_seed

    if not examples:
        raise ValueError("no training examples")
    _freeze_what_is_loaded()
    set_seed(settings.seed)
    use_cache = getattr(model.config, "use_cache", None)
    if settings.packed:  # a cache in the forward pass hides packed examples' boundaries from the mask
        model.config.use_cache = False
    if settings.lora_rank > 0:
        model = _with_lora(model, settings.lora_rank)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out_dir = Path(out_dir)
    work_dir = store.temp_dir_beside(out_dir)
    args = training_arguments(work_dir / "trainer", epochs=settings.epochs, learning_rate=settings.learning_rate,
                              batch_size=settings.batch_size, warmup_ratio=settings.warmup_ratio,
                              weight_decay=settings.weight_decay, seed=settings.seed, device=device,
                              n_examples=len(examples), scheduler="cosine")
    collator = _CountingCollator(batch_collator(tokenizer, settings.packed))
    trainer = Trainer(model=model, args=args, train_dataset=ListDataset(examples), data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # the loss history is returned, not printed
    if log:
        trainer.add_callback(_progress_callback(log, label))
    began = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - began
    save_dir = work_dir / "model"
    trained = trainer.model.merge_and_unload() if settings.lora_rank > 0 else trainer.model
    if settings.packed:
        trained.config.use_cache = use_cache
    trained.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    store.replace_dir(save_dir, out_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"train_loss": float(result.training_loss), "steps": int(result.global_step),
            "final_logged_loss": float(losses[-1]) if losses else float(result.training_loss),
            "examples": len(examples), "seconds": seconds, "trainable_parameters": int(trainable),
            "tokens": int(sum(len(e["input_ids"]) for e in examples) * settings.epochs),
            "batch_tokens": collator.batch_tokens}


def batch_collator(tokenizer, packed: bool):
    """How a step's examples become one batch: padded to the longest (right, labels ignored on
    padding), or with `packed` concatenated into one row with no padding, each example's position
    ids restarting at 0 and its first label ignored, so the model's mask keeps attention within each
    example (transformers' packed-sequence masks; the forward pass must run without a cache)."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packed:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)


class _CountingCollator:
    """A collator that counts the token positions of the batches it makes (padding included), so a
    run reports how much of what it computed was real tokens."""

    def __init__(self, collate: Callable[[list[dict]], dict]):
        self.collate = collate
        self.batch_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collate(features)
        self.batch_tokens += int(batch["input_ids"].numel())
        return batch


@functools.cache
def _freeze_what_is_loaded() -> None:
    """Once per process, collect and then move every live object (the imported libraries, mostly)
    out of the garbage collector's sight. The Trainer runs a full collection as each training
    starts (accelerate's `free_memory`); with transformers, lm-eval and Dagster loaded that took
    0.5 s, more than a small fine-tune itself. Frozen objects are still freed when nothing refers to
    them (a model is: it holds no reference cycle); only cyclic garbage among them stays."""
    gc.collect()
    gc.freeze()


def training_arguments(output_dir: Path, *, epochs: float, learning_rate: float, batch_size: int,
                       warmup_ratio: float, weight_decay: float, seed: int, device: str, n_examples: int,
                       scheduler: str):
    """The Trainer settings (`TrainingArguments`) every training run here shares (seeded, no
    checkpoints or reports, length-grouped batches), with its optimisation settings and
    learning-rate `scheduler`."""
    from transformers import TrainingArguments

    steps_per_epoch = max(1, -(-n_examples // batch_size))
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        lr_scheduler_type=scheduler,
        warmup_steps=int(warmup_ratio * steps_per_epoch * epochs),
        weight_decay=weight_decay,
        logging_steps=max(1, steps_per_epoch // 2),
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length",
        **_precision_flags(device),
    )


class ListDataset(torch.utils.data.Dataset):
    """A list of example dicts as a torch dataset."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]
