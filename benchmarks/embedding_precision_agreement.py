"""Do RDS+ selections made from bfloat16 embeddings agree with float32 ones? The pool and eval
queries of a finished demo are embedded with its base model (position-weighted pooling, the
pipeline's batched path) in float32, in bfloat16 (the model cast, as `embed_dtype=bfloat16` does),
and with bfloat16 matrix products only (float32 weights under `torch.autocast`: norms, softmax and
the residual stream stay float32), and RDS+ selects every cell of the demo's grid from each. Per
cell and precision: the overlap with float32's chosen set, how far the precision moved the scores
(median and 99th percentile of |score - float32 score| over pool rows and tasks), and how close
float32's scores lie where the selection stops (the mean gap between neighbouring scores around
rank budget / tasks, per task, averaged): a move larger than that gap reorders the last picks.

    selection-assets demo                       # first: the storage this reads
    python -m benchmarks.embedding_precision_agreement --storage .dagster_home/storage

bfloat16 becomes the CPU default only if the overlap is at least 99% in every cell (issue 13).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from selection_assets.assets.base_model_io import base_model_path, load_tokenizer
from selection_assets.assets.embeddings import SPACES, lm_embedder
from selection_assets.core import pool as pool_io
from selection_assets.core import store
from selection_assets.core.methods import ScoringInputs, rds
from selection_assets.core.store import Layout
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource


def query_conversations(layout: Layout) -> tuple[pd.DataFrame, list]:
    """The eval tasks' dev queries as the query_embeddings assets embed them."""
    rows, conversations = [], []
    for task in store.read_json(layout.eval_tasks)["tasks"]:
        for index, example in enumerate(task["dev"]):
            rows.append({"query_id": f"{task['name']}/{index}", "task": task["name"]})
            conversations.append(list(example["messages"]) + [{"role": "assistant", "content": example["answer"]}])
    return pd.DataFrame(rows), conversations


class BFloat16Products(torch.nn.Module):
    """A float32 model whose matrix products run in bfloat16 (CPU autocast); float32 hidden states out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs) -> BaseModelOutputWithPast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = self.model(**inputs).last_hidden_state
        return BaseModelOutputWithPast(last_hidden_state=hidden.float())


PRECISIONS = ("float32", "bfloat16", "bfloat16_products")


def embedding_runs(layout: Layout) -> dict:
    """Conversations -> float32 unit vectors, per precision, through the pipeline's embedding path."""
    runs = {dtype: SPACES["position_weighted"].embedder(layout, ComputeResource(device="cpu", embed_dtype=dtype),
                                                        DataResource())[0] for dtype in ("float32", "bfloat16")}
    model = AutoModel.from_pretrained(base_model_path(layout), dtype=torch.float32).eval()
    runs["bfloat16_products"] = lm_embedder(BFloat16Products(model), load_tokenizer(layout),
                                            ComputeResource(device="cpu"), DataResource(), "position_weighted")
    return runs


def spacing_at_cut(scores: np.ndarray, budget: int, window: int = 5) -> float:
    """Mean gap between neighbouring scores around rank budget / groups, per group column, averaged."""
    per_group = max(budget // scores.shape[1], 1)
    gaps = []
    for column in scores.T:
        ranked = np.sort(column)[::-1]
        low, high = max(per_group - window, 0), min(per_group + window, len(ranked) - 1)
        gaps.append((ranked[low] - ranked[high]) / max(high - low, 1))
    return float(np.mean(gaps))


def main() -> None:
    from benchmarks._common import save

    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--pool-sizes", default="1000,4000")
    parser.add_argument("--budgets", default="100,400")
    args = parser.parse_args()
    layout = Layout(Path(args.storage))
    grid = Grid(tuple(int(p) for p in args.pool_sizes.split(",")), tuple(int(b) for b in args.budgets.split(",")))
    conversations = pool_io.messages(layout, grid.rings_of(max(grid.pool_sizes)))
    queries, query_texts = query_conversations(layout)
    vectors, seconds = {}, {}
    for dtype, run in embedding_runs(layout).items():
        began = time.perf_counter()
        vectors[dtype] = (run(conversations).astype(np.float16), run(query_texts).astype(np.float32))
        seconds[dtype] = time.perf_counter() - began
        print(f"{dtype}: {len(conversations)} pool examples and {len(query_texts)} queries in {seconds[dtype]:.1f}s",
              flush=True)
    cells = []
    for grid_cell in grid.valid_cells():
        pool_size, budget = grid_cell.pool_size, grid_cell.budget
        pool = pool_io.pool_frame(layout, grid.rings_of(pool_size))
        scores, chosen = {}, {}
        for dtype, (pool_vectors, query_vectors) in vectors.items():
            inputs = ScoringInputs(pool=pool, pool_embedding_blocks=lambda v=pool_vectors: [v[: len(pool)]],
                                   query_embeddings=query_vectors, query_tasks=queries["task"].to_numpy(),
                                   query_ids=queries["query_id"].to_numpy())
            frame = rds.score(inputs)
            scores[dtype] = frame[[c for c in frame.columns if c.startswith(rds.GROUP_PREFIX)]].to_numpy(np.float64)
            chosen[dtype] = set(rds.select(frame, int(budget))["example_id"])
        stored = pd.read_parquet(layout.selection("rds_plus", grid_cell))
        # the float32 run must repeat the demo's own rds_plus choice, or this measures something else
        reproduces = set(stored.loc[stored["seed"] == stored["seed"].min(), "example_id"]) == chosen["float32"]
        cell = {"pool_size": int(pool_size), "budget": int(budget), "float32_is_the_demos_choice": reproduces,
                "float32_spacing_at_cut": spacing_at_cut(scores["float32"], int(budget))}
        for dtype in PRECISIONS[1:]:
            moved = np.abs(scores[dtype] - scores["float32"])
            cell[dtype] = {"overlap": len(chosen["float32"] & chosen[dtype]) / int(budget),
                           "score_move_median": float(np.median(moved)),
                           "score_move_p99": float(np.quantile(moved, 0.99))}
        cells.append(cell)
        print(f"pool {pool_size} budget {budget}: " + ", ".join(
            f"{dtype} overlap {cell[dtype]['overlap']:.3f} (score move p50 {cell[dtype]['score_move_median']:.1e})"
            for dtype in PRECISIONS[1:]) + f"; float32 spacing at the cut {cell['float32_spacing_at_cut']:.1e}"
              f" (float32 = the demo's choice: {reproduces})", flush=True)
    path = save("embedding_precision_agreement", {
        "command": f"python -m benchmarks.embedding_precision_agreement --storage {args.storage}",
        "pool_examples": len(conversations), "queries": len(query_texts), "embed_seconds": seconds, "cells": cells,
        "all_cells_at_least_99_percent": {dtype: all(c[dtype]["overlap"] >= 0.99 for c in cells)
                                          for dtype in PRECISIONS[1:]}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
