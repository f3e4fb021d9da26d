"""How a comparison is shown: the comparison report as markdown, markdown tables (rounded numbers, p-values at their Monte-Carlo floor
as bounds), PNG plots (quality against pool size, subset size and selection cost; differences from
random) and inline images for the Dagster UI. The numbers themselves come from core/report.py."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from selection_assets.core.report import ALPHA, Comparison, best_budgets, interval_bounds, interval_text  # noqa: E402


def _p_text(value, at_floor) -> str:
    """A p-value as printed: at the Monte-Carlo floor it is an upper bound ("<0.00025")."""
    if pd.isna(value):
        return ""
    return f"<{value:.3g}" if at_floor is True else f"{value:.3g}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame as a markdown table with rounded numbers (FLOPs in scientific notation; a p-value at
    its test's Monte-Carlo floor as an upper bound; an effect no test of the design can detect as
    "none")."""
    shown = frame.drop(columns=[c for c in frame.columns if c.endswith("_p_at_floor")])
    for column in shown.columns:
        prefix = column.split("_p")[0] if "_p" in column else None
        floors = frame.get(f"{prefix}_p_at_floor", pd.Series(False, index=frame.index))
        if column.endswith("flops"):
            shown[column] = shown[column].map(lambda v: f"{v:.2e}" if pd.notna(v) else "")
        elif column.endswith("_p") or column.endswith("_p_holm"):
            shown[column] = [_p_text(v, f) for v, f in zip(shown[column], floors)]
        elif column.endswith("_p_models") or column.endswith("_p_items") or column.endswith("_min_p"):
            shown[column] = shown[column].map(lambda v: f"{v:.3g}" if pd.notna(v) else "")
        elif column.endswith("_mde"):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else "none" if np.isinf(v) else f"{v:.3f}")
        elif shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: f"{v:.3f}" if pd.notna(v) else "")
        elif not pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column].astype(object).where(shown[column].notna(), "")
    return shown.to_markdown(index=False)


def scaling_plot(cells: pd.DataFrame, path: Path) -> Path:
    """Exact match vs pool size with 95% interval error bars, one panel per budget, one line per
    method (the RDS+ paper's scaling figure); saved as PNG."""
    budgets = sorted(cells["budget"].unique()) or [0]
    figure, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), squeeze=False)
    for axis, budget in zip(axes[0], budgets):
        for method, group in cells[cells["budget"] == budget].groupby("method", sort=True):
            group = group.sort_values("pool_size")
            bounds = np.array([interval_bounds(t) for t in group["exact_match_ci"]])
            errors = np.abs(bounds.T - group["exact_match"].to_numpy())
            axis.errorbar(group["pool_size"], group["exact_match"], yerr=errors, marker="o", capsize=3, label=method)
        axis.set_xscale("log")
        axis.set_title(f"budget {budget}")
        axis.set_xlabel("pool size")
        axis.set_ylabel("exact match (95% interval)")
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(figure, path)


def size_curve_plot(curve: pd.DataFrame, path: Path) -> Path:
    """Exact match and answer loss against subset size (log scale), with 95% interval error bars,
    one line per method (a subset-size search's curve: the searched method and random); PNG."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, measure, label in ((axes[0], "exact_match", "exact match"), (axes[1], "answer_loss", "answer loss")):
        for method, group in curve.groupby("method", sort=True):
            group = group.sort_values("size")
            errors = np.abs(group[[f"{measure}_low", f"{measure}_high"]].to_numpy().T - group[measure].to_numpy())
            axis.errorbar(group["size"], group[measure], yerr=errors, marker="o", capsize=3, label=method)
        axis.set_xscale("log")
        axis.minorticks_off()
        sizes = sorted(curve["size"].unique())
        axis.set_xticks(sizes, [str(size) for size in sizes], fontsize=7, rotation=45)
        axis.set_xlabel("subset size")
        axis.set_ylabel(f"{label} (test, 95% interval)")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    return _save(figure, path)


def difference_plot(cells: pd.DataFrame, path: Path) -> Path:
    """Exact match minus random's, with its paired 95% interval, per method and cell (a forest plot);
    intervals crossing the zero line are not differences."""
    tested = cells[cells.get("em_vs_random", pd.Series(dtype=float)).notna()] if "em_vs_random" in cells else cells.iloc[:0]
    tested = tested.sort_values(["method", "pool_size", "budget"])
    figure, axis = plt.subplots(figsize=(7, 0.28 * max(len(tested), 4) + 1.2))
    labels = [f"{m}  p{p} b{b}" for m, p, b in zip(tested["method"], tested["pool_size"], tested["budget"])]
    if len(tested):
        bounds = np.array([interval_bounds(t) for t in tested["em_vs_random_ci"]])
        errors = np.abs(bounds.T - tested["em_vs_random"].to_numpy())
        colours = ["tab:green" if v == "better" else "tab:red" if v == "worse" else "tab:gray"
                   for v in tested["em_verdict"]]
        positions = np.arange(len(tested))
        for position, value, low, high, colour in zip(positions, tested["em_vs_random"], errors[0], errors[1], colours):
            axis.errorbar(value, position, xerr=[[low], [high]], fmt="o", color=colour, capsize=2)
        axis.set_yticks(positions, labels, fontsize=7)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("exact match minus random (paired 95% interval)")
    axis.grid(alpha=0.3, axis="x")
    return _save(figure, path)


def cost_plot(cells: pd.DataFrame, path: Path) -> Path:
    """Exact match vs selection cost (FLOPs), one marker per (method, cell); free methods are drawn
    at the left edge."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    flops = cells["selection_flops"].astype(float)
    positive = flops[flops > 0]
    floor = positive.min() / 10 if len(positive) else 1.0
    for method, group in cells.groupby("method", sort=True):
        axis.scatter(group["selection_flops"].astype(float).clip(lower=floor), group["exact_match"], label=method, s=18)
    axis.set_xscale("log")
    axis.set_xlabel(f"selection FLOPs (free methods drawn at {floor:.0e})")
    axis.set_ylabel("exact match")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return path


def png_markdown(path: Path, alt: str) -> str:
    """Markdown embedding a PNG inline (data URI), so the Dagster UI shows the plot itself."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def comparison_markdown(comparison: Comparison, base: dict | None) -> str:
    """The comparison report as markdown (what `selection-assets demo` prints)."""
    seeds = len(comparison.seeds)
    parts = [f"Seeds: {comparison.seeds}. Each difference is tested over the trained models and over the test items "
             f"and counts only if it holds both ways; its interval is the 95% t interval of both"
             + ("" if seeds > 1 else " (one seed: over the test items only, so no test can decide)")
             + f"; {comparison.cell_tests} method-vs-random tests, Holm-adjusted, a difference counts at "
               f"adjusted p < {ALPHA}, and where no test of a family can get below it the verdict is "
               f"'cannot decide'. `*_mde`: the smallest difference the test detects with 80% power.",
             "## Methods against random (paired over all cells)", markdown_table(comparison.methods),
             "## Every cell", markdown_table(comparison.cells)]
    if base is not None:
        parts += [f"## Random subsets against the base model without fine-tuning (exact match "
                  f"{base['exact_match']:.3f} {interval_text(base['exact_match_ci'])}, answer loss "
                  f"{base['answer_loss']:.3f})", markdown_table(comparison.base)]
    if not comparison.head_to_head.empty:
        duelling = ", ".join(comparison.head_to_head["method"].unique())
        parts += [f"## {duelling} against the methods its paper reports it beating (paired over shared cells, Holm "
                  "over rivals)", markdown_table(comparison.head_to_head)]
    parts += ["## Each method as its pool grows (larger pool minus the next smaller one, paired)",
              markdown_table(comparison.pool_growth),
              "## Best budget per method and pool size (the best of the grid's budgets)",
              markdown_table(best_budgets(comparison.cells))]
    return "\n\n".join(parts) + "\n"
