"""The spine lineage on the world at growing pool sizes: wall time and peak RSS of every asset of
every stage, each run alone in a fresh process.

    python -m benchmarks.lineage_scale --pool-sizes 10000,100000,1000000 --budgets 1000

runs the experiment's stage plan (operations.Stages: inputs, each ring then its pool, every cell)
one (asset, partition) at a time, each as `python -m benchmarks.lineage_scale --child I` against the
same DAGSTER_HOME, so a step's peak RSS is its process's own (os.wait4) and its wall time includes
the process start; `step_seconds` is the time inside the run itself. The nested rings make the
pool of size N out of the rings up to N, so ring assets are plotted against their ring's rows and
pool and cell assets against the pool size. Writes results/lineage_scale.json and
results/lineage_scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import RESULTS, save
from selection_assets import cli, config

RESULT_NAME = "lineage_scale"


def _plan():
    """Every (asset, partition) step of the spine experiment, in stage order."""
    from selection_assets.core.methods import SPINE_METHODS
    from selection_assets.definitions import build_experiment
    from selection_assets.orchestration.operations import Step

    defs, stages = build_experiment(methods=SPINE_METHODS)
    steps = [Step(step.job, step.partition, (key,)) for step in stages.plan()
             for key in stages.keys if stages.job_of[key] == step.job]
    return defs, steps


def child(index: int) -> None:
    """Run step `index` of the plan in this process; print its label and seconds as JSON."""
    from dagster import DagsterInstance
    from transformers.utils import logging as transformers_logging

    from selection_assets.cli import run_step

    transformers_logging.disable_progress_bar()
    defs, steps = _plan()
    step = steps[index]
    with DagsterInstance.get() as instance:
        began = time.perf_counter()
        run_step(defs, step, instance, log_level="WARNING")
        seconds = time.perf_counter() - began
    print(json.dumps({"asset": step.keys[0].to_user_string(), "job": step.job, "label": step.label,
                      "step_seconds": seconds}))


def _run_child(index: int, env: dict, logs: Path) -> dict:
    """Step `index` in a fresh process: its JSON line, wall seconds and peak RSS (os.wait4)."""
    out_path, err_path = logs / f"step-{index}.out", logs / f"step-{index}.err"
    began = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.lineage_scale", "--child", str(index)],
                                   env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"step {index} failed:\n{err_path.read_text()[-4000:]}")
    row = json.loads(out_path.read_text().strip().splitlines()[-1])
    return {**row, "wall_seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool-sizes", default="10000,100000,1000000")
    parser.add_argument("--budgets", default="1000")
    parser.add_argument("--home", default="/tmp/lineage_scale", help="DAGSTER_HOME (the storage goes under it)")
    parser.add_argument("--replot", action="store_true", help="redraw the plot from the results file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.replot:
        _plot(json.loads((RESULTS / f"{RESULT_NAME}.json").read_text())["steps"])
        return
    home = cli.prepare_dagster_home(Path(args.home))
    sizes = {name: [int(part) for part in text.split(",")] for name, text in (("pool_sizes", args.pool_sizes),
                                                                              ("budgets", args.budgets))}
    cli.activate(config.shipped("world").changed(**sizes), home)  # the experiment each child process loads
    env = {**os.environ, "PYTHONPATH": str(RESULTS.parents[1])}
    _, steps = _plan()
    logs = Path(args.home) / "step_logs"
    logs.mkdir(exist_ok=True)
    began, rows = time.perf_counter(), []
    for index in range(len(steps)):
        row = _run_child(index, env, logs)
        rows.append(row)
        print(f"{row['label']:>28} {row['asset']:<40} {row['wall_seconds']:8.1f}s "
              f"(in the run {row['step_seconds']:7.1f}s)  peak {row['peak_rss_mib']:7.0f} MiB", flush=True)
    total = time.perf_counter() - began
    path = save(RESULT_NAME, {"command": "python -m benchmarks.lineage_scale --pool-sizes "
                                         f"{args.pool_sizes} --budgets {args.budgets}",
                              "pool_sizes": [int(p) for p in args.pool_sizes.split(",")],
                              "budgets": [int(b) for b in args.budgets.split(",")],
                              "total_wall_seconds": total, "steps": rows})
    print(f"whole run {total:.0f}s; {path}")
    _plot(rows)


def _rows_of(label: str) -> int:
    """The example positions a step covers: its ring's rows, or its pool size (0: unpartitioned)."""
    kind, _, rest = label.partition(" ")
    if kind == "ring":
        start, end = (int(v) for v in rest.split("-"))
        return end - start
    if kind == "pool":
        return int(rest.split()[0])
    return 0


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    assets = sorted({r["asset"] for r in rows if _rows_of(r["label"])})
    for asset in assets:
        points = sorted((_rows_of(r["label"]), r["step_seconds"], r["peak_rss_mib"]) for r in rows
                        if r["asset"] == asset)
        sizes = [p[0] for p in points]
        left.plot(sizes, [p[1] for p in points], marker="o", label=asset)
        right.plot(sizes, [p[2] for p in points], marker="o", label=asset)
    left.set(xscale="log", yscale="log", xlabel="examples (ring rows, or pool size)",
             ylabel="seconds in the run (process start left out)", title="Time per asset against N")
    right.set(xscale="log", xlabel="examples (ring rows, or pool size)", ylabel="peak RSS (MiB)",
              title="Peak RSS per asset against N")
    right.axhline(4096, linestyle="--", color="grey", label="4 GiB")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{RESULT_NAME}.png", dpi=110)


if __name__ == "__main__":
    main()
