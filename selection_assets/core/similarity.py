"""Streaming cosine similarity between pool embeddings and grouped query embeddings.

Pool rows arrive in blocks (memory-mapped float16 shards); each block is multiplied with all
queries in float32 and reduced straight away to a per-group maximum, so memory stays O(N x groups)
and an N x Q matrix is never built.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def group_max_scores(pool_blocks: Iterable[np.ndarray], queries: np.ndarray, query_groups: np.ndarray,
                     block_rows: int = 65536, backend: str = "numpy", device: str = "cpu") -> tuple[np.ndarray, list]:
    """Per pool row and per query group, the max cosine similarity over that group's queries.

    `queries` is (Q, d) unit rows; `query_groups` (Q,) labels each query with its group (a task,
    or the query itself for single-task selection). Returns an (N, G) float32 array whose columns
    follow the groups in order of first appearance (the configured task order, or the queries'
    own order: round-robin visits them so, as the reference does), and those labels. backend
    "numpy" multiplies in numpy float32 on the CPU; "torch" multiplies on `device` (cuda for a GPU)
    in float32, block by block.
    """
    query_groups = np.asarray(query_groups)
    sorted_labels, first_index, sorted_inverse = np.unique(query_groups, return_index=True, return_inverse=True)
    appearance = np.argsort(first_index, kind="stable")  # sorted-label indices in order of first appearance
    rank = np.empty_like(appearance)
    rank[appearance] = np.arange(len(appearance))
    labels, inverse = sorted_labels[appearance], rank[sorted_inverse]
    order = np.argsort(inverse, kind="stable")
    sorted_queries = np.ascontiguousarray(queries[order], dtype=np.float32)
    starts = np.searchsorted(inverse[order], np.arange(len(labels)))
    if backend not in ("numpy", "torch"):
        raise ValueError(f"unknown similarity backend {backend!r} (numpy, torch)")
    reduce = _numpy_block_max(sorted_queries, starts) if backend == "numpy" else \
        _torch_block_max(sorted_queries, starts, device)
    outputs = [reduce(block[begin : begin + block_rows])
               for block in pool_blocks for begin in range(0, block.shape[0], block_rows)]
    outputs = [o for o in outputs if len(o)]
    if not outputs:
        return np.empty((0, len(labels)), dtype=np.float32), list(labels)
    return np.concatenate(outputs).astype(np.float32, copy=False), list(labels)


def _numpy_block_max(sorted_queries: np.ndarray, starts: np.ndarray):
    transposed = np.ascontiguousarray(sorted_queries.T)

    def reduce(chunk: np.ndarray) -> np.ndarray:
        sims = np.asarray(chunk, dtype=np.float32) @ transposed
        return np.maximum.reduceat(sims, starts, axis=1) if len(sims) else sims[:, : len(starts)]

    return reduce


def _torch_block_max(sorted_queries: np.ndarray, starts: np.ndarray, device: str):
    import torch

    queries = torch.from_numpy(sorted_queries).to(device)
    bounds = list(starts) + [len(sorted_queries)]

    def reduce(chunk: np.ndarray) -> np.ndarray:
        sims = torch.from_numpy(np.asarray(chunk, dtype=np.float32)).to(device) @ queries.T
        maxima = [sims[:, lo:hi].amax(dim=1) for lo, hi in zip(bounds[:-1], bounds[1:])]
        return torch.stack(maxima, dim=1).cpu().numpy()

    return reduce


def round_robin_select(score_columns: np.ndarray, budget: int) -> np.ndarray:
    """RDS+ multi-group selection (SCIENCE.md): round-robin over columns, each popping its best.

    Each column is ranked by descending score, ties broken by lower row index. Groups take turns in
    column order; a group whose next-best row is already taken adds nothing and loses its turn.
    Stops at exactly `budget` rows (or when every ranking is exhausted). Returns row indices in
    the order they were selected.
    """
    n_rows, n_groups = score_columns.shape
    budget = min(int(budget), n_rows)
    rankings = [np.argsort(-score_columns[:, g], kind="stable") for g in range(n_groups)]
    taken = np.zeros(n_rows, dtype=bool)
    selected = np.empty(budget, dtype=np.int64)
    count = 0
    cursor = 0
    while count < budget and cursor < n_rows:
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
