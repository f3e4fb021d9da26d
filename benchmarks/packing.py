"""Packed against padded training batches, side by side in one run: the share of the computed token
positions that are real tokens, and trained tokens per second, fine-tuning the same examples in
the same steps both ways (core/train.py, `TrainSettings.packed`).

    python -m benchmarks.packing                      # the world (its shipped LM) and ShareGPT with SmolLM2-135M

On the world the shipped tiny LM trains on world conversations; on ShareGPT the packaged
SmolLM2-135M-Instruct trains on packaged ShareGPT conversations cut at `--max-length`. Each
configuration runs padded, then packed, then padded and packed again, and keeps the faster of its
two runs. Writes results/packing.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from benchmarks._common import save
from selection_assets.core import readers, real_material, records, train
from selection_assets.world import generate
from selection_assets.world import models as world_models


def world_material(count: int):
    """The shipped world LM's directory, its tokenizer and `count` world conversations."""
    from selection_assets.core.tokenize import load_tokenizer_dir

    raw = [record.encode() for record in generate.iter_pool(count * 2, 0)]
    kept = records.validate_raw(raw, range(len(raw)), [-1] * len(raw)).kept
    conversations = [json.loads(m) for m in kept["messages"].iloc[:count]]
    model_dir = world_models.SHIPPED / "model"
    return model_dir, load_tokenizer_dir(model_dir), conversations


def sharegpt_material(count: int, work: Path):
    """SmolLM2-135M-Instruct (dequantised from the packaged GGUF into `work`), its tokenizer and
    the first `count` packaged ShareGPT conversations that validate."""
    from transformers import AutoTokenizer

    model_dir = work / "smollm2"
    real_material.dequantise_gguf(real_material.PACKAGED_MODELS["packaged:smollm2"].path(), model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    raw = list(itertools.islice(readers.iter_raw_records(real_material.pool_source("packaged:sharegpt")), 4 * count))
    kept = records.validate_raw(raw, range(len(raw)), [-1] * len(raw)).kept
    return model_dir, tokenizer, [json.loads(m) for m in kept["messages"].iloc[:count]]


def run(model_dir: Path, tokenizer, conversations: list, max_length: int, batch_size: int, packed: bool,
        out: Path) -> dict:
    """One epoch over the conversations: seconds, real tokens, computed positions, loss."""
    from transformers import AutoModelForCausalLM

    examples = train.sft_examples(tokenizer, conversations, max_length)
    settings = train.TrainSettings(epochs=1.0, learning_rate=1e-4, batch_size=batch_size, max_length=max_length,
                                   seed=0, packed=packed)
    stats = train.train_causal_lm(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, examples, settings,
                                  out, "cpu")
    return {"packed": packed, "seconds": stats["seconds"], "tokens": stats["tokens"],
            "batch_tokens": stats["batch_tokens"], "steps": stats["steps"], "train_loss": stats["train_loss"],
            "useful_share": stats["tokens"] / stats["batch_tokens"], "tokens_per_second": stats["tokens"] / stats["seconds"]}


def compare(name: str, model_dir: Path, tokenizer, conversations: list, max_length: int, batch_size: int,
            work: Path) -> dict:
    """Padded and packed, twice each in turn; the faster run of each."""
    runs = [run(model_dir, tokenizer, conversations, max_length, batch_size, packed, work / f"{name}-{i}")
            for i, packed in enumerate((False, True, False, True))]
    best = {packed: min((r for r in runs if r["packed"] == packed), key=lambda r: r["seconds"]) for packed in (False, True)}
    return {"name": name, "examples": len(conversations), "max_length": max_length, "batch_size": batch_size,
            "padded": best[False], "packed": best[True], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-examples", type=int, default=512)
    parser.add_argument("--sharegpt-examples", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512, help="ShareGPT conversations are cut here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, tokenizer, conversations = world_material(args.world_examples)
        world = compare("world", model_dir, tokenizer, conversations, 256, 16, work)
        model_dir, tokenizer, conversations = sharegpt_material(args.sharegpt_examples, work)
        sharegpt = compare("sharegpt_smollm2", model_dir, tokenizer, conversations, args.max_length, 8, work)
    path = save("packing", {"configurations": [world, sharegpt]})
    print(json.dumps({c["name"]: {k: round(c[k]["tokens_per_second"], 1) for k in ("padded", "packed")}
                      for c in (world, sharegpt)}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
