"""The published results sections (docs/results.md), rendered from a comparison report
(`comparison.json`) and the run record the demo leaves beside it, so that they cannot drift from the
numbers.

Every sentence is built from numbers printed in it or in the table beside it; a claim of a
difference follows the comparison's verdicts (`stats.paired_test` over trained models and test
items, Holm-adjusted, alpha 0.05), and a sentence that interprets is printed only beside the test
that supports it. Where the design cannot reach alpha, the section says so instead of a verdict.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from selection_assets.core.report import VERDICTS, interval_bounds
from selection_assets.reporting.views import markdown_table
from selection_assets.core.methods.references import paper_claims

PAPER_METHOD = "rds_plus"  # the method whose pool-size behaviour Ivison et al. report


def format_duration(seconds: float) -> str:
    """`seconds` as minutes and seconds ("6 min 05 s")."""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _setting_lines(comparison: dict, run: dict | None) -> list[str]:
    lines = []
    if run:
        lines.append(f"`{run['command']}` (methods: {', '.join(run['methods'])}; pool sizes "
                     f"{', '.join(map(str, run['pool_sizes']))} x budgets {', '.join(map(str, run['budgets']))}; "
                     f"seeds {', '.join(map(str, run['seeds']))}) took **{format_duration(run['wall_seconds'])}** "
                     f"on {run['machine']}."
                     + (f" This section compares {', '.join(run['compared'])} of its methods, on their own."
                        if "compared" in run else ""))
    base = comparison.get("base")
    n_items = base["n_items"] if base else None
    seeds = len(comparison["seeds"])
    lines.append(
        (f"Each model answers the same {n_items} test items. " if n_items else "")
        + "Every method is paired with random on the same items, and a difference counts only if it holds both "
          "over the trained models (their labels permuted within each cell) and over the test items (each "
          "item's difference flipped in sign): the larger p-value of the two. Intervals are the 95% t "
          "intervals of both, joined"
        + (" (over the items only where one model a side leaves the spread between models unmeasured)"
           if seeds == 1 else "")
        + f". The per-cell tests ({comparison['paired_tests']} for exact match, as many for answer loss), the "
          f"per-method tests over all cells and the pool-growth tests are each Holm-adjusted as a family; a "
          f"difference counts only at adjusted p < {comparison['alpha']}, and where no test of a family can get "
          f"below it the verdict is 'cannot decide'.")
    return lines


def _decidability_line(comparison: dict) -> list[str]:
    """How large a difference from random these tests can detect (80% power at their family's first
    Holm level), and why a family cannot decide at all."""
    cells, methods = pd.DataFrame(comparison["cells"]), pd.DataFrame(comparison["methods"])
    if "em_mde" not in cells or cells["em_mde"].isna().all():
        return []
    seeds = len(comparison["seeds"])
    parts = []
    for label, frame in (("per cell", cells), ("per method over all cells", methods)):
        detectable = frame["em_mde"].dropna() if "em_mde" in frame else pd.Series(dtype=float)
        if detectable.empty:
            continue
        finite = detectable[np.isfinite(detectable)]
        if finite.empty:
            floor = float(frame["em_min_p"].dropna().min())
            why = ("one trained model a side: the spread between models is not measured" if seeds == 1 else
                   f"the smallest p-value these {seeds} seeds a side can reach is {floor:.3g}")
            parts.append(f"{label}, none: no test can decide ({why})")
        else:
            parts.append(f"{label}, a median of {float(finite.median()):.3f} in exact match"
                         + (f" ({len(detectable) - len(finite)} of {len(detectable)} cannot decide)"
                            if len(finite) < len(detectable) else ""))
    return [f"The smallest difference from random these tests detect with 80% power: {'; '.join(parts)}."]


def _base_paragraph(comparison: dict) -> list[str]:
    base, gains = comparison.get("base"), pd.DataFrame(comparison.get("random_vs_base") or [])
    if not base or gains.empty:
        return []
    lows_em = [interval_bounds(t)[0] for t in gains["em_gain_ci"]]
    highs_loss = [interval_bounds(t)[1] for t in gains["loss_change_ci"]]
    raised = sum(low > 0 for low in lows_em)
    lowered = sum(high < 0 for high in highs_loss)
    sentence = (f"**Fine-tuning against the base model.** The base model without fine-tuning scores exact "
                f"match {base['exact_match']:.3f} [{base['exact_match_ci'][0]:.3f}, {base['exact_match_ci'][1]:.3f}] "
                f"and answer loss {base['answer_loss']:.3f}. Fine-tuning on random subsets raises exact match "
                f"with an interval above zero in {raised} of {len(gains)} cells and lowers answer loss with an "
                f"interval below zero in {lowered} of {len(gains)} cells (random minus base, paired on items; "
                f"95% intervals, each on its own):")
    columns = ["pool_size", "budget", "em_gain", "em_gain_ci", "loss_change", "loss_change_ci"]
    return [sentence, markdown_table(gains[columns])]


def _methods_paragraph(comparison: dict) -> list[str]:
    methods = pd.DataFrame(comparison["methods"])
    if "verdict" not in methods:
        return []
    tested = methods[methods["verdict"].notna()]
    groups = {verdict: tested[tested["verdict"] == verdict] for verdict in VERDICTS}

    def listing(frame: pd.DataFrame) -> str:
        if frame.empty:
            return "none"
        return ", ".join(f"{m} ({_signed(d)} {ci})" for m, d, ci in
                         zip(frame["method"], frame["em_vs_random"], frame["em_vs_random_ci"]))

    sentence = (f"**Methods against random**, exact match minus random's averaged over every cell, paired on "
                f"items ({len(tested)} tests, Holm-adjusted). Better than random: {listing(groups['better'])}. "
                f"Worse than random: {listing(groups['worse'])}. No resolvable difference: "
                f"{listing(groups['no difference'])}."
                + (f" Cannot decide with this design: {listing(groups['cannot decide'])}."
                   if not groups["cannot decide"].empty else "")
                + " The intervals are each test's own 95% interval; the verdicts use Holm-adjusted p-values, so "
                  "an interval that only just excludes zero can still be no resolvable difference.")
    sentences = [sentence, *_against_papers(groups["worse"], pd.DataFrame(comparison["cells"]))]
    columns = [c for c in ("method", "mean_exact_match", "em_vs_random", "em_vs_random_ci", "em_p_holm", "verdict",
                           "em_mde", "cells_better", "cells_worse", "mean_answer_loss", "mean_precision",
                           "selection_flops", "em_p_at_floor")
               if c in methods]
    return [" ".join(sentences), markdown_table(methods[columns])]


def _against_papers(worse: pd.DataFrame, cells: pd.DataFrame) -> list[str]:
    """For each method found worse than random that a paper reports doing well: what it picks here
    (on-target and clean shares over its cells) beside random's."""
    if "targeted_share" not in cells or cells["targeted_share"].isna().all():
        return []
    shares = cells.groupby("method")[["targeted_share", "clean_share"]].mean()
    if "random" not in shares.index:
        return []
    sentences, claims = [], paper_claims()  # what the papers report against random, beside a method found worse
    for method in worse["method"]:
        if method not in claims or method not in shares.index:
            continue
        own, base = shares.loc[method], shares.loc["random"]
        sentences.append(f"{method} is worse than random here, while {claims[method]}; its picks are "
                         f"{own['targeted_share']:.0%} on the eval tasks' skills and {own['clean_share']:.0%} "
                         f"clean (random's: {base['targeted_share']:.0%} and {base['clean_share']:.0%}).")
    return sentences


_EM_AGAINST_RANDOM = {"better": "resolvably above random", "worse": "resolvably below random",
                      "no difference": "not resolvably apart from random",
                      "cannot decide": "not decidable against random with this design"}


def _gradient_methods(methods: pd.DataFrame) -> list[str]:
    """The methods of the comparison that select by gradient features (LESS and its variants)."""
    from selection_assets.core.methods import Need, registry

    specs = registry()
    return [name for name in methods["method"] if name in specs and Need.GRADIENTS in specs[name].needs]


def _less_paragraph(comparison: dict) -> list[str]:
    """LESS set beside RDS+, as Ivison et al. set them: selection cost, exact match against random,
    per-cell answer-loss verdicts and selection precision, each from the comparison."""
    methods, cells = pd.DataFrame(comparison["methods"]), pd.DataFrame(comparison["cells"])
    gradient = _gradient_methods(methods)
    if not gradient or PAPER_METHOD not in set(methods["method"]) or "verdict" not in methods:
        return []
    table = methods.set_index("method")
    compared = [*gradient, PAPER_METHOD]
    rds_cost = float(table.loc[PAPER_METHOD, "selection_flops"])
    cost_ratio = min(float(table.loc[name, "selection_flops"]) for name in gradient) / rds_cost
    gradient_costs = ", ".join(f"{table.loc[name, 'selection_flops']:.2e} FLOPs for `{name}`" for name in gradient)
    cost = (f"Selection costs {gradient_costs} "
            f"against {rds_cost:.2e} for `{PAPER_METHOD}` ({cost_ratio:.0f}x"
            + (" or more), so the paper's cost gap holds here." if cost_ratio > 1 else "), so here LESS is no costlier."))
    exact = ("On exact match over every cell, paired with random: "
             + "; ".join(f"`{name}` {_EM_AGAINST_RANDOM[table.loc[name, 'verdict']]} "
                         f"({_signed(table.loc[name, 'em_vs_random'])} {table.loc[name, 'em_vs_random_ci']})"
                         for name in compared)
             + ". " + ("The head-to-head paragraph below pairs them directly."
                     if any(row.get("rival") in gradient for row in comparison.get("head_to_head") or [])
                     else "Each is paired with random, not with the other, so no test here orders LESS against RDS+."))
    losses = []
    for name in compared:
        verdicts = cells.loc[cells["method"] == name, "loss_verdict"].dropna()
        undecided = int((verdicts == "cannot decide").sum())
        losses.append(f"`{name}` worse than random in {int((verdicts == 'worse').sum())} of {len(verdicts)} cells "
                      f"and better in {int((verdicts == 'better').sum())}"
                      + (f", undecidable in {undecided}" if undecided else "")
                      + f" (mean answer loss {table.loc[name, 'mean_answer_loss']:.3f})")
    loss = (f"On answer loss, per cell: {'; '.join(losses)}; random's mean answer loss is "
            f"{table.loc['random', 'mean_answer_loss']:.3f}.")
    rds_precision = float(table.loc[PAPER_METHOD, "mean_precision"])
    precisions = {name: float(table.loc[name, "mean_precision"]) for name in gradient}
    precision = (f"Mean selection precision: {', '.join(f'`{name}` {value:.3f}' for name, value in precisions.items())}, "
                 f"`{PAPER_METHOD}` {rds_precision:.3f}")
    precision += "."
    return [" ".join(["**LESS against RDS+.** Ivison et al. (2025) report LESS below RDS+ at a far higher "
                      "selection cost.", cost, exact, loss, precision])]


def _head_to_head_paragraph(comparison: dict) -> list[str]:
    """RDS+ paired directly with each method its paper reports it beating: per measure, the rivals it
    is resolvably better than, worse than, and not resolvably apart from."""
    duels = pd.DataFrame(comparison.get("head_to_head") or [])
    if duels.empty:
        return []
    sentences = [f"**RDS+ head to head.** Ivison et al. (2025) report RDS+ above each method below; here each is "
                 f"paired with RDS+ on the same test items over every cell both ran ({len(duels)} "
                 f"test{'s' if len(duels) > 1 else ''} per measure, "
                 f"Holm-adjusted; RDS+ minus the other)."]
    for measure, note, column, verdict_column in (("exact match", "", "em_difference", "em_verdict"),
                                                  ("answer loss", " (lower is better)", "loss_difference",
                                                   "loss_verdict")):
        parts = []
        for verdict, phrase in (("better", "better than"), ("worse", "worse than"),
                                ("no difference", "not resolvably apart from"),
                                ("cannot decide", "not decidably ordered against")):
            chosen = duels[duels[verdict_column] == verdict]
            if not chosen.empty:
                parts.append(phrase + " " + ", ".join(f"{r.rival} ({_signed(getattr(r, column))} "
                                                      f"{getattr(r, column + '_ci')})" for r in chosen.itertuples()))
        sentences.append(f"On {measure}{note}, RDS+ is {'; '.join(parts)}.")
        below = duels.loc[duels[verdict_column] == "worse", "rival"].tolist()
        if below:
            sentences.append(f"On {measure} the paper's ordering does not hold here for "
                             f"{', '.join(below)}.")
    return [" ".join(sentences)]


def _cells_paragraph(comparison: dict) -> list[str]:
    cells = pd.DataFrame(comparison["cells"])
    columns = [c for c in ("method", "pool_size", "budget", "exact_match", "exact_match_ci", "em_vs_random",
                           "em_vs_random_ci", "em_verdict", "em_mde", "answer_loss", "loss_vs_random", "loss_verdict",
                           "selection_precision", "distinct_answers", "answer_entropy_bits", "dev_answer_share")
               if c in cells]
    return [" ".join(["Every cell (em = exact match; verdicts against random in the same cell).",
                      *_cell_verdict_counts(cells)]), markdown_table(cells[columns])]


def _cell_verdict_counts(cells: pd.DataFrame) -> list[str]:
    """How many method cells each per-cell test family finds better or worse than random, naming them
    (the answer-loss verdicts matter where exact match is too coarse to resolve anything)."""
    sentences = []
    for label, column in (("exact match", "em_verdict"), ("answer loss", "loss_verdict")):
        if column not in cells or cells[column].isna().all():
            continue
        tested = cells[cells[column].notna()]
        parts = []
        for verdict in ("better", "worse"):
            chosen = tested[tested[column] == verdict]
            listed = ", ".join(f"{r.method} at {r.pool_size}/{r.budget}" for r in chosen.itertuples())
            parts.append(f"{verdict} in {len(chosen)}" + (f" ({listed})" if listed else ""))
        undecided = int((tested[column] == "cannot decide").sum())
        sentences.append(f"On {label}, of {len(tested)} method cells tested against random: {', '.join(parts)}; "
                         + ("the design cannot decide any of them." if undecided == len(tested) else
                            (f"the design cannot decide {undecided}; " if undecided else "")
                            + "no resolvable difference in the rest."))
    return sentences


_GROWTH_EM = {"better": "rises, as Ivison et al. report for RDS+",
              "worse": "falls, unlike Ivison et al., where RDS+ gains as the pool grows",
              "no difference": "shows no resolvable change (Ivison et al. report a gain)",
              "cannot decide": "cannot be decided with this design (Ivison et al. report a gain)"}
_GROWTH_LOSS = {"better": "falls", "worse": "rises", "no difference": "shows no resolvable change",
                "cannot decide": "cannot be decided"}


def _p(value: float, at_floor) -> str:
    return f"< {value:.3g}" if at_floor is True else f"= {value:.3f}"


def _cell(cells: pd.DataFrame, method: str, pool_size: int, budget: int) -> pd.Series | None:
    found = cells[(cells["method"] == method) & (cells["pool_size"] == pool_size) & (cells["budget"] == budget)]
    return None if found.empty else found.iloc[0]


def _paper_method_growth(row, cells: pd.DataFrame) -> str:
    """One sentence group on RDS+ between two pool sizes: the paired changes with their verdicts, then
    what its selection is made of at each size (numbers only: no test here says why)."""
    small = _cell(cells, PAPER_METHOD, row.from_pool, row.budget)
    large = _cell(cells, PAPER_METHOD, row.to_pool, row.budget)
    text = (f"At budget {row.budget}, from pool {row.from_pool} to {row.to_pool}, RDS+ exact match "
            f"{_GROWTH_EM[row.em_verdict]}: {_signed(row.em_change)} {row.em_change_ci} (Holm p "
            f"{_p(row.em_p_holm, getattr(row, 'em_p_at_floor', False))}); its answer loss "
            f"{_GROWTH_LOSS[row.loss_verdict]}: {_signed(row.loss_change)} {row.loss_change_ci} (Holm p "
            f"{_p(row.loss_p_holm, getattr(row, 'loss_p_at_floor', False))}).")
    if small is None or large is None or pd.isna(small.get("selection_precision")):
        return text
    text += (f" Its selection precision goes from {small['selection_precision']:.3f} to "
             f"{large['selection_precision']:.3f} (targeted share {small['targeted_share']:.3f} to "
             f"{large['targeted_share']:.3f}, clean share {small['clean_share']:.3f} to {large['clean_share']:.3f}).")
    if pd.isna(small.get("distinct_answers")):
        return text
    text += (f" Its targeted picks hold {small['distinct_answers']:.0f} then {large['distinct_answers']:.0f} "
             f"distinct final answers (answer entropy {small['answer_entropy_bits']:.2f} then "
             f"{large['answer_entropy_bits']:.2f} bits per task)")
    random_small = _cell(cells, "random", row.from_pool, row.budget)
    random_large = _cell(cells, "random", row.to_pool, row.budget)
    if pd.notna(small.get("dev_answer_share")) and random_small is not None and random_large is not None:
        text += (f", and {small['dev_answer_share']:.0%} then {large['dev_answer_share']:.0%} of them end in one "
                 f"of the dev queries' own answers (random's targeted picks: {random_small['dev_answer_share']:.0%} "
                 f"then {random_large['dev_answer_share']:.0%})")
    return text + "."


def _pool_growth_paragraph(comparison: dict) -> list[str]:
    growth = pd.DataFrame(comparison.get("pool_growth") or [])
    if growth.empty or "em_verdict" not in growth:
        return []
    cells = pd.DataFrame(comparison["cells"])
    sentences = [_paper_method_growth(row, cells) for row in growth[growth["method"] == PAPER_METHOD].itertuples()]
    verdicts = list(zip(growth["em_verdict"], growth["loss_verdict"]))
    worse = growth[[("worse" in v) and ("better" not in v) for v in verdicts]]
    better = growth[[("better" in v) and ("worse" not in v) for v in verdicts]]
    mixed = growth[[("better" in v) and ("worse" in v) for v in verdicts]]
    undecided = growth[[v == ("cannot decide", "cannot decide") for v in verdicts]]

    def names(frame: pd.DataFrame) -> str:
        return ", ".join(f"{r.method} at {r.budget}" for r in frame.itertuples()) or "none"

    sentences.append(f"Over all {len(growth)} method-budget pairs (exact match and answer loss one Holm family), the "
                     f"larger pool is resolvably worse on exact match or answer loss (and better on neither) in "
                     f"{len(worse)}: {names(worse)}; better in {len(better)}: {names(better)}; mixed in "
                     f"{len(mixed)}: {names(mixed)}"
                     + (f"; undecidable on both in {len(undecided)}" if len(undecided) else "")
                     + " (numbers in the table).")
    columns = ["method", "budget", "from_pool", "to_pool", "em_change", "em_change_ci", "em_verdict",
               "loss_change", "loss_change_ci", "loss_verdict", "precision_change"]
    return ["**As the pool grows** (larger pool minus the next smaller one, same method and budget, paired "
            "on items; verdicts: is the larger pool better). " + " ".join(sentences), markdown_table(growth[columns])]


def render(comparison: dict, run: dict | None, title: str) -> str:
    """The markdown of one results section."""
    parts = [f"### {title}", *_setting_lines(comparison, run), *_decidability_line(comparison),
             *_base_paragraph(comparison),
             *_methods_paragraph(comparison), *_less_paragraph(comparison), *_head_to_head_paragraph(comparison),
             *_pool_growth_paragraph(comparison),
             *_cells_paragraph(comparison)]
    return "\n\n".join(parts)


def _begin_marker(name: str) -> re.Pattern:
    return re.compile(rf"<!-- results:{re.escape(name)} begin[^>]*-->")


def documents(root: Path) -> list[Path]:
    """The repository's documents that may hold generated sections: README.md, then docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def document_holding(root: Path, name: str) -> Path:
    """The one document under `root` (`documents`) with the markers of section `name`; ValueError
    naming the documents searched when none or several hold them."""
    holding = [path for path in documents(root) if _begin_marker(name).search(path.read_text())]
    if len(holding) != 1:
        searched = ", ".join(str(path.relative_to(root)) for path in documents(root))
        raise ValueError(f"section {name!r} must have its `<!-- results:{name} begin -->` marker in exactly one of "
                         f"{searched}; found in {len(holding)}")
    return holding[0]


def section_text(document: str, name: str) -> str:
    """The text between the markers of section `name` in `document` (ValueError where they are missing)."""
    match = _begin_marker(name).search(document)
    end = f"<!-- results:{name} end -->"
    if not match or end not in document[match.end():]:
        raise ValueError(f"no results:{name} markers in the document")
    return document[document.index("\n", match.end()) + 1: document.index(end, match.end())].strip()


def replace_section(document: str, name: str, body: str, command: str) -> str:
    """`document` with the text between the markers of section `name` replaced by `body`; the
    markers say which command wrote it. Raises ValueError if the markers are missing."""
    end = f"<!-- results:{name} end -->"
    match = _begin_marker(name).search(document)
    if not match or end not in document[match.end():]:
        raise ValueError(f"no results:{name} markers in the document; add `<!-- results:{name} begin -->` and "
                         f"`{end}` where the section belongs")
    stop = document.index(end, match.end())
    marker = f"<!-- results:{name} begin: generated by `{command}`, do not edit by hand -->"
    return document[: match.start()] + marker + "\n" + body.strip() + "\n" + document[stop:]
