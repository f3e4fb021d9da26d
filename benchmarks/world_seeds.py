"""The world demo's verdicts in other worlds: the same settings with another data seed, which draws
another pool, other eval items and another pre-trained base model (a demo's replicate seeds vary
only the fine-tuning). Reads each demo's comparison and per-item results, and reports every method
against random per world, beside its base model's scores, and over all worlds' test items pooled
(three worlds' test items narrow an interval that one world's leave wide).

    SELECTION_ASSETS_DATA='{"seed": 1}' DAGSTER_HOME=world1 selection-assets demo --seeds 3   # ~11 min each
    python -m benchmarks.world_seeds --world 0 WORLD0_HOME --world 1 WORLD1_HOME --world 2 WORLD2_HOME

Writes results/world_seeds.json.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import save
from selection_assets.core import report, stats, store
from selection_assets.core.keys import Cell
from selection_assets.core.report import BASELINE


def read_comparison(home: Path) -> dict:
    """The comparison report of the demo whose DAGSTER_HOME is `home`."""
    return store.read_json(store.Layout(home / "storage").comparison_json)


def world_summary(seed: int, home: Path, comparison: dict) -> dict:
    """One world's demo (`comparison`: its report): its run, its base model's scores, and each method
    against random over all cells."""
    methods = []
    for method in comparison["methods"]:
        if method["method"] == BASELINE:
            continue
        own = [cell for cell in comparison["cells"] if cell["method"] == method["method"]]
        methods.append({**{key: method[key] for key in ("method", "em_vs_random", "em_vs_random_ci", "em_p_holm",
                                                        "verdict")},
                        "cells_better": int(method["cells_better"]), "cells_worse": int(method["cells_worse"]),
                        "cells": len(own),
                        "loss_cells_better": sum(cell["loss_verdict"] == "better" for cell in own),
                        "loss_cells_worse": sum(cell["loss_verdict"] == "worse" for cell in own)})
    return {"data_seed": seed, "run": store.read_json(home / "demo_run.json"),
            "base_model": {key: comparison["base"][key] for key in ("exact_match", "answer_loss")},
            "methods": methods}


def pooled_comparison(homes: list[Path], comparisons: list[dict], *,
                      resamples: int = stats.DEFAULT_RESAMPLES) -> list[dict]:
    """Each method minus random over every world's test items at once (`comparisons`: each home's
    report), paired per cell as the comparison report pairs them (Holm over the methods, exact match
    and answer loss separately).

    A cell's (seeds, items) matrices of the worlds are set side by side, so a bootstrap replicate
    resamples the pooled items and draws replicate seed s of every world as one unit. Against a
    bootstrap stratified by world and by model this is conservative: it adds the worlds' differences
    in level to the item variance and draws from fewer seed units."""
    grids = [sorted((cell["method"], cell["pool_size"], cell["budget"]) for cell in comparison["cells"])
             for comparison in comparisons]
    if any(grid != grids[0] for grid in grids):
        raise ValueError("the worlds' comparisons cover different methods or cells: " + ", ".join(map(str, homes)))
    layouts = [store.Layout(home / "storage") for home in homes]

    @functools.cache  # random's matrices serve every method
    def pooled(method: str, pool_size: int, budget: int, column: str) -> np.ndarray:
        matrices = [report.item_matrix(pd.read_parquet(layout.eval_items(method, Cell(pool_size, budget))), column)
                    for layout in layouts]
        if len({matrix.shape[0] for matrix in matrices}) != 1:
            raise ValueError(f"{method} at pool {pool_size}, budget {budget} has different seed counts across "
                             f"the worlds: {[matrix.shape[0] for matrix in matrices]}")
        return np.hstack(matrices)

    cells = [(pool_size, budget) for method, pool_size, budget in grids[0] if method == BASELINE]
    rows = []
    for method in dict.fromkeys(method for method, _, _ in grids[0]):
        shared = [cell for cell in cells if (method, *cell) in grids[0]]
        if method == BASELINE or not shared:
            continue
        em, loss = (stats.paired_difference([pooled(method, *cell, column) for cell in shared],
                                            [pooled(BASELINE, *cell, column) for cell in shared], resamples=resamples)
                    for column in ("correct", "answer_loss"))
        rows.append({"method": method, "worlds": len(homes), "cells": len(shared),
                     "items_per_cell": int(pooled(BASELINE, *shared[0], "correct").shape[1]),
                     "em_vs_random": em.difference, "em_vs_random_ci": [em.low, em.high], "em_p": em.p_value,
                     "loss_vs_random": loss.difference, "loss_vs_random_ci": [loss.low, loss.high],
                     "loss_p": loss.p_value})
    for measure, higher_is_better in (("em", True), ("loss", False)):
        adjusted, verdicts = report.holm_verdicts([row[f"{measure}_vs_random"] for row in rows],
                                                  [row[f"{measure}_p"] for row in rows], higher_is_better)
        for row, p_holm, verdict in zip(rows, adjusted, verdicts):
            row.update({f"{measure}_p_holm": float(p_holm), f"{measure}_verdict": verdict})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", nargs=2, action="append", required=True, metavar=("DATA_SEED", "HOME"),
                        help="a demo's data seed and its DAGSTER_HOME (repeatable)")
    args = parser.parse_args()
    homes = [Path(home) for _, home in args.world]
    comparisons = [read_comparison(home) for home in homes]
    worlds = [world_summary(int(seed), home, comparison)
              for (seed, _), home, comparison in zip(args.world, homes, comparisons)]
    settings = {json.dumps({key: world["run"][key] for key in ("methods", "pool_sizes", "budgets", "seeds")})
                for world in worlds}
    if len(settings) != 1:
        raise ValueError("the demos differ in more than their data seed: " + " / ".join(sorted(settings)))
    pooled = pooled_comparison(homes, comparisons)
    print(f"wrote {save('world_seeds', {'worlds': worlds, 'pooled': pooled})}")


if __name__ == "__main__":
    main()
