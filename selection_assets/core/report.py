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


def scaling_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Average exact match vs pool size, one line per (method, budget); saved as PNG."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (method, budget), group in frame.groupby(["method", "budget"], sort=True):
        group = group.sort_values("pool_size")
        axes[0].plot(group["pool_size"], group["avg_exact_match"], marker="o", label=f"{method} (k={budget})")
        axes[1].plot(group["pool_size"], group["avg_answer_loss"], marker="o", label=f"{method} (k={budget})")
    for axis, label in zip(axes, ["average exact match", "average answer loss (nats/token)"]):
        axis.set_xscale("log")
        axis.set_xlabel("pool size")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle("Selection method vs pool size")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def png_markdown(path: Path, alt: str) -> str:
    """Markdown embedding a PNG inline (data URI), so the Dagster UI shows the plot itself."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


