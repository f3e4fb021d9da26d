"""Comparison tables and plots across methods, pool sizes and budgets (pure pandas/matplotlib)."""

from __future__ import annotations

import base64

from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

SUMMARY_COLUMNS = ["method", "pool_size", "budget", "avg_exact_match", "avg_exact_match_stderr", "avg_answer_loss",
                   "selection_precision", "selection_flops", "training_flops"]


def comparison_frame(reports: Iterable[dict]) -> pd.DataFrame:
    """One row per (method, pool size, budget): summary numbers plus exact match per task."""
    rows = []
    for report in reports:
        row = {key: report.get(key) for key in SUMMARY_COLUMNS}
        for task in report["tasks"]:
            row[f"em_{task['task']}"] = task["exact_match"]
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["pool_size", "budget", "avg_exact_match"], ascending=[True, True, False],
                             kind="stable").reset_index(drop=True)


def markdown_table(frame: pd.DataFrame) -> str:
    """The comparison as a markdown table with rounded numbers."""
    shown = frame.copy()
    for column in shown.columns:
        if column.endswith("flops"):
            shown[column] = shown[column].map(lambda v: f"{v:.2e}" if pd.notna(v) else "")
        elif shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: f"{v:.3f}" if pd.notna(v) else "n/a")
    return shown.to_markdown(index=False)


def ranking(frame: pd.DataFrame) -> pd.DataFrame:
    """Methods ranked by mean exact match over all cells, with mean loss, precision, cost and wins
    (cells where the method has the best exact match, ties shared)."""
    best = frame.groupby(["pool_size", "budget"])["avg_exact_match"].transform("max")
    summary = frame.assign(win=frame["avg_exact_match"] >= best).groupby("method").agg(
        mean_exact_match=("avg_exact_match", "mean"), mean_answer_loss=("avg_answer_loss", "mean"),
        mean_precision=("selection_precision", "mean"), selection_flops=("selection_flops", "mean"),
        cells=("avg_exact_match", "size"), wins=("win", "sum"))
    return summary.sort_values("mean_exact_match", ascending=False, kind="stable").reset_index()


def best_budgets(frame: pd.DataFrame) -> pd.DataFrame:
    """Subset-size search over the grid's budgets: per method and pool size, the budget with the best
    exact match (InstructMining's double-descent question: where does quality peak?)."""
    rows = frame.loc[frame.groupby(["method", "pool_size"])["avg_exact_match"].idxmax()]
    return rows[["method", "pool_size", "budget", "avg_exact_match", "avg_answer_loss"]].rename(
        columns={"budget": "best_budget"}).reset_index(drop=True)


def scaling_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Average exact match vs pool size, one panel per budget, one line per method (the RDS+
    paper's scaling figure); saved as PNG."""
    budgets = sorted(frame["budget"].unique()) or [0]
    figure, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), squeeze=False)
    for axis, budget in zip(axes[0], budgets):
        for method, group in frame[frame["budget"] == budget].groupby("method", sort=True):
            group = group.sort_values("pool_size")
            axis.plot(group["pool_size"], group["avg_exact_match"], marker="o", label=method)
        axis.set_xscale("log")
        axis.set_title(f"budget {budget}")
        axis.set_xlabel("pool size")
        axis.set_ylabel("average exact match")
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(figure, path)


def cost_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Average exact match vs selection cost (FLOPs), one marker per (method, cell); free methods
    are drawn at the left edge."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    positive = frame["selection_flops"][frame["selection_flops"] > 0]
    floor = positive.min() / 10 if len(positive) else 1.0
    for method, group in frame.groupby("method", sort=True):
        axis.scatter(group["selection_flops"].clip(lower=floor), group["avg_exact_match"], label=method, s=18)
    axis.set_xscale("log")
    axis.set_xlabel(f"selection FLOPs (free methods drawn at {floor:.0e})")
    axis.set_ylabel("average exact match")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def png_markdown(path: Path, alt: str) -> str:
    """Markdown embedding a PNG inline (data URI), so the Dagster UI shows the plot itself."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


