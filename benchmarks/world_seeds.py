"""The world demo's verdicts in other worlds: the same settings with another data seed, which draws
another pool, other eval items and another pre-trained base model (a demo's replicate seeds vary
only the fine-tuning). Reads each demo's comparison and per-item results, and reports every method
against random per world, beside its base model's scores, and over all worlds at once: with the worlds
as strata (the headline, for these worlds), per pool size, and with the worlds as units.

    DAGSTER_HOME=world1 selection-assets demo --config world1.toml --seeds 3   # world.toml with [data] seed = 1; ~11 min each
    python -m benchmarks.world_seeds --world 0 WORLD0_HOME --world 1 WORLD1_HOME --world 2 WORLD2_HOME

Writes results/world_seeds.json and prints the table and results-page line that render it.
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


# Decided before the worlds were run (issue 30): the headline is the test over the worlds' models and
# items with the worlds as strata, which holds for these worlds; with three worlds the spread between
# worlds cannot be estimated well enough to speak for other worlds, so the test over worlds as units
# (each world's difference one value, its sign flipped) is shown beside it, not instead of it.
HEADLINE = "these worlds"
MEASURES = (("em", "correct", True), ("loss", "answer_loss", False))


def _between_worlds(per_world: list[float]) -> dict:
    """The worlds as sampling units: their mean difference, its t interval over worlds (df worlds - 1)
    and the exact sign-flip p-value over worlds, with the smallest p it can reach (2 / 2^worlds)."""
    p_value, min_p, low, high = stats.sign_flip_test(per_world)
    return {"estimate": float(np.mean(per_world)), "ci": [low, high], "p": p_value, "min_p": min_p,
            "per_world": [float(v) for v in per_world]}


def pooled_comparison(homes: list[Path], comparisons: list[dict], *,
                      resamples: int = stats.DEFAULT_RESAMPLES) -> list[dict]:
    """Each method minus random over every world at once (`comparisons`: each home's report).

    The headline (HEADLINE) is `stats.paired_test` with every (world, cell) a stratum and each world
    its own test items: models permuted within a cell of a world, items flipped within their world.
    Beside it, per pool size, the same restricted to that size's cells, and the worlds as units
    (`_between_worlds`). Each is one Holm family per measure over the methods (the pool sizes:
    methods x sizes)."""
    grids = [sorted((cell["method"], cell["pool_size"], cell["budget"]) for cell in comparison["cells"])
             for comparison in comparisons]
    if any(grid != grids[0] for grid in grids):
        raise ValueError("the worlds' comparisons cover different methods or cells: " + ", ".join(map(str, homes)))
    layouts = [store.Layout(home / "storage") for home in homes]

    @functools.cache  # random's matrices serve every method
    def matrices(method: str, pool_size: int, budget: int, column: str) -> tuple[np.ndarray, ...]:
        found = tuple(report.item_matrix(pd.read_parquet(layout.eval_items(method, Cell(pool_size, budget))), column)
                      for layout in layouts)
        if len({matrix.shape[0] for matrix in found}) != 1:
            raise ValueError(f"{method} at pool {pool_size}, budget {budget} has different seed counts across "
                             f"the worlds: {[matrix.shape[0] for matrix in found]}")
        return found

    def tested(method: str, cells: list, column: str) -> stats.PairedTest:
        strata = [(world, matrices(method, *cell, column)[world], matrices(BASELINE, *cell, column)[world])
                  for world in range(len(homes)) for cell in cells]
        return stats.paired_test([m for _, m, _ in strata], [b for _, _, b in strata],
                                 item_sets=[world for world, _, _ in strata], resamples=resamples)

    cells = [(pool_size, budget) for method, pool_size, budget in grids[0] if method == BASELINE]
    rows, headline, by_pool, worlds = [], {m: [] for m, _, _ in MEASURES}, {m: [] for m, _, _ in MEASURES}, \
        {m: [] for m, _, _ in MEASURES}
    for method in dict.fromkeys(method for method, _, _ in grids[0]):
        shared = [cell for cell in cells if (method, *cell) in grids[0]]
        if method == BASELINE or not shared:
            continue
        row = {"method": method, "worlds": len(homes), "cells": len(shared),
               "items_per_cell": int(sum(m.shape[1] for m in matrices(BASELINE, *shared[0], "correct"))),
               "by_pool": [{"pool_size": pool_size} for pool_size in sorted({p for p, _ in shared})]}
        for measure, column, _ in MEASURES:
            test = tested(method, shared, column)
            row.update({f"{measure}_vs_random": test.difference, f"{measure}_vs_random_ci": [test.low, test.high],
                        f"{measure}_p": test.p_value, f"{measure}_p_at_floor": test.at_floor})
            headline[measure].append((row, test))
            for part in row["by_pool"]:
                pool_test = tested(method, [cell for cell in shared if cell[0] == part["pool_size"]], column)
                part.update({f"{measure}_vs_random": pool_test.difference,
                             f"{measure}_vs_random_ci": [pool_test.low, pool_test.high], f"{measure}_p": pool_test.p_value})
                by_pool[measure].append((part, pool_test))
            per_world = [np.mean([matrices(method, *cell, column)[world].mean()
                                  - matrices(BASELINE, *cell, column)[world].mean() for cell in shared])
                         for world in range(len(homes))]
            row[f"{measure}_between_worlds"] = _between_worlds(per_world)
            worlds[measure].append(row[f"{measure}_between_worlds"])
        rows.append(row)
    for measure, _, higher_is_better in MEASURES:
        for family in (headline[measure], by_pool[measure]):
            adjusted, verdicts = report.holm_verdicts([t.difference for _, t in family], [t.p_value for _, t in family],
                                                      [t.min_p for _, t in family], higher_is_better)
            for (target, test), p_holm, verdict in zip(family, adjusted, verdicts):
                target.update({f"{measure}_p_holm": float(p_holm), f"{measure}_verdict": verdict,
                               f"{measure}_mde": test.detectable(report.ALPHA / len(family))})
        adjusted, verdicts = report.holm_verdicts([w["estimate"] for w in worlds[measure]],
                                                  [w["p"] for w in worlds[measure]],
                                                  [w["min_p"] for w in worlds[measure]], higher_is_better)
        for between, p_holm, verdict in zip(worlds[measure], adjusted, verdicts):
            between.update({"p_holm": float(p_holm), "verdict": verdict})
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
    result = {"worlds": worlds, "headline": HEADLINE, "pooled": pooled_comparison(homes, comparisons)}
    print(f"wrote {save('world_seeds', result)}")
    # what RESULTS.md's "Verdicts in other worlds" and docs/results.md's line on it render from the file
    from benchmarks.tables import world_seeds_summary, world_seeds_table

    print(world_seeds_table(result), world_seeds_summary(result), sep="\n\n")


if __name__ == "__main__":
    main()
