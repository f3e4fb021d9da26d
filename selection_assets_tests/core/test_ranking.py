"""Rankings best first, NaN last (core/ranking.py), restated as plain sorts; the RDS+ round-robin
over them (docs/science.md) on hand-made score tables; and `methods.top_k`, every top-k method's
selection, as the head of a plain sort of its eligible rows."""

import numpy as np
import pandas as pd
import pytest

from selection_assets.core.methods import top_k
from selection_assets.core.ranking import best_first, round_robin_select


def test_round_robin_alternates_tasks_best_first():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.95], [0.2, 0.7]], dtype=np.float32)
    assert round_robin_select(scores, 4).tolist() == [0, 2, 1, 3]


def test_already_taken_example_costs_the_task_its_turn():
    # both tasks rank row 0 first: task 1 loses its first turn, so task 0 picks row 1 next
    scores = np.array([[0.9, 0.9], [0.8, 0.1], [0.1, 0.5], [0.0, 0.4]], dtype=np.float32)
    assert round_robin_select(scores, 3).tolist() == [0, 1, 2]


def test_ties_prefer_lower_index_and_budget_is_exact():
    scores = np.array([[0.5], [0.5], [0.5], [0.7]], dtype=np.float32)
    assert round_robin_select(scores, 3).tolist() == [3, 0, 1]


def test_stops_at_exactly_budget_mid_round():
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.9, 0.3], [0.2, 0.3, 0.9], [0.3, 0.2, 0.1]], dtype=np.float32)
    assert round_robin_select(scores, 2).tolist() == [0, 1]


def test_never_repeats_and_covers_pool_when_budget_equals_size():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 3)).astype(np.float32)
    chosen = round_robin_select(scores, 50)
    assert sorted(chosen.tolist()) == list(range(50))


def _round_robin_with_full_rankings(scores: np.ndarray, budget: int) -> list[int]:
    """The round-robin restated over complete stable rankings (what the partial rankings must equal)."""
    rankings = [np.argsort(-scores[:, g], kind="stable") for g in range(scores.shape[1])]
    taken: list[int] = []
    for cursor in range(len(scores)):
        for ranking in rankings:
            if len(taken) < budget and ranking[cursor] not in taken:
                taken.append(int(ranking[cursor]))
    return taken


def test_partial_rankings_give_the_full_rankings_choice_ties_nan_and_deepening_included():
    rng = np.random.default_rng(3)
    for n, groups, levels in ((300, 3, 5), (500, 7, 1000), (200, 2, 2)):
        scores = rng.integers(0, levels, size=(n, groups)).astype(np.float32)  # few levels: many ties
        scores[:, 1:] = scores[:, :1]  # identical groups take turns on one ranking: the rounds run deep
        for budget in (1, 10, n // 3, n):
            assert round_robin_select(scores, budget).tolist() == _round_robin_with_full_rankings(scores, budget)
        # a column mostly NaN: its first partial ranking (64 deep) already reaches past its numbers
        scores[rng.random(n) < 0.9, 0] = np.nan
        scores[rng.random(n) < 0.1, 1] = np.nan
        for budget in (1, 10, n // 3, n):
            assert round_robin_select(scores, budget).tolist() == _round_robin_with_full_rankings(scores, budget)


def _plain_best_first(values: np.ndarray, count: int, tie_order: np.ndarray) -> list[int]:
    """The order restated as a sort on a key: numbers before NaN, higher first, then the tie order."""
    def key(i: int):
        return (bool(np.isnan(values[i])), 0.0 if np.isnan(values[i]) else -float(values[i]), tie_order[i])
    return sorted(range(len(values)), key=key)[:count]


def test_best_first_is_the_head_of_a_plain_sort_nan_last():
    rng = np.random.default_rng(5)
    for _ in range(300):
        size = int(rng.integers(1, 40))
        values = rng.integers(0, 5, size).astype(rng.choice([np.float32, np.float64]))
        values[rng.random(size) < rng.choice([0.0, 0.2, 0.9])] = np.nan  # at times more NaN than count
        values[rng.random(size) < 0.1] = -np.inf
        tie_order = rng.permutation(100)[:size]
        count = int(rng.integers(0, size + 5))
        assert best_first(values, count).tolist() == _plain_best_first(values, count, np.arange(size))
        assert best_first(values, count, tie_order).tolist() == _plain_best_first(values, count, tie_order)
        assert best_first(values, count, -tie_order).tolist() == _plain_best_first(values, count, -tie_order)


def test_best_first_ranks_integers_and_unsigned_values_without_wrapping():
    assert best_first(np.array([3, 0, 200, 7], dtype=np.uint8), 3).tolist() == [2, 3, 0]
    assert best_first(np.array([-5, 4, 4, -1], dtype=np.int64), 4).tolist() == [1, 2, 3, 0]


def test_top_k_is_the_head_of_a_plain_sort_of_the_scored_rows_either_tie_order():
    rng = np.random.default_rng(11)
    for _ in range(300):
        size = int(rng.integers(1, 40))
        values = rng.integers(0, 4, size).astype(np.float64)
        for special, share in ((np.nan, 0.2), (-np.inf, 0.1), (np.inf, 0.05)):
            values[rng.random(size) < share] = special
        table = pd.DataFrame({"example_id": [f"ex-{i}" for i in range(size)], "source": "s", "score": values})
        scored = [i for i in range(size) if not np.isnan(values[i]) and values[i] != -np.inf]  # +inf counts
        budget = int(rng.integers(0, len(scored) + 1))
        for later_rows_first in (False, True):
            plain = sorted(scored, key=lambda i: (-values[i], -i if later_rows_first else i))[:budget]
            chosen = top_k(table, budget, later_rows_first=later_rows_first)
            assert chosen["example_id"].tolist() == [f"ex-{i}" for i in plain]
            assert chosen["rank"].tolist() == list(range(budget))
        with pytest.raises(ValueError, match=f"only {len(scored)} examples are eligible"):
            top_k(table, len(scored) + 1)
