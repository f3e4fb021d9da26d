"""Diversity selection on embeddings: k-center greedy and k-means (faiss).

Both orders are prefix-consistent (the selection for a smaller budget is a prefix of a larger
one), so the stored score is the order itself: score = -position, and -inf past the largest budget.

- kcenter: start from a seeded random example, then repeatedly add argmax_x min_s ||e_x - e_s||,
  keeping a running min-distance vector (O(N) memory, O(N k d) time).
- kmeans: cluster into C clusters (faiss), rank each cluster's members by distance to its
  centroid, then round-robin over clusters (largest first) taking each one's nearest remaining.
  The best of several k-means restarts is kept (a single run can merge two clusters).
"""

from __future__ import annotations

import math

import faiss
import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs, base_frame, top_k


def kcenter_order(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Greedy k-center: indices in the order they are added."""
    n = len(embeddings)
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    x = np.asarray(embeddings, dtype=np.float32)
    squared_norms = np.einsum("ij,ij->i", x, x)
    order = np.empty(k, dtype=np.int64)
    order[0] = np.random.default_rng(seed).integers(n)
    min_dist = np.full(n, np.inf, dtype=np.float32)
    for step in range(k):
        if step:
            order[step] = int(np.argmax(min_dist))
        centre = x[order[step]]
        dist = squared_norms - 2.0 * (x @ centre) + squared_norms[order[step]]
        np.minimum(min_dist, np.maximum(dist, 0.0), out=min_dist)
        min_dist[order[step]] = -1.0  # never picked again
    return order


def default_clusters(n: int) -> int:
    """C = about sqrt(N), at least 2."""
    return max(2, int(round(math.sqrt(n))))


def kmeans_order(embeddings: np.ndarray, n_clusters: int, seed: int, iterations: int = 20,
                 restarts: int = 5) -> np.ndarray:
    """All indices: round-robin over clusters (largest first), nearest-to-centroid first in each."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n_clusters = min(n_clusters, len(x))
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=iterations, nredo=restarts, seed=seed, verbose=False)
    kmeans.train(x)
    distances, assignment = kmeans.index.search(x, 1)
    distances, assignment = distances[:, 0], assignment[:, 0]
    sizes = np.bincount(assignment, minlength=n_clusters)
    cluster_turn = np.empty(n_clusters, dtype=np.int64)
    cluster_turn[np.argsort(-sizes, kind="stable")] = np.arange(n_clusters)
    within = np.lexsort((np.arange(len(x)), distances, assignment))  # by cluster, then distance
    rank_in_cluster = np.empty(len(x), dtype=np.int64)
    starts = np.searchsorted(assignment[within], np.arange(n_clusters))
    rank_in_cluster[within] = np.arange(len(x)) - starts[assignment[within]]
    return np.lexsort((cluster_turn[assignment], rank_in_cluster))


def order_to_score(order: np.ndarray, n: int) -> np.ndarray:
    """Score = -position in `order`; -inf for rows not in it."""
    score = np.full(n, -np.inf)
    score[order] = -np.arange(len(order), dtype=np.float64)
    return score


def score(inputs: ScoringInputs, algorithm: str) -> pd.DataFrame:
    """The diversity order as a score."""
    x = inputs.embeddings()
    if algorithm == "kcenter":
        order = kcenter_order(x, inputs.max_budget or len(x), inputs.seed)
    elif algorithm == "kmeans":
        order = kmeans_order(x, default_clusters(len(x)), inputs.seed)
    else:
        raise ValueError(f"unknown diversity algorithm {algorithm!r} (kcenter, kmeans)")
    return base_frame(inputs, order_to_score(order, len(x)))


def select(scores: pd.DataFrame, budget: int, algorithm: str) -> pd.DataFrame:
    """The first `budget` examples of the diversity order."""
    return top_k(scores, budget)
