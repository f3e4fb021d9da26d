"""Choose the fine-tuning recipe on the dev split only, as the RDS+ paper fixes one recipe for every
method: fine-tune the base model on random subsets of the pool (the baseline, so no method is
favoured) at every candidate (epochs, learning rate), score each checkpoint on the eval tasks' dev
queries, and pick the recipe with the lowest mean dev answer loss over budgets and seeds. The test
split is never read.

Run it on the storage of a finished demo (it needs the pool, tokenizer, base model and eval tasks):

    python -m benchmarks.choose_recipe --storage .dagster_home/storage
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks._common import save
from selection_assets.assets.base_model_io import base_model_path, load_tokenizer
from selection_assets.core import evaluate, store, train
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import random as random_method
from selection_assets.core.store import Layout


def dev_scores(layout: Layout, pool_size: int, budgets: list[int], recipes: list[tuple[float, float]],
               seeds: list[int], batch_size: int, max_length: int) -> pd.DataFrame:
    """One row per (recipe, budget, seed): dev exact match and dev answer loss of a model fine-tuned
    on a random subset of the pool of size `pool_size`."""
    from transformers import AutoModelForCausalLM

    rings = pool_io.pool_rings(layout, pool_size)
    pool = pool_io.pool_frame(layout, rings)
    tokenizer = load_tokenizer(layout)
    tasks = store.read_json(layout.eval_tasks)["tasks"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for (epochs, learning_rate), budget, seed in itertools.product(recipes, budgets, seeds):
            keys = random_method.shuffle_keys(pool["example_id"].to_numpy(), 1000 + seed)
            chosen = pool["example_id"].to_numpy()[keys.argsort()[:budget]].tolist()
            conversations = pool_io.records_for(layout, rings, chosen)
            settings = train.TrainSettings(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                                           max_length=max_length, seed=seed)
            model = AutoModelForCausalLM.from_pretrained(base_model_path(layout))
            out = Path(scratch) / "model"
            stats = train.train_causal_lm(model, tokenizer, train.sft_examples(tokenizer, conversations, max_length),
                                          settings, out, "cpu")
            tuned = AutoModelForCausalLM.from_pretrained(out)
            items = evaluate.evaluate_items(tuned, tokenizer, tasks, split="dev", max_length=max_length)
            rows.append({"epochs": epochs, "learning_rate": learning_rate, "budget": budget, "seed": seed,
                         "dev_exact_match": float(items["correct"].mean()),
                         "dev_answer_loss": float(items["answer_loss"].mean()), "train_seconds": stats["seconds"]})
            print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=".dagster_home/storage")
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--budgets", default="100,400")
    parser.add_argument("--epochs", default="2,4,6,10")
    parser.add_argument("--learning-rates", default="3e-4,1e-3,3e-3")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    recipes = [(float(e), float(lr)) for e in args.epochs.split(",") for lr in args.learning_rates.split(",")]
    began = time.perf_counter()
    rows = dev_scores(Layout(Path(args.storage)), args.pool_size, [int(b) for b in args.budgets.split(",")],
                      recipes, [int(s) for s in args.seeds.split(",")], args.batch_size, args.max_length)
    summary = rows.groupby(["epochs", "learning_rate"]).agg(
        dev_answer_loss=("dev_answer_loss", "mean"), dev_exact_match=("dev_exact_match", "mean")).reset_index()
    summary = summary.sort_values("dev_answer_loss", kind="stable").reset_index(drop=True)
    chosen = summary.iloc[0]
    print(summary.to_markdown(index=False))
    print(f"chosen: {chosen['epochs']:g} epochs at learning rate {chosen['learning_rate']:g} "
          f"(lowest mean dev answer loss {chosen['dev_answer_loss']:.3f})")
    save("recipe", {"command": "python -m benchmarks.choose_recipe " + " ".join(
                        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "storage"),
                    "wall_seconds": time.perf_counter() - began, "criterion": "lowest mean dev answer loss",
                    "chosen": {"epochs": float(chosen["epochs"]), "learning_rate": float(chosen["learning_rate"])},
                    "summary": summary.to_dict(orient="records"), "runs": rows.to_dict(orient="records")})


if __name__ == "__main__":
    main()
