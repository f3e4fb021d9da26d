"""How far the world's base model moves when only its pre-training's rounding or seed changes.

The GPU rerun measurement (gpu_reruns.py) found the GPU's base model, pre-trained under bfloat16
autocast, at nearly the CPU's pre-training loss but a much higher test answer loss. This asks, on
this CPU, whether that gap is what bfloat16 does or what any other trajectory does: the base model
is pre-trained again on the same corpus and tokenizer, in float32 and under bfloat16 autocast (as
CUDA trains), with several seeds (the seed orders the batches and initialises the weights), and each
is scored on the test items as the pipeline scores its base model.

Run it on the storage of a finished world demo (its tokenizer, eval tasks and settings):

    python -m benchmarks.base_model_variation --storage .dagster_home/storage --seeds 0,1,2   # ~25 min
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

from benchmarks._common import save
from selection_assets.assets.base_model_io import load_tokenizer
from selection_assets.assets.models import _corpus
from selection_assets.core import evaluate, report, store, train
from selection_assets.core.store import Layout
from selection_assets.definitions import default_resources
from selection_assets.world import models as world_models

PRECISIONS = ("float32", "bfloat16")


def pretrain_and_score(layout: Layout, precision: str, seed: int) -> dict:
    """Pre-train the world's base model with `seed` in `precision` on the CPU; its pre-training
    statistics and its test-item scores."""
    from transformers import AutoModelForCausalLM

    resources = default_resources()  # the world profile's settings, as the demo ran
    data, world, compute = resources["data"], resources["world"], resources["compute"]
    tokenizer = load_tokenizer(layout)
    settings = train.TrainSettings(epochs=world.pretrain_epochs, learning_rate=world.pretrain_learning_rate,
                                   batch_size=world.pretrain_batch_size, max_length=data.max_length, seed=seed)
    # CUDA's precision on this CPU: the Trainer's bfloat16 autocast, which the pipeline turns on for CUDA only
    flags = {"bf16": True} if precision == "bfloat16" else {}
    with tempfile.TemporaryDirectory() as work, mock.patch.object(train, "_precision_flags", lambda device: flags):
        began = time.perf_counter()
        stats = world_models.pretrain_tiny_llama(tokenizer, _corpus(data, world, tokenizer.eos_token),
                                                 world.shape(data.max_length), settings, Path(work), "cpu")
        model = AutoModelForCausalLM.from_pretrained(work)
        items = evaluate.evaluate_items(model, tokenizer, store.read_json(layout.eval_tasks)["tasks"],
                                        max_length=data.max_length, batch_size=compute.eval_batch_size,
                                        harness_include=data.harness_include)
        summary = report.summarise_items(items.assign(seed=0))
    return {"precision": precision, "seed": seed, "pretraining_loss": stats["train_loss"],
            "final_logged_loss": stats["final_logged_loss"], "exact_match": summary["exact_match"],
            "answer_loss": summary["answer_loss"], "seconds": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", type=Path, required=True, help="a finished world demo's storage root")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    layout = Layout(args.storage)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = []
    for precision in PRECISIONS:
        for seed in seeds:
            runs.append(pretrain_and_score(layout, precision, seed))
            print(runs[-1], flush=True)
    pipeline = store.read_json(layout.base_eval_report)
    path = save("base_model_variation", {"storage_base_model": {"exact_match": pipeline["exact_match"],
                                                                "answer_loss": pipeline["answer_loss"]},
                                          "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
