"""Diversity selection on embeddings: k-center greedy and k-means (faiss).

- kcenter (Sener & Savarese 2018's greedy k-center): start from a seeded random example, then
  repeatedly add argmax_x min_s ||e_x - e_s||, keeping a running min-distance vector (O(N) memory,
  O(N k d) time). Xia et al.'s k-center is DiverseEvol's iterative one (fine-tune, re-embed, add
  the farthest points, repeat): diverse_evol.py (`kcenter_diverseevol`), which grows its choice
  with `farthest_additions`.
- kmeans (`kmeans_round_robin`, this project's prefix-consistent order): cluster into C = sqrt(N)
  clusters, rank each cluster's members by distance to its centroid, then round-robin over clusters
  (largest first) taking each one's nearest remaining. The best of several restarts is kept.
- kmeans_per_budget (`kmeans_xia`, SFT-DataSelection-at-scale token_length/kmeans_sample.py): for
  each budget k, k-means with k clusters and the example nearest each centroid (squared L2).
  Departures: faiss's Lloyd iterations from a plain k-means++ seeding instead of scikit-learn's
  KMeans (greedy k-means++, random_state 0); the embeddings
  are mean-pooled over real tokens and L2-normalised (the reference averages padding positions in,
  and does not normalise); if two centroids share a nearest example, the later takes its nearest
  example not yet taken, so exactly k are chosen.

kcenter and kmeans orders are prefix-consistent (the selection for a smaller budget is a prefix of
a larger one), so the stored score is the order itself: score = -position, -inf past the largest
budget. kmeans_per_budget stores one such column per budget (`score_budget_<k>`).

Memory is bounded whatever the pool: each method reads the embeddings through an `EmbeddingMatrix`
(float32 up to a budget, the rest re-read from the float16 shards on every pass). k-center keeps an
O(N) min-distance vector and makes one pass per example it adds; k-means trains on at most
MAX_POINTS_PER_CENTROID rows per cluster (faiss's own cap, past which it would subsample for
itself), drawn by the method's seed, then assigns and ranks every row a shard at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import faiss
import numpy as np
import pandas as pd

from selection_assets.core.embedding_matrix import EmbeddingMatrix, as_matrix, nearest_rows
from selection_assets.core.methods import (MethodParams, MethodSpec, Need, Provenance, ScoringInputs, Shortlist,
                                           base_frame, budget_column, top_k)


MAX_POINTS_PER_CENTROID = 256  # faiss.Kmeans's default: past it, it trains on a sample
NEAREST_CANDIDATES = 16  # nearest examples kept per k-means centroid (more are searched if all are taken)


def kcenter_order(embeddings: np.ndarray | EmbeddingMatrix, k: int, seed: int) -> np.ndarray:
    """Greedy k-center from a seeded random first example: indices in the order they are added."""
    matrix = as_matrix(embeddings)
    n = len(matrix)
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    first = int(np.random.default_rng(seed).integers(n))
    return np.asarray([first] + farthest_additions(matrix, [first], k - 1), dtype=np.int64)


def farthest_additions(embeddings: np.ndarray | EmbeddingMatrix, centres: list[int], count: int) -> list[int]:
    """Greedy k-center from `centres`: `count` examples, each the one farthest (L2) from every centre
    and earlier addition (a running min-distance vector: O(N) memory, one pass per addition)."""
    matrix = as_matrix(embeddings)
    squared_norms = matrix.squared_norms()
    min_dist = np.full(len(matrix), np.inf, dtype=np.float32)

    def add_centre(centre: int) -> None:
        vector = matrix.rows([centre])[0]
        for start, block in matrix.blocks():
            part = slice(start, start + len(block))
            distances = squared_norms[part] - 2.0 * (block @ vector) + squared_norms[centre]
            np.minimum(min_dist[part], np.maximum(distances, 0.0), out=min_dist[part])

    for centre in centres:
        add_centre(centre)
    min_dist[centres] = -1.0  # never picked again
    added: list[int] = []
    for _ in range(count):
        pick = int(np.argmax(min_dist))
        added.append(pick)
        add_centre(pick)
        min_dist[pick] = -1.0
    return added


def default_clusters(n: int) -> int:
    """C = about sqrt(N), at least 2."""
    return max(2, int(round(math.sqrt(n))))


def _training_rows(matrix: EmbeddingMatrix, clusters: int, seed: int) -> np.ndarray:
    """What k-means trains on: every row, or a seeded sample of MAX_POINTS_PER_CENTROID per cluster."""
    return np.ascontiguousarray(matrix.sample(clusters * MAX_POINTS_PER_CENTROID, seed))


def _nearest_centroid(matrix: EmbeddingMatrix, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared L2 distance to, and index of, every row's nearest centroid, a shard at a time."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    distances = np.empty(len(matrix), dtype=np.float32)
    assignment = np.empty(len(matrix), dtype=np.int64)
    for start, block in matrix.blocks():
        found_distances, found = index.search(block, 1)
        distances[start:start + len(block)], assignment[start:start + len(block)] = found_distances[:, 0], found[:, 0]
    return distances, assignment


def kmeans_order(embeddings: np.ndarray | EmbeddingMatrix, n_clusters: int, seed: int, iterations: int = 20,
                 restarts: int = 5) -> np.ndarray:
    """All indices: round-robin over clusters (largest first), nearest-to-centroid first in each."""
    matrix = as_matrix(embeddings)
    n = len(matrix)
    n_clusters = min(n_clusters, n)
    kmeans = faiss.Kmeans(matrix.dim, n_clusters, niter=iterations, nredo=restarts, seed=seed, verbose=False)
    kmeans.train(_training_rows(matrix, n_clusters, seed))
    distances, assignment = _nearest_centroid(matrix, kmeans.centroids)
    sizes = np.bincount(assignment, minlength=n_clusters)
    cluster_turn = np.empty(n_clusters, dtype=np.int64)
    cluster_turn[np.argsort(-sizes, kind="stable")] = np.arange(n_clusters)
    within = np.lexsort((np.arange(n), distances, assignment))  # by cluster, then distance
    rank_in_cluster = np.empty(n, dtype=np.int64)
    starts = np.searchsorted(assignment[within], np.arange(n_clusters))
    rank_in_cluster[within] = np.arange(n) - starts[assignment[within]]
    return np.lexsort((cluster_turn[assignment], rank_in_cluster))


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k initial centroids by k-means++ (D^2 sampling; Arthur & Vassilvitskii 2007), seeded."""
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(len(x)))]
    squared = ((x - x[centres[0]]) ** 2).sum(axis=1).astype(np.float64)
    for _ in range(1, k):
        total = squared.sum()
        pick = int(rng.choice(len(x), p=squared / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(pick)
        np.minimum(squared, ((x - x[pick]) ** 2).sum(axis=1), out=squared)
    return np.ascontiguousarray(x[centres], dtype=np.float32)


def kmeans_nearest_to_centroids(embeddings: np.ndarray | EmbeddingMatrix, k: int, seed: int,
                                iterations: int = 20) -> np.ndarray:
    """Indices of the k examples nearest the centroids of a k-means with k clusters (k-means++
    seeding, Lloyd iterations), in centroid order; a centroid whose nearest example is taken
    already gets its nearest one not taken."""
    matrix = as_matrix(embeddings)
    k = min(k, len(matrix))
    x = _training_rows(matrix, k, seed)
    kmeans = faiss.Kmeans(matrix.dim, k, niter=iterations, seed=seed, verbose=False, min_points_per_centroid=1)
    kmeans.train(x, init_centroids=kmeans_plus_plus(x, k, seed))
    _, nearest = nearest_rows(matrix, kmeans.centroids, NEAREST_CANDIDATES)
    chosen: list[int] = []
    taken: set[int] = set()
    for centroid, candidates in enumerate(nearest):
        pick = next((int(c) for c in candidates if int(c) not in taken), None)
        if pick is None:  # all its nearest candidates taken: rank every row for this centroid
            _, ranked = nearest_rows(matrix, kmeans.centroids[centroid:centroid + 1], len(taken) + 1)
            pick = next(int(c) for c in ranked[0] if int(c) not in taken)
        chosen.append(pick)
        taken.add(pick)
    return np.asarray(chosen, dtype=np.int64)


def order_to_score(order: np.ndarray, n: int) -> np.ndarray:
    """Score = -position in `order`; -inf for rows not in it."""
    score = np.full(n, -np.inf)
    score[order] = -np.arange(len(order), dtype=np.float64)
    return score


def per_budget_frame(inputs: ScoringInputs, order_for: Callable[[int], np.ndarray]) -> pd.DataFrame:
    """A score table with one order column per budget of the pool (`score_budget_<k>`, from
    `order_for(k)`), the largest budget's also as `score` (no budgets: one order over the pool)."""
    n = len(inputs.pool)
    budgets = sorted(inputs.budgets) or [n]
    columns = {budget_column(b): order_to_score(order_for(b), n) for b in budgets}
    frame = base_frame(inputs, columns[budget_column(budgets[-1])])
    for name, values in columns.items():
        frame[name] = values
    return frame


@dataclass(frozen=True)
class Params(MethodParams):
    """Which diversity order: k-center greedy, round-robin over sqrt(N) k-means clusters, or one
    k-means per budget (Xia et al.)."""

    algorithm: Literal["kcenter", "kmeans", "kmeans_per_budget"]


def score(inputs: ScoringInputs, algorithm: str) -> pd.DataFrame:
    """The diversity order as a score."""
    matrix = inputs.embedding_matrix()
    if algorithm == "kcenter":
        order = kcenter_order(matrix, inputs.max_budget or len(matrix), inputs.seed)
    elif algorithm == "kmeans":
        order = kmeans_order(matrix, default_clusters(len(matrix)), inputs.seed)
    elif algorithm == "kmeans_per_budget":
        return per_budget_frame(inputs, lambda budget: kmeans_nearest_to_centroids(matrix, budget, inputs.seed))
    else:
        raise ValueError(f"unknown diversity algorithm {algorithm!r} (kcenter, kmeans, kmeans_per_budget)")
    return base_frame(inputs, order_to_score(order, len(matrix)))


SHORTLIST = Shortlist()  # top-k of its order (per budget for kmeans_xia)


def select(scores: pd.DataFrame, budget: int, algorithm: str) -> pd.DataFrame:
    """The first `budget` examples of the diversity order."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="kcenter", reference="Sener & Savarese 2018",
               needs=frozenset({Need.EMBEDDINGS}), space="position_weighted",
               params=Params(algorithm="kcenter"),
               summary="k-center greedy on LM embeddings"),
    MethodSpec(name="kmeans_round_robin", reference="this project (a prefix-consistent "
               "k-means order)", needs=frozenset({Need.EMBEDDINGS}), space="position_weighted",
               params=Params(algorithm="kmeans"), summary="sqrt(N) k-means clusters, round-robin "
               "over clusters (largest first), nearest-to-centroid first"),
    MethodSpec(name="kmeans_xia", reference="Xia et al. 2024", needs=frozenset({Need.EMBEDDINGS}),
               space="mean", params=Params(algorithm="kmeans_per_budget"), per_budget=True,
               summary="k-means with as many clusters as the budget, the example nearest each centroid, on "
               "mean-pooled LM embeddings"),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "kcenter": Provenance(
        code="Sener & Savarese 2018 (greedy k-center)",
        departures="one pass on the base model's RDS+ embeddings; Xia et al.'s k-center is DiverseEvol's iterative "
                   "one: `kcenter_diverseevol`",
        cost="2 N_p L y + O(N k d)"),
    "kmeans_round_robin": Provenance(
        code="this project",
        departures="a prefix-consistent order: sqrt(N) clusters, round-robin, nearest to centroid first",
        cost="2 N_p L y + O(N C d)"),
    "kmeans_xia": Provenance(
        code="xiatingyu/SFT-DataSelection-at-scale: token_length/kmeans_sample.py, token_length/embedding.py",
        departures="faiss Lloyd from k-means++ seeding, 20 iterations (reference: scikit-learn KMeans, up to 300; "
                   "its picks agree with it within 0.1 of how often it agrees with itself, coverage within 3% on "
                   "average: asserted in test_scoring_methods); "
                   "mean pooling over real tokens, L2-normalised (reference averages padding in, unnormalised); a "
                   "shared nearest example passes to the next nearest",
        cost="2 N_p L y + O(N k d) per budget"),
}
