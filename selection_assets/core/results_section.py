"""The README's results sections, rendered from a comparison report (`comparison.json`) and the
run record the demo leaves beside it, so that they cannot drift from the numbers.

Every sentence is built from numbers printed in it or in the table beside it; claims of a
difference follow the comparison's verdicts (paired bootstrap, Holm-adjusted, alpha 0.05).
"""

from __future__ import annotations

import re

import pandas as pd

from selection_assets.core.report import interval_bounds, markdown_table

PAPER_METHOD = "rds_plus"  # the method whose pool-size behaviour Ivison et al. report
# what the papers report for a method against random; a method found worse here is set beside it
PAPER_CLAIMS = {
    "rds_plus": "Ivison et al. (2025) find RDS+ beats random at every scale they test",
    "token_length": "Xia et al. (2024) find token-length selection holds up at scale",
    "token_length_response": "Xia et al. (2024) find token-length selection holds up at scale",
}
# selection precisions this close to RDS+'s count as "as precise" when LESS and RDS+ are set side by side
SAME_PRECISION = 0.05


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
                     f"on {run['machine']}.")
    base = comparison.get("base")
    n_items = base["n_items"] if base else None
    lines.append(
        (f"Each model answers the same {n_items} test items; " if n_items else "")
        + "intervals are 95% percentile bootstraps over test items"
        + (" and seeds" if len(comparison["seeds"]) > 1 else " (one seed: test-item sampling only)")
        + f". Every method is paired with random on the same items. The per-cell tests "
          f"({comparison['paired_tests']} for exact match, as many for answer loss), the per-method tests over "
          f"all cells and the pool-growth tests are each Holm-adjusted as a family; a difference counts only at "
          f"adjusted p < {comparison['alpha']}.")
    return lines


def _resolution_line(comparison: dict) -> list[str]:
    """How large a difference from random these tests can resolve: the median half-width of the
    paired intervals."""
    cells = pd.DataFrame(comparison["cells"])
    if "em_vs_random_ci" not in cells or cells["em_vs_random_ci"].isna().all():
        return []
    bounds = [interval_bounds(t) for t in cells["em_vs_random_ci"].dropna()]
    half_width = float(pd.Series([(high - low) / 2 for low, high in bounds]).median())
    return [f"The paired intervals of exact match against random have a median half-width of {half_width:.3f}: "
            f"differences much smaller than that are not resolvable at this test-set size and seed count."]


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
                f"{listing(groups['no difference'])}. The intervals are each test's own 95% interval; the "
                f"verdicts use Holm-adjusted p-values, so an interval that only just excludes zero can still "
                f"be no resolvable difference.")
    sentences = [sentence, *_against_papers(groups["worse"], pd.DataFrame(comparison["cells"]))]
    columns = [c for c in ("method", "mean_exact_match", "em_vs_random", "em_vs_random_ci", "em_p_holm", "verdict",
                           "cells_better", "cells_worse", "mean_answer_loss", "mean_precision", "selection_flops")
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
    sentences = []
    for method in worse["method"]:
        if method not in PAPER_CLAIMS or method not in shares.index:
            continue
        own, base = shares.loc[method], shares.loc["random"]
        differences = [phrase for phrase, holds in (("fewer on-target", own["targeted_share"] < base["targeted_share"]),
                                                    ("more noisy", own["clean_share"] < base["clean_share"])) if holds]
        sentences.append(f"{method} is worse than random here, while {PAPER_CLAIMS[method]}: its picks are "
                         f"{own['targeted_share']:.0%} on the eval tasks' skills and {own['clean_share']:.0%} "
                         f"clean (random: {base['targeted_share']:.0%} and {base['clean_share']:.0%})"
                         + (f", so in this world it picks {' and '.join(differences)} examples than random does."
                            if differences else "."))
    return sentences


_EM_AGAINST_RANDOM = {"better": "resolvably above random", "worse": "resolvably below random",
                      "no difference": "not resolvably apart from random"}


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
        losses.append(f"`{name}` worse than random in {int((verdicts == 'worse').sum())} of {len(verdicts)} cells "
                      f"and better in {int((verdicts == 'better').sum())} (mean answer loss "
                      f"{table.loc[name, 'mean_answer_loss']:.3f})")
    loss = (f"On answer loss, per cell: {'; '.join(losses)}; random's mean answer loss is "
            f"{table.loc['random', 'mean_answer_loss']:.3f}.")
    rds_precision = float(table.loc[PAPER_METHOD, "mean_precision"])
    precisions = {name: float(table.loc[name, "mean_precision"]) for name in gradient}
    precision = (f"Mean selection precision: {', '.join(f'`{name}` {value:.3f}' for name, value in precisions.items())}, "
                 f"`{PAPER_METHOD}` {rds_precision:.3f}")
    if all(value >= rds_precision - SAME_PRECISION for value in precisions.values()):
        precision += (f": LESS picks on-target, clean examples as often as RDS+ does (within {SAME_PRECISION}), so "
                      "what separates them on answer loss is not how many of their picks are on target.")
    else:
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
                                ("no difference", "not resolvably apart from")):
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
                           "em_vs_random_ci", "em_verdict", "answer_loss", "loss_vs_random", "loss_verdict",
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
        sentences.append(f"On {label}, of {len(tested)} method cells tested against random: {', '.join(parts)}; "
                         f"no resolvable difference in the rest.")
    return sentences


_GROWTH_EM = {"better": "rises, as Ivison et al. report for RDS+",
              "worse": "falls, unlike Ivison et al., where RDS+ gains as the pool grows",
              "no difference": "shows no resolvable change (Ivison et al. report a gain)"}
_GROWTH_LOSS = {"better": "falls", "worse": "rises", "no difference": "shows no resolvable change"}


def _cell(cells: pd.DataFrame, method: str, pool_size: int, budget: int) -> pd.Series | None:
    found = cells[(cells["method"] == method) & (cells["pool_size"] == pool_size) & (cells["budget"] == budget)]
    return None if found.empty else found.iloc[0]


def _paper_method_growth(row, cells: pd.DataFrame) -> str:
    """One sentence group on RDS+ between two pool sizes: the paired changes with their verdicts, then
    what its selection is made of at each size, against random's in the same cells."""
    small = _cell(cells, PAPER_METHOD, row.from_pool, row.budget)
    large = _cell(cells, PAPER_METHOD, row.to_pool, row.budget)
    text = (f"At budget {row.budget}, from pool {row.from_pool} to {row.to_pool}, RDS+ exact match "
            f"{_GROWTH_EM[row.em_verdict]}: {_signed(row.em_change)} {row.em_change_ci} (Holm p = "
            f"{row.em_p_holm:.3f}); its answer loss {_GROWTH_LOSS[row.loss_verdict]}: {_signed(row.loss_change)} "
            f"{row.loss_change_ci} (Holm p = {row.loss_p_holm:.3f}).")
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
    leans_more = False
    if pd.notna(small.get("dev_answer_share")) and random_small is not None and random_large is not None:
        text += (f", and {small['dev_answer_share']:.0%} then {large['dev_answer_share']:.0%} of them end in one "
                 f"of the dev queries' own answers (random's targeted picks: {random_small['dev_answer_share']:.0%} "
                 f"then {random_large['dev_answer_share']:.0%})")
        leans_more = (large["dev_answer_share"] > small["dev_answer_share"]
                      and large["dev_answer_share"] > random_large["dev_answer_share"])
    text += "."
    narrower = large["distinct_answers"] < small["distinct_answers"]
    worse_on = [name for name, verdict in (("exact match", row.em_verdict), ("answer loss", row.loss_verdict))
                if verdict == "worse"]
    if narrower and leans_more and worse_on:
        text += (" The larger pool lets RDS+ find more examples that share its queries' answers: more precise "
                 f"by the labels, narrower in what it teaches, and worse on fresh test items by "
                 f"{' and '.join(worse_on)}.")
    return text


def _random_growth_caveat(growth: pd.DataFrame, seeds: int) -> list[str]:
    """Random's own 'pool growth' is a fresh draw of the same kind of subset: where it is resolvable,
    the intervals miss the draw-to-draw variation, and differences of that size are not findings."""
    moved = growth[(growth["method"] == "random")
                   & ((growth["em_verdict"] != "no difference") | (growth["loss_verdict"] != "no difference"))]
    if moved.empty:
        return []
    changes = [f"at budget {r.budget}: exact match {_signed(r.em_change)}, answer loss {_signed(r.loss_change)}"
               for r in moved.itertuples()]
    size = float(moved["loss_change"].abs().max())
    return [f"Random itself changes resolvably between pool sizes ({'; '.join(changes)}), although a random "
            f"subset of a larger pool is the same kind of subset: with {seeds} seed{'s' if seeds > 1 else ''} the "
            f"intervals cover the test items, not the draw of the subset and its training. Random's draws alone "
            f"already differ by up to {size:.3f} in answer loss, so differences of that order are not findings; "
            f"more seeds (`--seeds N`) measure that variation."]


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

    def names(frame: pd.DataFrame) -> str:
        return ", ".join(f"{r.method} at {r.budget}" for r in frame.itertuples()) or "none"

    sentences.append(f"Over all {len(growth)} method-budget pairs, the larger pool is resolvably worse on exact match or "
                     f"answer loss (and better on neither) in {len(worse)}: {names(worse)}; better in {len(better)}: "
                     f"{names(better)}; mixed in {len(mixed)}: {names(mixed)} (numbers in the table).")
    sentences += _random_growth_caveat(growth, len(comparison.get("seeds", ())))
    columns = ["method", "budget", "from_pool", "to_pool", "em_change", "em_change_ci", "em_verdict",
               "loss_change", "loss_change_ci", "loss_verdict", "precision_change"]
    return ["**As the pool grows** (larger pool minus the next smaller one, same method and budget, paired "
            "on items; verdicts: is the larger pool better). " + " ".join(sentences), markdown_table(growth[columns])]


def render(comparison: dict, run: dict | None, title: str) -> str:
    """The markdown of one results section."""
    parts = [f"### {title}", *_setting_lines(comparison, run), *_resolution_line(comparison),
             *_base_paragraph(comparison),
             *_methods_paragraph(comparison), *_less_paragraph(comparison), *_head_to_head_paragraph(comparison),
             *_pool_growth_paragraph(comparison),
             *_cells_paragraph(comparison)]
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
