"""The results behind every published results section, kept in the repository so that the sections
cannot go stale: per section, the eval reports of every cell, their per-item results (the columns
the comparison reads), the base model's, and the run record (`results/<section>/` in the checkout). A section is
rendered from these by recomputing the comparison, so a change to the statistics shows up as a
diff of docs/results.md (`selection_assets_tests/test_published.py` re-renders each one).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from selection_assets.core import report, store
from selection_assets.reporting import results_section
from selection_assets.core.keys import Cell
from selection_assets.core.methods.references import head_to_head_rivals

ITEM_COLUMNS = ["seed", "task", "item", "suite", "correct", "answer_loss"]  # what the comparison reads
CELL_KEY = ["method", "pool_size", "budget"]


def publish(layout: store.Layout, run: dict, title: str, directory: Path, methods: list[str] | None = None) -> Path:
    """Write the results of the finished experiment at `layout` (its comparison's methods and cells;
    `run`: its run record) to `directory`, as section `title` will show them; with `methods`, only
    those of its methods (the run record says which it compared), so one run can back several
    sections."""
    comparison = store.read_json(layout.comparison_json)
    keys = sorted({(cell["method"], cell["pool_size"], cell["budget"]) for cell in comparison["cells"]})
    if methods is not None:
        unknown = sorted(set(methods) - {method for method, _, _ in keys})
        if unknown:
            raise ValueError(f"the finished experiment compared no {', '.join(unknown)}")
        keys = [key for key in keys if key[0] in methods]
        run = {**run, "compared": [method for method in run["methods"] if method in methods]}
    reports = [store.read_json(layout.eval_report(method, Cell(pool, budget))) for method, pool, budget in keys]
    items = pd.concat([_compact(pd.read_parquet(layout.eval_items(method, Cell(pool, budget))))
                       .assign(method=method, pool_size=pool, budget=budget) for method, pool, budget in keys],
                      ignore_index=True)
    directory.mkdir(parents=True, exist_ok=True)
    store.write_parquet(items[CELL_KEY + [c for c in ITEM_COLUMNS if c in items]], directory / "items.parquet")
    store.write_parquet(_compact(pd.read_parquet(layout.base_eval_items)), directory / "base_items.parquet")
    store.write_json({"title": title, "run": run, "reports": reports, "base": store.read_json(layout.base_eval_report)},
                     directory / "section.json")
    return directory


def _compact(items: pd.DataFrame) -> pd.DataFrame:
    return items[[c for c in ITEM_COLUMNS if c in items]]


def comparison(directory: Path, resamples: int | None = None) -> dict:
    """The comparison document (`report.comparison_document`) of the results in `directory`,
    computed afresh from their items."""
    section = store.read_json(directory / "section.json")
    items = pd.read_parquet(directory / "items.parquet")
    tables = {key: group.drop(columns=CELL_KEY).reset_index(drop=True)
              for key, group in items.groupby(CELL_KEY, sort=False)}
    options = {} if resamples is None else {"resamples": resamples}
    compared = report.compare(section["reports"], lambda method, pool, budget: tables[(method, pool, budget)],
                              pd.read_parquet(directory / "base_items.parquet"), head_to_head_rivals(), **options)
    return report.comparison_document(compared, section["base"])


def render(directory: Path) -> str:
    """The markdown of the results section whose results are in `directory`."""
    section = store.read_json(directory / "section.json")
    return results_section.render(comparison(directory), section["run"], section["title"])


def sections(root: Path) -> dict[str, Path]:
    """Every published section under `root` (the checkout's `results/`) by name."""
    return {path.name: path for path in sorted(root.iterdir()) if (path / "section.json").exists()} \
        if root.exists() else {}
