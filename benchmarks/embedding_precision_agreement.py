"""Do RDS+ selections made from bfloat16 embeddings agree with float32 ones? The pool and eval
queries of a finished demo are embedded with its base model in both precisions (position-weighted
pooling, the pipeline's batched path), and RDS+ selects every cell of the demo's grid from each;
the overlap of the two chosen sets is reported per cell, with both precisions' embedding time.

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

from selection_assets.assets.embeddings import SPACES, embedder
from selection_assets.core import pool as pool_io
from selection_assets.core import store
from selection_assets.core.methods import ScoringInputs, rds
from selection_assets.core.store import Layout
from selection_assets.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource


def query_conversations(layout: Layout) -> tuple[pd.DataFrame, list]:
    """The eval tasks' dev queries as the query_embeddings assets embed them."""
    rows, conversations = [], []
    for task in store.read_json(layout.eval_tasks)["tasks"]:
        for index, example in enumerate(task["dev"]):
            rows.append({"query_id": f"{task['name']}/{index}", "task": task["name"]})
            conversations.append(list(example["messages"]) + [{"role": "assistant", "content": example["answer"]}])
    return pd.DataFrame(rows), conversations


def main() -> None:
    from benchmarks._common import save

    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--pool-sizes", default="1000,4000")
    parser.add_argument("--budgets", default="100,400")
    args = parser.parse_args()
    layout = Layout(Path(args.storage))
    grid = Grid(tuple(int(p) for p in args.pool_sizes.split(",")), tuple(int(b) for b in args.budgets.split(",")))
    conversations = pool_io.messages(layout, grid.rings_of(str(max(grid.pool_sizes))))
    queries, query_texts = query_conversations(layout)
    vectors, seconds = {}, {}
    for dtype in ("float32", "bfloat16"):
        run, _, _ = embedder(SPACES["position_weighted"], layout, ComputeResource(device="cpu", embed_dtype=dtype),
                             DataResource())
        began = time.perf_counter()
        vectors[dtype] = (run(conversations).astype(np.float16), run(query_texts).astype(np.float32))
        seconds[dtype] = time.perf_counter() - began
        print(f"{dtype}: {len(conversations)} pool examples and {len(query_texts)} queries in {seconds[dtype]:.1f}s",
              flush=True)
    cells = []
    for pool_size, budget in grid.valid_cells():
        pool = pool_io.pool_frame(layout, grid.rings_of(pool_size))
        chosen = {}
        for dtype, (pool_vectors, query_vectors) in vectors.items():
            inputs = ScoringInputs(pool=pool, pool_embedding_blocks=lambda v=pool_vectors: [v[: len(pool)]],
                                   query_embeddings=query_vectors, query_tasks=queries["task"].to_numpy(),
                                   query_ids=queries["query_id"].to_numpy())
            chosen[dtype] = set(rds.select(rds.score(inputs), int(budget))["example_id"])
        share = len(chosen["float32"] & chosen["bfloat16"]) / int(budget)
        stored = pd.read_parquet(layout.selection("rds_plus", pool_size, budget))
        # the float32 run must repeat the demo's own rds_plus choice, or this measures something else
        reproduces = set(stored.loc[stored["seed"] == stored["seed"].min(), "example_id"]) == chosen["float32"]
        cells.append({"pool_size": int(pool_size), "budget": int(budget), "overlap": share,
                      "float32_is_the_demos_choice": reproduces})
        print(f"pool {pool_size} budget {budget}: overlap {share:.3f} (float32 = the demo's choice: {reproduces})",
              flush=True)
    path = save("embedding_precision_agreement", {
        "command": f"python -m benchmarks.embedding_precision_agreement --storage {args.storage}",
        "pool_examples": len(conversations), "queries": len(query_texts), "embed_seconds": seconds, "cells": cells,
        "all_cells_at_least_99_percent": all(c["overlap"] >= 0.99 for c in cells)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
