"""Eval summaries and the comparison across methods, pool sizes and budgets, with their uncertainty
(pure pandas/numpy; its tables and plots are drawn by reporting/views.py).

A method's cell is summarised from its per-item table (one row per seed and test item): exact match
and answer loss over all test items with 95% bootstrap intervals. The comparison pairs every method
with the random baseline of the same cell on the same test items (`stats.paired_test`: over the
trained models and over the test items, both), Holm-adjusts the p-values over all such tests, and
calls a difference "better" or "worse" only where the adjusted p-value is below 0.05. Where no
p-value of the family can get below it (one seed a side, too few seeds, too few items that differ),
the verdict is "cannot decide"; elsewhere "no difference". Every test also gives its minimum
detectable effect at 80% power at its family's first Holm level. RDS+ is also paired directly with
each method Ivison et al. report it beating (a Holm family of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from selection_assets.core import evaluate, stats

BASELINE = "random"
ALPHA = 0.05


def headline_items(items: pd.DataFrame) -> pd.DataFrame:
    """The rows behind the headline numbers and paired tests: the project's eval tasks when there are
    any (tasks named for the harness itself, which have no answer loss, are reported per task)."""
    project = items["suite"] == "project" if "suite" in items else pd.Series(True, index=items.index)
    return items[project] if project.any() else items


def item_matrix(items: pd.DataFrame, column: str) -> np.ndarray:
    """A (seeds, test items) matrix of `column` over the headline rows, items in (task, item) order."""
    ordered = headline_items(items).sort_values(["seed", "task", "item"], kind="stable")
    return ordered[column].to_numpy(dtype=np.float64).reshape(ordered["seed"].nunique(), -1)


def summarise_items(items: pd.DataFrame) -> dict:
    """Headline numbers of a per-item table: exact match and answer loss over all test items (mean
    over seeds) with 95% bootstrap intervals over items and seeds, per seed and per task."""
    em = stats.mean_interval(item_matrix(items, "correct"))
    loss = stats.mean_interval(item_matrix(items, "answer_loss"))
    headline = headline_items(items)
    by_seed = headline.groupby("seed").agg(exact_match=("correct", "mean"), answer_loss=("answer_loss", "mean"))
    return {"seeds": [int(s) for s in by_seed.index], "n_items": int(headline.groupby("seed").size().iloc[0]),
            "exact_match": em.estimate, "exact_match_ci": [em.low, em.high],
            "answer_loss": loss.estimate, "answer_loss_ci": [loss.low, loss.high],
            "by_seed": {str(k): v for k, v in by_seed.to_dict(orient="index").items()},
            "tasks": evaluate.task_summary(items).to_dict(orient="records")}


@dataclass
class Comparison:
    """Everything the comparison report shows."""

    cells: pd.DataFrame  # per (method, pool size, budget): intervals and the paired test against random
    methods: pd.DataFrame  # per method: its paired difference from random averaged over all cells
    base: pd.DataFrame  # per cell: random's fine-tuned models against the un-fine-tuned base model
    pool_growth: pd.DataFrame  # per method and budget: each larger pool against the next smaller one
    head_to_head: pd.DataFrame  # a method against each its paper reports it beating (`rivals`), over shared cells
    seeds: list[int]
    cell_tests: int  # method-vs-random tests over the grid (the Holm family of `cells`)


def paired_item_test(ours, theirs, column: str, resamples: int = stats.DEFAULT_RESAMPLES) -> stats.PairedTest:
    """`column` of `ours` minus `theirs` by the comparison's paired test, on the same test items; each
    side a per-item table, or an equally long list of them (one per grid cell)."""
    def matrices(tables):
        return [item_matrix(t, column) for t in tables] if isinstance(tables, list) else item_matrix(tables, column)

    return stats.paired_test(matrices(ours), matrices(theirs), resamples=resamples)


def _paired_em_and_loss(ours, theirs, resamples: int) -> tuple[stats.PairedTest, stats.PairedTest]:
    """Exact match and answer loss of `ours` minus `theirs` (`paired_item_test`)."""
    return tuple(paired_item_test(ours, theirs, column, resamples) for column in ("correct", "answer_loss"))


VERDICTS = ("better", "worse", "no difference", "cannot decide")


def _verdict(difference: float, adjusted_p: float, decidable: bool, higher_is_better: bool = True) -> str:
    if adjusted_p < ALPHA:
        return "better" if (difference > 0) == higher_is_better else "worse"
    return "no difference" if decidable else "cannot decide"


def holm_verdicts(differences, p_values, min_ps=None, higher_is_better: bool = True) -> tuple[np.ndarray, list[str]]:
    """One Holm family: the adjusted p-values and each test's verdict from its adjusted p. With the
    tests' smallest reachable p-values `min_ps`: "cannot decide" for a test that can never get below
    ALPHA, and for every test of a family whose first Holm step cannot (m times each smallest p is
    at least ALPHA), rather than "no difference"."""
    adjusted = np.asarray(stats.holm_adjust(p_values))
    floors = np.zeros(len(adjusted)) if min_ps is None else np.asarray(min_ps, dtype=np.float64)
    family_decides = bool(len(floors)) and bool((floors * len(floors) < ALPHA).any())
    return adjusted, [_verdict(d, p, family_decides and floor < ALPHA, higher_is_better)
                      for d, p, floor in zip(differences, adjusted, floors)]


def _test_columns(prefix: str, name: str, test: stats.PairedTest) -> dict:
    """One test's columns: its difference `name`, interval, p-value (both parts) and its floor."""
    return {name: test.difference, f"{name}_ci": interval_text((test.low, test.high), test.models_unknown),
            f"{prefix}_p": test.p_value, f"{prefix}_p_models": test.p_models, f"{prefix}_p_items": test.p_items,
            f"{prefix}_min_p": test.min_p, f"{prefix}_p_at_floor": test.at_floor}


def _family(frame: pd.DataFrame, rows, tests: list[stats.PairedTest], prefix: str, name: str,
            higher_is_better: bool) -> None:
    """Holm over `tests` (those of `rows`, in order): each one's adjusted p, verdict and minimum
    detectable effect at the family's first Holm level (ALPHA / tests), on its row."""
    if not tests:
        return
    adjusted, verdicts = holm_verdicts([t.difference for t in tests], [t.p_value for t in tests],
                                       [t.min_p for t in tests], higher_is_better)
    _set_tested(frame, rows, **{f"{prefix}_p_holm": adjusted, f"{prefix}_verdict": verdicts,
                                f"{prefix}_mde": [t.detectable(ALPHA / len(tests)) for t in tests]})


def _set_tested(frame: pd.DataFrame, tested: pd.Series, **columns) -> None:
    """Write each new column on the tested rows only, leaving the others missing. Each column is
    created all-missing first (NaN floats, or None objects for text): pandas 2 fills the untested
    rows of a column created by `frame.loc[tested, name] = strings` with a stray string ('n'), which
    the reports then showed as random's verdict."""
    for name, values in columns.items():
        values = list(values)
        numeric = all(isinstance(value, (int, float, np.number)) and not isinstance(value, bool) for value in values)
        frame[name] = pd.Series(np.nan if numeric else None, index=frame.index, dtype=float if numeric else object)
        frame.loc[tested, name] = values


def interval_text(values, items_only: bool = False) -> str:
    """An interval as the reports write it; one over the test items alone (one trained model a side,
    so the models' spread is unknown) is marked so."""
    return f"[{values[0]:.3f}, {values[1]:.3f}]" + (" items only" if items_only else "")


def paired_verdicts(ours: pd.DataFrame, theirs: pd.DataFrame, *, resamples: int = stats.DEFAULT_RESAMPLES) -> dict:
    """`ours` minus `theirs` (per-item tables of one cell each) by the comparison's paired test:
    exact match and answer loss, one Holm family over the two, each with its interval, adjusted
    p-value, smallest reachable p, minimum detectable effect and verdict ("cannot decide" where the
    design cannot reach p < ALPHA)."""
    em, loss = _paired_em_and_loss(ours, theirs, resamples)
    # a lower loss is better: its sign is turned so that the family reads "higher is better"
    adjusted, verdicts = holm_verdicts([em.difference, -loss.difference], [em.p_value, loss.p_value],
                                       [em.min_p, loss.min_p])
    result = {}
    for name, test, p, verdict in (("exact_match", em, adjusted[0], verdicts[0]),
                                   ("answer_loss", loss, adjusted[1], verdicts[1])):
        result[name] = {"difference": test.difference, "ci": [test.low, test.high], "p_holm": float(p),
                        "min_p": test.min_p, "detectable": test.detectable(ALPHA), "verdict": verdict}
    return result


def compare(reports: Iterable[dict], items_of: Callable[[str, int, int], pd.DataFrame],
            base_items: pd.DataFrame | None = None, rivals: Mapping[str, Sequence[str]] | None = None, *,
            resamples: int = stats.DEFAULT_RESAMPLES) -> Comparison:
    """Intervals and paired tests of every eval report against the random baseline of its cell.

    `items_of(method, pool_size, budget)` returns that report's per-item table; `base_items` is the
    un-fine-tuned base model's. Without a random report in a cell, its methods are not tested.
    `rivals` maps a method to those its paper reports it beating (the method modules' `OUTPERFORMS`):
    each pair that ran is also tested directly (`head_to_head`).
    """
    reports = sorted(reports, key=lambda r: (r["pool_size"], r["budget"], r["method"]))
    matrices = {(r["method"], r["pool_size"], r["budget"]): items_of(r["method"], r["pool_size"], r["budget"])
                for r in reports}
    rows, tests = [], {"em": [], "loss": []}
    for report in reports:
        key = (report["method"], report["pool_size"], report["budget"])
        composition = report.get("selection_composition") or {}
        row = {"method": key[0], "pool_size": key[1], "budget": key[2], "seeds": len(report["seeds"]),
               "exact_match": report["exact_match"], "exact_match_ci": interval_text(report["exact_match_ci"]),
               "answer_loss": report["answer_loss"], "answer_loss_ci": interval_text(report["answer_loss_ci"]),
               "selection_precision": report.get("selection_precision"),
               "targeted_share": composition.get("targeted"), "clean_share": composition.get("clean"),
               "distinct_answers": composition.get("distinct_answers"),
               "answer_entropy_bits": composition.get("answer_entropy_bits"),
               "dev_answer_share": composition.get("dev_answer_share"),
               "selection_flops": report.get("selection_flops"), "training_flops": report.get("training_flops")}
        baseline_key = (BASELINE, key[1], key[2])
        if key[0] != BASELINE and baseline_key in matrices:
            em, loss = _paired_em_and_loss(matrices[key], matrices[baseline_key], resamples)
            row.update(_test_columns("em", "em_vs_random", em) | _test_columns("loss", "loss_vs_random", loss))
            tests["em"].append(em)
            tests["loss"].append(loss)
        for task in report["tasks"]:
            row[f"em_{task['task']}"] = task["exact_match"]
        rows.append(row)
    cells = pd.DataFrame(rows)
    tested = cells["em_p"].notna() if "em_p" in cells else pd.Series(False, index=cells.index)
    _family(cells, tested, tests["em"], "em", "em_vs_random", higher_is_better=True)
    _family(cells, tested, tests["loss"], "loss", "loss_vs_random", higher_is_better=False)
    seeds = sorted({s for r in reports for s in r["seeds"]})
    return Comparison(cells=cells, methods=_per_method(cells, matrices, resamples), seeds=seeds,
                      base=_against_base(matrices, base_items, resamples),
                      pool_growth=_pool_growth(cells, matrices, resamples),
                      head_to_head=_head_to_head(matrices, rivals or {}, resamples), cell_tests=int(tested.sum()))


def comparison_document(comparison: Comparison, base: dict | None) -> dict:
    """The comparison as JSON: the source of a published results section."""
    return {"seeds": comparison.seeds, "paired_tests": comparison.cell_tests, "alpha": ALPHA,
            "cells": comparison.cells.to_dict(orient="records"),
            "methods": comparison.methods.to_dict(orient="records"),
            "random_vs_base": comparison.base.to_dict(orient="records"),
            "pool_growth": comparison.pool_growth.to_dict(orient="records"),
            "head_to_head": comparison.head_to_head.to_dict(orient="records"),
            "base": None if base is None else {k: base[k] for k in ("exact_match", "exact_match_ci", "answer_loss",
                                                                    "answer_loss_ci", "n_items")}}


def _head_to_head(matrices: dict, rivals: Mapping[str, Sequence[str]], resamples: int) -> pd.DataFrame:
    """Each method of `rivals` minus each of its rivals that ran, paired on the same items over every
    cell both ran (exact match and answer loss, each a Holm family over the pairs); verdicts say
    whether the method is the better of the two."""
    rows, tests = [], {"em": [], "loss": []}
    for method, rival in ((method, rival) for method, theirs in rivals.items() for rival in theirs):
        pairs = [(key, (rival, *key[1:])) for key in matrices
                 if key[0] == method and (rival, *key[1:]) in matrices]
        if not pairs:
            continue
        em, loss = _paired_em_and_loss([matrices[ours] for ours, _ in pairs],
                                       [matrices[theirs] for _, theirs in pairs], resamples)
        rows.append({"method": method, "rival": rival, "cells": len(pairs),
                     **_test_columns("em", "em_difference", em), **_test_columns("loss", "loss_difference", loss)})
        tests["em"].append(em)
        tests["loss"].append(loss)
    frame = pd.DataFrame(rows)
    every = pd.Series(True, index=frame.index)
    _family(frame, every, tests["em"], "em", "em_difference", higher_is_better=True)
    _family(frame, every, tests["loss"], "loss", "loss_difference", higher_is_better=False)
    return frame


def _pool_growth(cells: pd.DataFrame, matrices: dict, resamples: int) -> pd.DataFrame:
    """Per method and budget, each pool size against the next smaller one (same test items, paired):
    does a method's quality rise as its pool grows, as Ivison et al. found for RDS+? Exact match and
    answer loss are one Holm family, so a claim over both ("worse on either") holds as a whole;
    verdicts say whether the larger pool is better, worse or not resolvably different."""
    rows, tests = [], []
    for (method, budget), group in cells.groupby(["method", "budget"], sort=False):
        group = group.sort_values("pool_size")
        for smaller, larger in zip(group.itertuples(), group.iloc[1:].itertuples()):
            small, large = matrices[(method, smaller.pool_size, budget)], matrices[(method, larger.pool_size, budget)]
            em, loss = _paired_em_and_loss(large, small, resamples)
            rows.append({"method": method, "budget": budget, "from_pool": smaller.pool_size,
                         "to_pool": larger.pool_size, **_test_columns("em", "em_change", em),
                         **_test_columns("loss", "loss_change", loss),
                         "precision_change": (larger.selection_precision - smaller.selection_precision
                                              if pd.notna(larger.selection_precision)
                                              and pd.notna(smaller.selection_precision) else None)})
            tests.append((em, loss))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    both = [em for em, _ in tests] + [loss for _, loss in tests]
    adjusted, verdicts = holm_verdicts([t.difference * (1 if i < len(tests) else -1) for i, t in enumerate(both)],
                                       [t.p_value for t in both], [t.min_p for t in both])
    detectable = [t.detectable(ALPHA / len(both)) for t in both]
    count = len(tests)
    frame["em_p_holm"], frame["loss_p_holm"] = adjusted[:count], adjusted[count:]
    frame["em_verdict"], frame["loss_verdict"] = verdicts[:count], verdicts[count:]
    frame["em_mde"], frame["loss_mde"] = detectable[:count], detectable[count:]
    return frame


def _per_method(cells: pd.DataFrame, matrices: dict, resamples: int) -> pd.DataFrame:
    """Each method against random over every cell they share (one paired test per method, Holm over
    methods), with counts of the cells where it is better, worse or not resolvably different."""
    rows, tests = [], []
    for method, group in cells.groupby("method", sort=False):
        row = {"method": method, "cells": len(group), "mean_exact_match": group["exact_match"].mean(),
               "mean_answer_loss": group["answer_loss"].mean(),
               "mean_precision": group["selection_precision"].mean(),
               "selection_flops": group["selection_flops"].mean()}
        pairs = [((method, p, b), (BASELINE, p, b)) for p, b in zip(group["pool_size"], group["budget"])
                 if (BASELINE, p, b) in matrices]
        if method != BASELINE and pairs:
            em = stats.paired_test([item_matrix(matrices[m], "correct") for m, _ in pairs],
                                   [item_matrix(matrices[r], "correct") for _, r in pairs], resamples=resamples)
            row.update(_test_columns("em", "em_vs_random", em))
            verdicts = group.get("em_verdict", pd.Series(dtype=object)).value_counts()
            row.update(cells_better=int(verdicts.get("better", 0)), cells_worse=int(verdicts.get("worse", 0)))
            tests.append(em)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if tests:
        tested = frame["em_p"].notna()
        _family(frame, tested, tests, "em", "em_vs_random", higher_is_better=True)
        frame = frame.rename(columns={"em_verdict": "verdict"})
        frame = frame.sort_values("em_vs_random", ascending=False, kind="stable", na_position="first")
    return frame.reset_index(drop=True)


def _against_base(matrices: dict, base_items: pd.DataFrame | None, resamples: int) -> pd.DataFrame:
    """Per cell: the random baseline's fine-tuned models minus the un-fine-tuned base model (one
    model, so its intervals are over the test items and random's seeds)."""
    if base_items is None:
        return pd.DataFrame()
    rows = []
    for (method, pool_size, budget), items in matrices.items():
        if method != BASELINE:
            continue
        em, loss = _paired_em_and_loss(items, base_items, resamples)
        rows.append({"pool_size": pool_size, "budget": budget, "em_gain": em.difference,
                     "em_gain_ci": interval_text((em.low, em.high), em.models_unknown), "loss_change": loss.difference,
                     "loss_change_ci": interval_text((loss.low, loss.high), loss.models_unknown)})
    return pd.DataFrame(rows)


def best_budgets(cells: pd.DataFrame) -> pd.DataFrame:
    """Subset-size search over the grid's budgets: per method and pool size, the budget with the best
    exact match (InstructMining's double-descent question: where does quality peak?)."""
    rows = cells.loc[cells.groupby(["method", "pool_size"])["exact_match"].idxmax()]
    return rows[["method", "pool_size", "budget", "exact_match", "exact_match_ci", "answer_loss"]].rename(
        columns={"budget": "best_budget"}).reset_index(drop=True)


def interval_bounds(text: str) -> tuple[float, float]:
    """An interval as the reports write it ("[low, high]", `interval_text`) read back as numbers."""
    low, high = text.removesuffix(" items only").strip("[]").split(",")
    return float(low), float(high)
