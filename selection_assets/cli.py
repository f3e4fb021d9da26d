"""The `selection-assets` command: `demo` materialises the whole lineage into a Dagster instance.

The demo runs the stages in lineage order, each as Dagster runs recorded in the instance under
DAGSTER_HOME (default ./.dagster_home), so `dagster dev` with the same DAGSTER_HOME shows every
materialisation, its metadata and checks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from dagster import AssetKey, DagsterInstance, MultiPartitionKey, materialize
from transformers.utils import logging as transformers_logging

from selection_assets.partitions import BUDGET_DIM, POOL_DIM, Grid

REPO_INSTANCE_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def prepare_dagster_home(default: Path) -> Path:
    """Use $DAGSTER_HOME, else `default`; make sure it exists and holds the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if REPO_INSTANCE_YAML.exists() and not (home / "dagster.yaml").exists():
        shutil.copy(REPO_INSTANCE_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def stage_plan(grid: Grid, assets: list) -> list[tuple[str, list[AssetKey], str | None]]:
    """The demo's runs in lineage order: (label, asset keys, partition key or None)."""
    by_group: dict[str, list[AssetKey]] = {}
    for asset_def in assets:
        for key in asset_def.keys:
            by_group.setdefault(asset_def.group_names_by_key[key], []).append(key)
    plan: list[tuple[str, list[AssetKey], str | None]] = [
        ("sources and models", by_group["sources"] + by_group["models"]
         + [AssetKey("query_embeddings"), AssetKey("eval_report_base")], None)]
    per_pool = by_group["pool"] + [AssetKey("pool_embeddings")] + by_group["scores"]
    for pool_size in grid.pool_sizes:
        plan.append((f"pool {pool_size}", per_pool, str(pool_size)))
    per_cell = by_group["selections"] + by_group["training"] + [
        k for k in by_group["reports"] if k not in (AssetKey("comparison_report"), AssetKey("eval_report_base"))]
    for pool_size, budget in grid.valid_cells():
        plan.append((f"pool {pool_size} budget {budget}", per_cell,
                     MultiPartitionKey({POOL_DIM: pool_size, BUDGET_DIM: budget})))
    plan.append(("comparison", [AssetKey("comparison_report")], None))
    return plan


def run_lineage(grid: Grid, resources: dict, instance: DagsterInstance, echo=print,
                log_level: str = "INFO") -> list:
    """Materialise every asset over every valid cell of `grid`, stage by stage; the runs' results.

    Every event still goes to the instance (and the UI); `log_level` only filters the console.
    """
    from selection_assets.definitions import build_assets

    assets = build_assets(grid)
    console = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    results = []
    for label, keys, partition in stage_plan(grid, assets):
        began = time.perf_counter()
        result = materialize(assets, selection=keys, partition_key=partition, instance=instance,
                             resources=resources, raise_on_error=True, run_config=console)
        echo(f"  {label}: {len(keys)} assets in {time.perf_counter() - began:.0f}s (run {result.run_id[:8]})")
        results.append(result)
    return results


def demo(args: argparse.Namespace) -> int:
    home = prepare_dagster_home(Path(args.dagster_home))
    from selection_assets.definitions import default_resources

    grid = Grid.from_env()
    resources = default_resources()
    storage = resources["storage"].root
    print(f"selection_assets demo: pool sizes {grid.pool_sizes} x budgets {grid.budgets}, "
          f"{len(grid.valid_cells())} valid cells\n  DAGSTER_HOME={home}\n  storage={storage}")
    began = time.perf_counter()
    transformers_logging.disable_progress_bar()
    with DagsterInstance.get() as instance:
        run_lineage(grid, resources, instance, log_level=args.log_level)
    table = Path(storage) / "reports" / "comparison" / "comparison.md"
    print(f"\nDone in {time.perf_counter() - began:.0f}s. Comparison ({table}):\n")
    print(table.read_text())
    print("Open the same runs in the UI:\n"
          f"  DAGSTER_HOME={home} dagster dev    # then http://127.0.0.1:3000")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selection-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="materialise the whole lineage on the embedded world")
    demo_parser.add_argument("--dagster-home", default=".dagster_home",
                             help="instance directory when DAGSTER_HOME is unset (default: ./.dagster_home)")
    demo_parser.add_argument("--log-level", default="WARNING",
                             help="console log level of the Dagster runs (all events reach the UI anyway)")
    demo_parser.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
