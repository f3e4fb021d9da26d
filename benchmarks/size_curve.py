"""The curve of quality against subset size, dense: a searched method and random at fixed sizes (log
spaced), each size a trial cell of the lineage (the subset-size search's job), then read by tests
(core/size_curve.py): whether double descent appears, and where the method and random meet.

    DAGSTER_HOME=curve python -m benchmarks.size_curve --pool-size 4000 --sizes 12 --seeds 3

Writes results/size_curve.json with the curve (means and 95% intervals per size and method), the
double-descent tests and the verdicts against random.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import DagsterInstance

from benchmarks._common import save
from selection_assets import cli, config
from selection_assets.assets.search import eligible_rows
from selection_assets.core import size_curve, store
from selection_assets.core.keys import Cell
from selection_assets.core.report import BASELINE
from selection_assets.orchestration.operations import SEARCH_TRIALS_JOB, Step
from selection_assets.orchestration.partitions import cell_key


def log_sizes(low: int, high: int, count: int) -> list[int]:
    """`count` sizes log-spaced from `low` to `high` (distinct integers)."""
    return sorted({int(round(v)) for v in np.geomspace(low, high, count)})


def run_sweep(method: str, pool_size: int, count: int, low: int, seeds: int,
              log_level: str = "WARNING") -> tuple[Path, list[int], list[int]]:
    """Materialise `method`'s and random's trial cells at `count` log-spaced sizes from `low` to the
    most the method can select from the pool (the missing upstream first); the storage root, the
    sizes and the replicate seeds."""
    home = cli.prepare_dagster_home(Path(".dagster_home"))
    from selection_assets.definitions import build_experiment, default_resources, experiment_grid

    experiment = config.active().changed(search={"method": method, "pool_size": pool_size},
                                         training={"seeds": list(range(seeds))})
    cli.activate(experiment, home)
    grid, resources = experiment_grid(experiment), default_resources(experiment=experiment)
    defs, stages = build_experiment(grid, resources, methods=list(dict.fromkeys([BASELINE, method])))
    layout = resources["storage"].layout()
    with DagsterInstance.get() as instance:
        cli.reap(instance)
        for step in cli.upstream_steps(stages, grid, pool_size, instance):
            cli.run_timed_step(defs, step, instance, log_level)
        high = min(pool_size - 1, *(eligible_rows(layout, m, pool_size) for m in (method, BASELINE)))
        sizes = log_sizes(low, high, count)
        print(f"{method} and random at {sizes} on pool {pool_size}, seeds {resources['training'].seeds}, home {home}")
        for size in sizes:
            if not all(layout.eval_report(m, Cell(pool_size, size)).exists() for m in (method, BASELINE)):
                cli.run_timed_step(defs, Step(SEARCH_TRIALS_JOB, cell_key(Cell(pool_size, size))), instance, log_level)
    return layout.root, sizes, list(resources["training"].seeds)


def analyse(root: Path, method: str, pool_size: int, sizes: list[int], seeds: list[int]) -> dict:
    """The curve and its tests from the trial cells' per-item results (`seeds`: the replicate seeds
    each cell trained)."""
    layout = store.Layout(root)
    items = {m: {size: pd.read_parquet(layout.eval_items(m, Cell(pool_size, size))) for size in sizes}
             for m in (method, BASELINE)}
    curve = [{"method": m, "size": size, **{k: found[k] for k in ("exact_match", "exact_match_ci", "answer_loss",
                                                                    "answer_loss_ci")}}
             for m in (method, BASELINE) for size in sizes
             for found in [store.read_json(layout.eval_report(m, Cell(pool_size, size)))]]
    verdicts = size_curve.against_random(items[method], items[BASELINE])
    descent = {m: {measure: size_curve.double_descent(items[m], measure) for measure in size_curve.MEASURES}
               for m in (method, BASELINE)}
    return {"method": method, "pool_size": pool_size, "sizes": sizes, "seeds": seeds, "curve": curve,
            "against_random": verdicts.to_dict(orient="records"),
            "balance_point": {measure: size_curve.balance_point(verdicts, measure) for measure in size_curve.MEASURES},
            "double_descent": {m: {measure: {"found": d["double_descent"], "peaks": d["peaks"].to_dict(orient="records")}
                                   for measure, d in by_measure.items()} for m, by_measure in descent.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="instructmining_no_reward")
    parser.add_argument("--pool-size", type=int, required=True)
    parser.add_argument("--sizes", type=int, default=12, help="how many log-spaced sizes")
    parser.add_argument("--low", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="replicate seeds 0..N-1 of every size")
    args = parser.parse_args()
    root, sizes, seeds = run_sweep(args.method, args.pool_size, args.sizes, args.low, args.seeds)
    result = analyse(root, args.method, args.pool_size, sizes, seeds)
    path = save("size_curve", result)
    for measure in size_curve.MEASURES:
        print(f"{measure}: balance point {result['balance_point'][measure]}; double descent "
              + ", ".join(f"{m} {'yes' if d[measure]['found'] else 'not shown'}"
                          for m, d in result["double_descent"].items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
