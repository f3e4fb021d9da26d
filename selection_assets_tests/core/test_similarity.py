"""Streaming group maxima, and RDS+ single-task selection against a restatement of the reference."""

import numpy as np
import pytest

from selection_assets.core.ranking import round_robin_select
from selection_assets.core.similarity import group_max_scores


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
