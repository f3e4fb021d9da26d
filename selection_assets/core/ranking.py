"""Rankings of score columns, best first, found only as deep as a selection reads them, and the RDS+
round-robin over several of them.

One order serves every ranking here: highest value first, NaN after every number, ties in a given
order (the earlier row by default). It is the order of a stable sort of the negated values, which
is what the tests restate; finding only its head costs a partition (O(N)) and a sort of the rows at
or above the cut, where a full sort of a 5.8M-row column costs seconds.
"""

from __future__ import annotations

import numpy as np


def best_first(values: np.ndarray, count: int, tie_order: np.ndarray | None = None) -> np.ndarray:
    """Positions of the `count` best of `values`, best first: highest value first, NaN after every
    number, ties by `tie_order` ascending (by position when None). Fewer when `values` is shorter.
    Integers are compared as float64, so two above 2**53 that round alike tie."""
    values = np.asarray(values)
    count = min(int(count), len(values))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    # negated, so ascending order is best first and NaN (which sorts last) comes after every number;
    # integers go through float64, which negates unsigned values without wrapping
    key = -values if values.dtype.kind == "f" else -values.astype(np.float64)
    cut = np.partition(key, count - 1)[count - 1]
    # the rows at or above the cut, ties included; when the cut is NaN every number is among them,
    # and which NaN rows come first is the tie order's to say
    candidates = np.arange(len(key)) if np.isnan(cut) else np.flatnonzero(key <= cut)
    ties = candidates if tie_order is None else np.asarray(tie_order)[candidates]
    order = np.lexsort((ties, key[candidates]))  # the last key is the primary one; NaN sorts last
    return candidates[order[:count]]


def round_robin_select(score_columns: np.ndarray, budget: int) -> np.ndarray:
    """RDS+ multi-group selection (docs/science.md): round-robin over columns, each popping its best.

    Each column is ranked best first (`best_first`: descending score, NaN last, ties by lower row
    index). Groups take turns in column order; a group whose next-best row is already taken adds
    nothing and loses its turn. Stops at exactly `budget` rows (or when every ranking is exhausted).
    Returns row indices in the order they were selected.
    """
    n_rows, n_groups = score_columns.shape
    budget = min(int(budget), n_rows)
    # each group's ranking is needed only as deep as the rounds go: about budget / groups when the
    # groups' favourites differ; deepened (doubled) if the rounds reach its end
    depth = min(n_rows, 2 * (budget // max(n_groups, 1)) + 64)
    rankings = [best_first(score_columns[:, g], depth) for g in range(n_groups)]
    taken = np.zeros(n_rows, dtype=bool)
    selected = np.empty(budget, dtype=np.int64)
    count = 0
    cursor = 0
    while count < budget and cursor < n_rows:
        if cursor == depth:
            depth = min(n_rows, 2 * depth)
            rankings = [best_first(score_columns[:, g], depth) for g in range(n_groups)]
        for ranking in rankings:
            row = ranking[cursor]
            if not taken[row]:
                taken[row] = True
                selected[count] = row
                count += 1
                if count == budget:
                    break
        cursor += 1
    return selected[:count]
