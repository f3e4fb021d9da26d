"""Reading a curve of quality against subset size (INSTRUCTMINING, Cao et al. 2023, section 4: double
descent, and the "balance point" where quality-selected and random data meet), with tests, not by eye.

Input: per subset size, the per-item tables (`core.evaluate.evaluate_items`, every seed) of the
selected subset's checkpoints and of random's at the same size. Pure compute, no Dagster.

- **Double descent**: at an interior size b the curve has risen and falls again when b is worse than
  the best size before it and worse than the best size after it. Each of the two is the comparison's
  paired test (b's checkpoints against the other size's, on the same test items); b counts only if
  both hold (intersection-union: the larger p), and the interior sizes are one Holm family.
- **Where the curves meet**: the method against random at each size by the paired test, one Holm
  family per measure over the sizes; the balance point is the first size from which the method is
  never again better than random, if it was better before it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from selection_assets.core import report, stats

MEASURES = {"exact_match": ("correct", True), "answer_loss": ("answer_loss", False)}  # column, higher is better


def double_descent(items_by_size: Mapping[int, pd.DataFrame], measure: str = "answer_loss", *,
                   resamples: int = stats.DEFAULT_RESAMPLES) -> dict:
    """Whether `measure` (a key of MEASURES) dips, rises and dips again along the sizes, and where:
    per interior size, its difference from the best earlier and best later size (positive: worse),
    each test's p, the intersection-union p, the Holm-adjusted p and whether it is a peak."""
    column, higher_is_better = MEASURES[measure]
    sizes = sorted(items_by_size)
    means = {size: float(np.nanmean(report.item_matrix(items_by_size[size], column))) for size in sizes}
    badness = {size: -means[size] if higher_is_better else means[size] for size in sizes}
    rows = []
    for position in range(1, len(sizes) - 1):
        size = sizes[position]
        before = min(sizes[:position], key=lambda s: badness[s])
        after = min(sizes[position + 1:], key=lambda s: badness[s])
        tests = [report.paired_item_test(items_by_size[size], items_by_size[other], column, resamples)
                 for other in (before, after)]
        sign = -1.0 if higher_is_better else 1.0  # "worse" as a positive number
        rows.append({"size": size, "best_before": before, "best_after": after,
                     "worse_than_before": sign * tests[0].difference, "worse_than_after": sign * tests[1].difference,
                     "p_before": tests[0].p_value, "p_after": tests[1].p_value,
                     # both must hold, and each in the direction of a peak
                     "p": max(t.p_value if sign * t.difference > 0 else 1.0 for t in tests)})
    table = pd.DataFrame(rows, columns=["size", "best_before", "best_after", "worse_than_before",
                                        "worse_than_after", "p_before", "p_after", "p"])
    table["p_holm"] = stats.holm_adjust(table["p"].to_numpy()) if len(table) else []
    table["peak"] = table["p_holm"] < report.ALPHA
    return {"measure": measure, "means": means, "peaks": table, "double_descent": bool(table["peak"].any())}


def against_random(method_items: Mapping[int, pd.DataFrame], random_items: Mapping[int, pd.DataFrame], *,
                   resamples: int = stats.DEFAULT_RESAMPLES) -> pd.DataFrame:
    """The method minus random at every size both have, per measure: difference, 95% interval, the
    p-value Holm-adjusted over the sizes (one family per measure) and the verdict."""
    sizes = sorted(set(method_items) & set(random_items))
    rows = []
    for measure, (column, higher_is_better) in MEASURES.items():
        tests = [report.paired_item_test(method_items[size], random_items[size], column, resamples) for size in sizes]
        adjusted, verdicts = report.holm_verdicts([t.difference for t in tests], [t.p_value for t in tests],
                                                  [t.min_p for t in tests], higher_is_better)
        rows += [{"measure": measure, "size": size, "difference": t.difference, "low": t.low, "high": t.high,
                  "p_holm": float(p), "verdict": verdict}
                 for size, t, p, verdict in zip(sizes, tests, adjusted, verdicts)]
    return pd.DataFrame(rows)


def balance_point(verdicts: pd.DataFrame, measure: str) -> int | None:
    """The first size from which the method is never again "better" than random on `measure`, when
    it was better at some smaller size (`against_random`'s table); None when it never was better, or
    still is at the largest size."""
    rows = verdicts[verdicts["measure"] == measure].sort_values("size")
    better = rows["verdict"].eq("better").to_numpy()
    if not better.any() or better[-1]:
        return None
    last_better = int(np.flatnonzero(better)[-1])
    return int(rows["size"].iloc[last_better + 1])
