"""The README's results sections, rendered from a comparison report (`comparison.json`) and the
run record the demo leaves beside it, so that they cannot drift from the numbers.

Every sentence is built from numbers printed in it or in the table beside it; claims of a
difference follow the comparison's verdicts (paired bootstrap, Holm-adjusted, alpha 0.05).
"""

from __future__ import annotations

import re

import pandas as pd

from selection_assets.core.report import markdown_table

PAPER_METHOD = "rds_plus"  # the method whose pool-size behaviour Ivison et al. report


def _fmt_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _setting_lines(comparison: dict, run: dict | None) -> list[str]:
    lines = []
    if run:
        lines.append(f"`{run['command']}` (methods: {', '.join(run['methods'])}; pool sizes "
                     f"{', '.join(map(str, run['pool_sizes']))} x budgets {', '.join(map(str, run['budgets']))}; "
                     f"seeds {', '.join(map(str, run['seeds']))}) took **{_fmt_seconds(run['wall_seconds'])}** "
                     f"on {run['machine']}.")
    base = comparison.get("base")
    n_items = base["n_items"] if base else None
    lines.append(
        (f"Each model answers the same {n_items} test items; " if n_items else "")
        + "intervals are 95% percentile bootstraps over test items"
        + (" and seeds" if len(comparison["seeds"]) > 1 else " (one seed: test-item sampling only)")
        + f". Every method is paired with random on the same items; {comparison['paired_tests']} such "
          f"tests are Holm-adjusted together, and a difference counts only at adjusted p < {comparison['alpha']}.")
    return lines


def _resolution_line(comparison: dict) -> list[str]:
    """How large a difference from random these tests can resolve: the median half-width of the
    paired intervals."""
    cells = pd.DataFrame(comparison["cells"])
    if "em_vs_random_ci" not in cells or cells["em_vs_random_ci"].isna().all():
        return []
    bounds = [tuple(float(x) for x in t.strip("[]").split(",")) for t in cells["em_vs_random_ci"].dropna()]
    half_width = float(pd.Series([(high - low) / 2 for low, high in bounds]).median())
    return [f"The paired intervals of exact match against random have a median half-width of {half_width:.3f}: "
            f"differences much smaller than that are not resolvable at this test-set size and seed count."]


def _base_paragraph(comparison: dict) -> list[str]:
    base, gains = comparison.get("base"), pd.DataFrame(comparison.get("random_vs_base") or [])
    if not base or gains.empty:
        return []
    lows_em = [float(t.strip("[]").split(",")[0]) for t in gains["em_gain_ci"]]
    highs_loss = [float(t.strip("[]").split(",")[1]) for t in gains["loss_change_ci"]]
    raised = sum(low > 0 for low in lows_em)
    lowered = sum(high < 0 for high in highs_loss)
    sentence = (f"**Fine-tuning against the base model.** The base model without fine-tuning scores exact "
                f"match {base['exact_match']:.3f} [{base['exact_match_ci'][0]:.3f}, {base['exact_match_ci'][1]:.3f}] "
                f"and answer loss {base['answer_loss']:.3f}. Fine-tuning on random subsets raises exact match "
                f"with an interval above zero in {raised} of {len(gains)} cells and lowers answer loss with an "
                f"interval below zero in {lowered} of {len(gains)} cells (random minus base, paired on items):")
    columns = ["pool_size", "budget", "em_gain", "em_gain_ci", "loss_change", "loss_change_ci"]
    return [sentence, markdown_table(gains[columns])]


def _methods_paragraph(comparison: dict) -> list[str]:
    methods = pd.DataFrame(comparison["methods"])
    if "verdict" not in methods:
        return []
    tested = methods[methods["verdict"].notna()]
    groups = {verdict: tested[tested["verdict"] == verdict] for verdict in ("better", "worse", "no difference")}

    def listing(frame: pd.DataFrame) -> str:
        if frame.empty:
            return "none"
        return ", ".join(f"{m} ({_signed(d)} {ci})" for m, d, ci in
                         zip(frame["method"], frame["em_vs_random"], frame["em_vs_random_ci"]))

    sentence = (f"**Methods against random**, exact match minus random's averaged over every cell, paired on "
                f"items ({len(tested)} tests, Holm-adjusted). Better than random: {listing(groups['better'])}. "
                f"Worse than random: {listing(groups['worse'])}. No resolvable difference: "
                f"{listing(groups['no difference'])}.")
    columns = [c for c in ("method", "mean_exact_match", "em_vs_random", "em_vs_random_ci", "em_p_holm", "verdict",
                           "cells_better", "cells_worse", "mean_answer_loss", "mean_precision", "selection_flops")
               if c in methods]
    return [sentence, markdown_table(methods[columns])]


def _cells_paragraph(comparison: dict) -> list[str]:
    cells = pd.DataFrame(comparison["cells"])
    columns = [c for c in ("method", "pool_size", "budget", "exact_match", "exact_match_ci", "em_vs_random",
                           "em_vs_random_ci", "em_verdict", "answer_loss", "loss_vs_random", "loss_verdict",
                           "selection_precision", "distinct_answers", "answer_entropy_bits") if c in cells]
    return ["Every cell (em = exact match; verdicts against random in the same cell):", markdown_table(cells[columns])]


def _pool_growth_paragraph(comparison: dict) -> list[str]:
    growth = pd.DataFrame(comparison.get("pool_growth") or [])
    cells = pd.DataFrame(comparison["cells"])
    if growth.empty:
        return []
    sentences = []
    for row in growth[growth["method"] == PAPER_METHOD].itertuples():
        low, high = (float(x) for x in row.em_change_ci.strip("[]").split(","))
        direction = ("rises, as in Ivison et al." if low > 0 else
                     "falls, unlike Ivison et al., where RDS+ gains as the pool grows" if high < 0 else
                     "shows no resolvable change (Ivison et al. report a gain)")
        small = cells[(cells["method"] == PAPER_METHOD) & (cells["pool_size"] == row.from_pool) & (cells["budget"] == row.budget)].iloc[0]
        large = cells[(cells["method"] == PAPER_METHOD) & (cells["pool_size"] == row.to_pool) & (cells["budget"] == row.budget)].iloc[0]
        sentence = (f"At budget {row.budget}, RDS+ exact match from pool {row.from_pool} to {row.to_pool} "
                    f"{direction}: {_signed(row.em_change)} {row.em_change_ci}.")
        if pd.notna(small.get("selection_precision")) and pd.notna(large.get("selection_precision")):
            sentence += (f" Its selection precision goes from {small['selection_precision']:.3f} to "
                         f"{large['selection_precision']:.3f} (targeted share {small['targeted_share']:.3f} to "
                         f"{large['targeted_share']:.3f}, clean share {small['clean_share']:.3f} to "
                         f"{large['clean_share']:.3f}).")
        if pd.notna(small.get("distinct_answers")) and pd.notna(large.get("distinct_answers")):
            sentence += (f" Its targeted picks hold {small['distinct_answers']:.0f} then {large['distinct_answers']:.0f} "
                         f"distinct final answers, with answer entropy {small['answer_entropy_bits']:.2f} then "
                         f"{large['answer_entropy_bits']:.2f} bits per task.")
            loss_rises = float(row.loss_change_ci.strip("[]").split(",")[0]) > 0
            if large["distinct_answers"] < small["distinct_answers"] and (high < 0 or loss_rises):
                sentence += (" The larger pool holds closer copies of the dev queries, answers included, and "
                             "RDS+ takes those: its subset grows narrower, not better.")
        sentences.append(sentence)
    if not sentences:
        return []
    columns = ["method", "budget", "from_pool", "to_pool", "em_change", "em_change_ci", "loss_change",
               "loss_change_ci", "precision_change"]
    return ["**As the pool grows** (larger pool minus the next smaller one, same method and budget, paired "
            "on items). " + " ".join(sentences), markdown_table(growth[columns])]


def render(comparison: dict, run: dict | None, title: str) -> str:
    """The markdown of one results section."""
    parts = [f"### {title}", *_setting_lines(comparison, run), *_resolution_line(comparison),
             *_base_paragraph(comparison),
             *_methods_paragraph(comparison), *_pool_growth_paragraph(comparison), *_cells_paragraph(comparison)]
    return "\n\n".join(parts)


def replace_section(document: str, name: str, body: str, command: str) -> str:
    """`document` with the text between the markers of section `name` replaced by `body`; the
    markers say which command wrote it. Raises ValueError if the markers are missing."""
    begin = re.compile(rf"<!-- results:{re.escape(name)} begin[^>]*-->")
    end = f"<!-- results:{name} end -->"
    match = begin.search(document)
    if not match or end not in document[match.end():]:
        raise ValueError(f"no results:{name} markers in the document; add `<!-- results:{name} begin -->` and "
                         f"`{end}` where the section belongs")
    stop = document.index(end, match.end())
    marker = f"<!-- results:{name} begin: generated by `{command}`, do not edit by hand -->"
    return document[: match.start()] + marker + "\n" + body.strip() + "\n" + document[stop:]
