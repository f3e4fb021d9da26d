"""Instruction-Following Difficulty (Li et al. 2023, Cherry LLM): IFD = CE(A | Q) / CE(A).

CE(A) is the answer's cross-entropy without its context. IFD > 1 means the context makes the answer
harder to predict; those examples are dropped (score -inf), as in Cherry LLM. So are examples that do not fit in
`max_length` whole: CE(A | Q) would cover only the answer tokens left after the question while CE(A)
covers the whole answer, and Cherry LLM's `cherry_seletion/data_by_IFD.py` skips such examples
(`instruct_i_len + len_1 > max_length`). The rest are taken highest first; among equal IFDs (duplicated
examples tie exactly) the later pool row first, as the reference sorts (IFD, index) ascending and
keeps the end of the list.

`ifd` scores with the base model. `ifd_pre_experienced` scores as Cherry LLM's pipeline and Xia et
al.'s run (IFD/1-pre_experience_analysis.sh, 2-train.sh, 3-analysis.sh) do: the base model reads
every example's instruction alone (its perplexity and mean last hidden state); k-means on those
vectors, one cluster per 500 examples (Cherry LLM: 100 for Alpaca's 52k; Xia: 1,000 for WildChat's
442k); in each cluster, the examples whose instruction perplexity lies between the cluster's 25th
and 75th percentiles, 10 of them evenly spaced (cherry_seletion/data_by_cluster.py); the base model
fine-tuned on that sample for one epoch (2-train.sh) is the "pre-experienced" model, whose answer
losses give the IFD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import faiss

from selection_assets.core.methods import MethodSpec, Need, Provenance, ScoringInputs, Shortlist, base_frame, top_k
from selection_assets.core.methods.diversity import kmeans_plus_plus

EXAMPLES_PER_CLUSTER = 500  # the pre-experience k-means: one cluster per this many pool examples
SAMPLE_PER_CLUSTER = 10  # data_by_cluster.py --sample_num
MIDDLE_PERCENTILES = (25, 75)  # --low_th, --up_th
KMEANS_ITERATIONS = 300  # scikit-learn's KMeans max_iter, which the reference runs
KMEANS_RESTARTS = 10  # its n_init (the default of the scikit-learn of the reference's time)
PRE_EXPERIENCE_EPOCHS = 1.0  # IFD/2-train.sh --num_train_epochs


def pre_experience_clusters(n_examples: int) -> int:
    """How many k-means clusters the pre-experience sample of a pool of `n_examples` draws from."""
    return max(1, round(n_examples / EXAMPLES_PER_CLUSTER))


def cluster_labels(vectors: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Each row's k-means cluster: the best (lowest within-cluster sum of squares) of
    `KMEANS_RESTARTS` runs, each seeded by k-means++ and refined by Lloyd iterations (faiss)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    clusters = min(clusters, len(x))
    best, best_objective = None, np.inf
    for restart in range(KMEANS_RESTARTS):
        kmeans = faiss.Kmeans(x.shape[1], clusters, niter=KMEANS_ITERATIONS, seed=seed, verbose=False,
                              min_points_per_centroid=1, max_points_per_centroid=len(x))
        kmeans.train(x, init_centroids=kmeans_plus_plus(x, clusters, seed * KMEANS_RESTARTS + restart))
        distances, labels = kmeans.index.search(x, 1)
        if distances.sum() < best_objective:
            best, best_objective = labels[:, 0].astype(np.int64), float(distances.sum())
    return best


def middle_perplexity_sample(labels: np.ndarray, perplexity: np.ndarray, per_cluster: int = SAMPLE_PER_CLUSTER,
                             percentiles: tuple[float, float] = MIDDLE_PERCENTILES) -> np.ndarray:
    """The pre-experience sample, cluster by cluster: all of a cluster smaller than `per_cluster`;
    else its examples whose perplexity lies within the cluster's `percentiles` (NaN never does), all
    of them if fewer than `per_cluster`, else `per_cluster` of them evenly spaced from the first."""
    rows: list[int] = []
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        if len(members) < per_cluster:
            rows.extend(members)
            continue
        values = perplexity[members]
        low, high = np.nanpercentile(values, percentiles)
        middle = members[(values >= low) & (values <= high)]
        rows.extend(middle if len(middle) < per_cluster else middle[:: len(middle) // per_cluster][:per_cluster])
    return np.asarray(rows, dtype=np.int64)


def ifd_values(ce_with_context: np.ndarray, ce_alone: np.ndarray) -> np.ndarray:
    """IFD per example (NaN where CE(A) is not positive)."""
    ce_with_context = np.asarray(ce_with_context, dtype=np.float64)
    ce_alone = np.asarray(ce_alone, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ce_alone > 0, ce_with_context / ce_alone, np.nan)


def score(inputs: ScoringInputs) -> pd.DataFrame:
    """IFD as the score, -inf where IFD > 1 or undefined (NaN, as for an example cut by truncation)."""
    losses = inputs.require_answer_losses()
    values = ifd_values(losses["ce_answer"], losses["ce_answer_alone"])
    if "truncated" in losses:
        values = np.where(losses["truncated"].to_numpy(dtype=bool), np.nan, values)
    frame = base_frame(inputs, np.where(np.isfinite(values) & (values <= 1.0), values, -np.inf))
    frame["ifd"] = values
    return frame


SHORTLIST = Shortlist(later_rows_first=True)  # top-k, ties to the later row


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Highest IFD first among examples with IFD <= 1 (ties: later row first); fails if fewer than
    `budget` remain."""
    return top_k(scores, budget, later_rows_first=True)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="ifd", reference="Li et al. 2023",
               needs=frozenset({Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE}),
               summary="instruction-following difficulty under the base model, IFD > 1 dropped, highest first"),
    MethodSpec(name="ifd_pre_experienced", reference="Li et al. 2023", needs=frozenset({Need.PRE_EXPERIENCED_LOSSES}),
               summary="instruction-following difficulty under a pre-experienced model (the base model fine-tuned "
               "for one epoch on a k-means, middle-perplexity sample of the pool), IFD > 1 dropped, highest first"),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "ifd": Provenance(
        code="tianyi-lab/Cherry_LLM: cherry_seletion/data_analysis.py, cherry_seletion/data_by_IFD.py",
        departures="scored with the base model (Cherry LLM's pipeline and Xia et al.'s run score with a "
                   "pre-experienced model: ifd_pre_experienced); CE(A) after only the assistant header (the "
                   "reference: after '### Response:'); examples that do not fit whole are skipped, as there",
        cost="2 x 2 N_p L y"),
    "ifd_pre_experienced": Provenance(
        code="tianyi-lab/Cherry_LLM: cherry_seletion/data_analysis.py (pre, cherry), cherry_seletion/data_by_cluster.py, "
             "cherry_seletion/data_by_IFD.py; xiatingyu/SFT-DataSelection-at-scale: IFD/2-train.sh",
        departures="k-means is the best of 10 faiss runs (Lloyd iterations from a seeded k-means++), "
                   "as scikit-learn's KMeans(random_state=0) runs in the reference but with other random draws; one cluster per 500 examples (the reference fixes 100 or "
                   "1,000); a one-token instruction has no perplexity and is never in a cluster's middle; the "
                   "warm-up is the project's fine-tuning recipe for one epoch (Xia: full fine-tuning at 7e-6); "
                   "the same CE(A) and truncation rule as ifd",
        cost="2 N_p L_q y + 6 N_p L s + 2 x 2 N_p L y (s: the sample, about y / 50)"),
}
