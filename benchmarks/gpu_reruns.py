"""How far a demo's files and numbers move between two runs: two GPU runs of the same settings
(CUDA is not bitwise deterministic by default), or a GPU run against a CPU run (bfloat16 autocast
and bfloat16 embedding on CUDA, float32 on the CPU). Each pair compares, stage by stage, whether
the bytes are the same and how far the numbers are apart: the base model's weights, the pool
embeddings, every method's picks, every test item's prediction and answer loss, and the report's
verdicts.

    bash benchmarks/device_demo_reruns.sh     # on the GPU: two demos; their homes come back as tarballs
    python -m benchmarks.gpu_reruns --device "NVIDIA H200 (driver 580.159.04)" \
        --pair rerun GPU_HOME_A GPU_HOME_B --pair device GPU_HOME_A CPU_HOME \
        --pair device_seeds GPU_HOME_SEEDS3 CPU_HOME_SEEDS3   # demos run with --seeds 3

Each HOME is a demo's DAGSTER_HOME (its storage/ and demo_run.json; checkpoints are not read).
Writes results/gpu_reruns.json. The same comparison measures one CPU under other kernels or thread
counts (the published numbers must hold across them):

    ATEN_CPU_CAPABILITY=default DAGSTER_HOME=ISA_HOME selection-assets demo
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 DAGSTER_HOME=THREAD_HOME selection-assets demo
    python -m benchmarks.gpu_reruns --output isa_spread --pair kernels HOME ISA_HOME --pair threads HOME THREAD_HOME
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import save
from selection_assets.core import store
from selection_assets.core.keys import Cell
from selection_assets.core.report import BASELINE, VERDICTS

CELL_KEY = ["method", "pool_size", "budget"]
ITEM_KEY = ["seed", "task", "item"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_files(x: Path, y: Path, pattern: str) -> bool:
    """Whether both storages hold the same files under `pattern`, byte for byte."""
    names = sorted(p.relative_to(x) for p in x.glob(pattern))
    if not names or names != sorted(p.relative_to(y) for p in y.glob(pattern)):
        return False
    return all(_digest(x / name) == _digest(y / name) for name in names)


def _embedding_difference(x: Path, y: Path) -> float:
    """The largest absolute difference between the two runs' pool embeddings, over every shard."""
    pattern = "embeddings/position_weighted/pool/*/shard-*.npy"
    largest = 0.0
    for shard in sorted(x.glob(pattern)):
        a = np.load(shard).astype(np.float64)
        b = np.load(y / shard.relative_to(x)).astype(np.float64)
        largest = max(largest, float(np.abs(a - b).max()))
    return largest


def _verdict(value) -> str | None:
    """A verdict as the report wrote it; None for the baseline's untested rows (older reports wrote 'nan')."""
    return value if value in VERDICTS else None


def compare_cell(x: Path, y: Path, method: str, pool_size: int, budget: int) -> dict:
    """One cell of the grid in two storages: picks, per-item predictions and losses."""
    cell = Cell(pool_size, budget)
    layouts = store.Layout(x), store.Layout(y)
    picks_x, picks_y = (pd.read_parquet(layout.selection(method, cell)) for layout in layouts)
    overlaps = [len(set(picks_x.loc[picks_x["seed"] == seed, "example_id"])
                    & set(picks_y.loc[picks_y["seed"] == seed, "example_id"])) / int((picks_x["seed"] == seed).sum())
                for seed in sorted(picks_x["seed"].unique())]
    items_x, items_y = (pd.read_parquet(layout.eval_items(method, cell)).sort_values(ITEM_KEY, kind="stable")
                        .reset_index(drop=True) for layout in layouts)
    if not items_x[ITEM_KEY].equals(items_y[ITEM_KEY]):
        raise ValueError(f"{method} {cell}: the two runs did not answer the same test items")
    return {"method": method, "pool_size": pool_size, "budget": budget,
            "pick_overlap": min(overlaps),
            "same_picks_in_order": bool(picks_x["example_id"].tolist() == picks_y["example_id"].tolist()),
            "items": len(items_x),
            "items_whose_correctness_differs": int((items_x["correct"] != items_y["correct"]).sum()),
            "items_whose_prediction_differs": int((items_x["prediction"] != items_y["prediction"]).sum()),
            "max_abs_item_loss_difference": float((items_x["answer_loss"] - items_y["answer_loss"]).abs().max()),
            "exact_match": [float(items_x["correct"].mean()), float(items_y["correct"].mean())],
            "answer_loss": [float(items_x["answer_loss"].mean()), float(items_y["answer_loss"].mean())]}


def compare_homes(name: str, home_x: Path, home_y: Path) -> dict:
    """Everything `name`'s two demo homes share, compared stage by stage (module docstring)."""
    x, y = home_x / "storage", home_y / "storage"
    layouts = store.Layout(x), store.Layout(y)
    comparison_x, comparison_y = (store.read_json(layout.comparison_json) for layout in layouts)
    cells_x, cells_y = pd.DataFrame(comparison_x["cells"]), pd.DataFrame(comparison_y["cells"])
    merged = cells_x.merge(cells_y, on=CELL_KEY, suffixes=("_x", "_y"), validate="one_to_one")
    if len(merged) != len(cells_x) or len(merged) != len(cells_y):
        raise ValueError(f"{name}: the two runs did not cover the same cells")
    cells = []
    for row in merged.itertuples(index=False):
        cell = compare_cell(x, y, row.method, int(row.pool_size), int(row.budget))
        for side in ("x", "y"):
            cell[f"em_verdict_{side}"] = _verdict(getattr(row, f"em_verdict_{side}"))
            cell[f"loss_verdict_{side}"] = _verdict(getattr(row, f"loss_verdict_{side}"))
            cell[f"em_vs_random_{side}"] = None if pd.isna(getattr(row, f"em_vs_random_{side}")) else float(
                getattr(row, f"em_vs_random_{side}"))
        cells.append(cell)
    methods_x, methods_y = (sorted(comparison["methods"], key=lambda method: method["method"])
                            for comparison in (comparison_x, comparison_y))
    if [m["method"] for m in methods_x] != [m["method"] for m in methods_y]:
        raise ValueError(f"{name}: the two runs did not compare the same methods")
    methods = []
    for method_x, method_y in zip(methods_x, methods_y):
        if method_x["method"] == BASELINE:
            continue
        methods.append({"method": method_x["method"],
                        **{f"{key}_{side}": entry[key] for side, entry in (("x", method_x), ("y", method_y))
                           for key in ("em_vs_random", "em_vs_random_ci", "em_p_holm")},
                        "verdict_x": _verdict(method_x["verdict"]), "verdict_y": _verdict(method_y["verdict"])})
    bases = [store.read_json(layout.base_eval_report) for layout in layouts]
    pretraining = [store.read_json(layout.base_model_ref).get("pretrain", {}) for layout in layouts]
    tested = [cell for cell in cells if cell["em_verdict_x"] is not None]
    return {"name": name,
            "runs": [store.read_json(home / "demo_run.json") for home in (home_x, home_y)],
            "same_bytes": {"base_model_weights": _same_files(x, y, "models/base/*.safetensors"),
                           "pool_embeddings": _same_files(x, y, "embeddings/position_weighted/pool/*/*.npy"),
                           "scores": _same_files(x, y, "scores/*/*.parquet"),
                           "selections": _same_files(x, y, "selections/*/*/*.parquet"),
                           "test_item_results": _same_files(x, y, "reports/items/*/*/*.parquet")},
            "max_abs_embedding_difference": _embedding_difference(x, y),
            "base_model": {**{key: [base[key] for base in bases] for key in ("exact_match", "answer_loss")},
                           "pretraining_loss": [run.get("train_loss") for run in pretraining]},
            "cells": cells, "methods": methods,
            "cell_verdicts_that_differ": sum(cell["em_verdict_x"] != cell["em_verdict_y"] for cell in tested)
            + sum(cell["loss_verdict_x"] != cell["loss_verdict_y"] for cell in tested),
            "cell_verdicts": 2 * len(tested),
            "method_verdicts_that_differ": sum(m["verdict_x"] != m["verdict_y"] for m in methods)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "HOME_X", "HOME_Y"),
                        help="two demo homes to compare under NAME (repeatable)")
    parser.add_argument("--device", default="",
                        help="the GPU the GPU runs used, as nvidia-smi names it with its driver (device.log)")
    parser.add_argument("--output", default="gpu_reruns",
                        help="the results file's name (isa_spread: runs of one CPU under other kernels or threads)")
    args = parser.parse_args()
    pairs = [compare_homes(name, Path(x), Path(y)) for name, x, y in args.pair]
    path = save(args.output, {"device": args.device, "pairs": pairs})
    for pair in pairs:
        print(f"{pair['name']}: same bytes {pair['same_bytes']}, "
              f"{pair['cell_verdicts_that_differ']} of {pair['cell_verdicts']} cell verdicts differ")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
