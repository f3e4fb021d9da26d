"""Round-robin selection (SCIENCE.md) on hand-made score tables, and streaming group maxima."""

import numpy as np
import pytest

from selection_assets.core.similarity import group_max_scores, round_robin_select, top_ranking


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


def test_partial_rankings_give_the_full_rankings_choice_ties_and_deepening_included():
    rng = np.random.default_rng(3)
    for n, groups, levels in ((300, 3, 5), (500, 7, 1000), (200, 2, 2)):
        scores = rng.integers(0, levels, size=(n, groups)).astype(np.float32)  # few levels: many ties
        scores[:, 1:] = scores[:, :1]  # identical groups take turns on one ranking: the rounds run deep
        for budget in (1, 10, n // 3, n):
            assert round_robin_select(scores, budget).tolist() == _round_robin_with_full_rankings(scores, budget)
    column = rng.integers(0, 4, size=1000).astype(np.float32)
    for count in (1, 17, 999, 1000, 5000):
        np.testing.assert_array_equal(top_ranking(column, count), np.argsort(-column, kind="stable")[:count])

def test_group_max_matches_dense_computation_across_blocks():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(37, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    groups = np.array(["b", "a", "b", "c", "a"])
    blocks = [pool[:10].astype(np.float16), pool[10:].astype(np.float16)]
    got, labels = group_max_scores(blocks, queries, groups, block_rows=4)
    dense = pool.astype(np.float16).astype(np.float32) @ queries.T
    expected = np.stack([dense[:, groups == g].max(1) for g in ["b", "a", "c"]], axis=1)
    assert labels == ["b", "a", "c"]  # in order of first appearance, not sorted
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_torch_path_matches_numpy_path():
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(50, 6)).astype(np.float16)
    queries = rng.normal(size=(7, 6)).astype(np.float32)
    groups = np.array([0, 0, 1, 2, 2, 2, 1])
    on_numpy, _ = group_max_scores([pool], queries, groups, block_rows=16)
    on_torch, _ = group_max_scores([pool], queries, groups, block_rows=16, backend="torch", device="cpu")
    np.testing.assert_allclose(on_numpy, on_torch, rtol=1e-5, atol=1e-5)



def test_bfloat16_rounds_operands_and_products_and_keeps_group_order():
    rng = np.random.default_rng(6)
    pool = rng.normal(size=(40, 16)).astype(np.float16)
    queries = rng.normal(size=(9, 16)).astype(np.float32)
    groups = np.array([2, 2, 0, 1, 1, 0, 2, 1, 0])
    exact, labels = group_max_scores([pool], queries, groups, block_rows=16)
    rounded, rounded_labels = group_max_scores([pool], queries, groups, block_rows=16, precision="bfloat16")
    assert rounded_labels == labels and rounded.dtype == np.float32
    # a restatement: bfloat16 inputs, float32 products rounded to bfloat16, max per group
    import torch

    as_bf16 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.bfloat16).float()
    products = (as_bf16(pool) @ as_bf16(queries).T).to(torch.bfloat16).float().numpy()
    expected = np.stack([products[:, groups == g].max(1) for g in labels], axis=1)
    np.testing.assert_array_equal(rounded, expected)
    assert 0 < np.abs(rounded - exact).max() < 0.05 * np.abs(exact).max()
    with pytest.raises(ValueError, match="unknown similarity precision 'float16'"):
        group_max_scores([pool], queries, groups, precision="float16")

def _reference_single_task_rds(pool: np.ndarray, queries: np.ndarray, budget: int) -> list[int]:
    """Restated from the reference (hamishivi/automated-instruction-selection, one task): in round r,
    each query in its given order offers its r-th most similar example (lower index on ties); an
    example already taken adds nothing and that query loses its turn; stop at exactly the budget."""
    similarity = pool @ queries.T
    rankings = [sorted(range(len(pool)), key=lambda row: (-similarity[row, q], row)) for q in range(len(queries))]
    taken: list[int] = []
    for round_index in range(len(pool)):
        for ranking in rankings:
            if ranking[round_index] not in taken and len(taken) < budget:
                taken.append(ranking[round_index])
    return taken


def test_single_task_rds_visits_queries_in_their_order_past_ten_queries():
    # query ids "q/0" ... "q/11": text order would put "q/10" and "q/11" before "q/2"
    mismatches = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        pool = np.round(rng.random((30, 4)), 1).astype(np.float32)  # rounding makes ties common
        queries = np.round(rng.random((12, 4)), 1).astype(np.float32)
        ids = np.array([f"q/{i}" for i in range(12)])
        scores, labels = group_max_scores([pool], queries, ids)
        assert labels == list(ids)
        budget = int(rng.integers(1, 30))
        mismatches += round_robin_select(scores, budget).tolist() != _reference_single_task_rds(pool, queries, budget)
    assert mismatches == 0
