"""LESS selection (Xia, Malladi et al. 2024) on the gradient features of core/less.py.

Each feature is the concatenation over warm-up checkpoints of sqrt(w_i) * unit projected gradient,
so a dot product is LESS's sum_i w_i cos_i (less/data_selection/matching.py). Per eval task:

- `less`: the max over the task's queries, as the RDS+ paper uses LESS and docs/science.md states;
- `less_mean`: the mean over the task's queries, as matching.py combines a subtask's validation
  examples (`.mean(-1)` before the max over subtasks; each project task is one subtask), computed
  as the dot product with the mean query feature.

With several tasks, round-robin over tasks as RDS+ does (LESS itself targets one task at a time,
where this is its top-k of less/data_selection/write_selected_data.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from selection_assets.core.methods import TARGETED, MethodParams, MethodSpec, Need, Provenance, ScoringInputs
from selection_assets.core.methods.rds import SHORTLIST as rds_shortlist
from selection_assets.core.methods.rds import group_score_frame
from selection_assets.core.methods.rds import select as round_robin_over_groups

AGGREGATES = ("max", "mean")


def task_query_features(queries: np.ndarray, tasks: np.ndarray, aggregate: str) -> tuple[np.ndarray, np.ndarray]:
    """The query rows and their task labels to take a per-task max over: every query for "max", one
    mean query feature per task (first-appearance order) for "mean"."""
    if aggregate == "max":
        return queries, tasks
    if aggregate != "mean":
        raise ValueError(f"unknown LESS aggregate {aggregate!r} ({', '.join(AGGREGATES)})")
    labels = list(dict.fromkeys(tasks.tolist()))
    means = np.stack([queries[tasks == label].astype(np.float64).mean(axis=0) for label in labels])
    return means.astype(np.float32), np.asarray(labels)


@dataclass(frozen=True)
class Params(MethodParams):
    """How a pool example's cosines to one task's queries are combined."""

    aggregate: Literal["max", "mean"]


def score(inputs: ScoringInputs, aggregate: str) -> pd.DataFrame:
    """Per task, the checkpoint-weighted cosine of each pool example to the task's queries (max or mean)."""
    if inputs.query_embeddings is None or inputs.pool_embedding_blocks is None:
        raise ValueError("LESS needs pool and query gradient features")
    queries, groups = task_query_features(np.asarray(inputs.query_embeddings, dtype=np.float32),
                                          np.asarray(inputs.query_tasks), aggregate)
    return group_score_frame(inputs, queries, groups, "gradient features")


SHORTLIST = rds_shortlist  # its select is rds's: turns across the group columns


def select(scores: pd.DataFrame, budget: int, aggregate: str) -> pd.DataFrame:
    """Round-robin over tasks, each taking its highest-scoring remaining example (one task: top-k)."""
    return round_robin_over_groups(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="less", reference="Xia, Malladi et al. 2024 (LESS)",
               needs=TARGETED | {Need.GRADIENTS}, space="less_features", params=Params(aggregate="max"),
               summary="LoRA gradient features after a warm-up (Adam-preconditioned, randomly "
               "projected), max cosine to task queries, round-robin over tasks"),
    MethodSpec(name="less_mean", reference="Xia, Malladi et al. 2024 (LESS)",
               needs=TARGETED | {Need.GRADIENTS}, space="less_features", params=Params(aggregate="mean"),
               summary="LESS with the mean over a task's queries (princeton-nlp/LESS matching.py)"),
)

# the public code both variants follow, and the departures they share
CODE = ("princeton-nlp/LESS: less/data_selection/collect_grad_reps.py (gradients, Adam, projection), "
        "less/data_selection/matching.py")
SHARED_DEPARTURES = ("float32 gradients and this project's seeded Rademacher matrix (LESS: float16 into trak's "
                     "projector), so features follow the procedure, not its bits; defaults rank 8 and 1,024 "
                     "dimensions for the world's LM (LESS: 128 and 8,192), warm-up drawn from the smallest pool")

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "less": Provenance(
        code=CODE,
        departures="max over a task's queries (the RDS+ paper's use; matching.py takes the mean: `less_mean`); "
                   + SHARED_DEPARTURES,
        cost="6 N_p (warm-up tokens + L (y + q) checkpoints)"),
    "less_mean": Provenance(
        code=CODE,
        departures="each project task is one subtask; " + SHARED_DEPARTURES,
        cost="6 N_p (warm-up tokens + L (y + q) checkpoints)"),
}
