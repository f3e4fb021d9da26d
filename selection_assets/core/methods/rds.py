"""RDS+ (Ivison et al. 2025): targeted selection by embedding similarity to eval queries.

Score of a pool example for a task = max cosine similarity to that task's query embeddings.
Several tasks: round-robin over tasks. One task: round-robin over its individual queries.
The `score` column (max over groups) is kept for SQL and for score-first methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import (TARGETED, MethodSpec, Provenance, ScoringInputs, Shortlist, base_frame,
                                           selection_frame)
from selection_assets.core.ranking import round_robin_select
from selection_assets.core.similarity import group_max_scores

GROUP_PREFIX = "group__"


def score(inputs: ScoringInputs) -> pd.DataFrame:
    """Per-group max cosine similarity; groups are tasks, or queries when there is one task."""
    if inputs.query_embeddings is None or inputs.pool_embedding_blocks is None:
        raise ValueError("rds_plus needs pool and query embeddings")
    tasks = np.asarray(inputs.query_tasks)
    groups = tasks if len(np.unique(tasks)) > 1 else np.asarray(inputs.query_ids)
    return group_score_frame(inputs, inputs.query_embeddings, groups, "embeddings")


def group_score_frame(inputs: ScoringInputs, queries: np.ndarray, groups: np.ndarray, what: str) -> pd.DataFrame:
    """A score table with one `group__<label>` column per query group (each pool row's max cosine to
    the group's queries, in the groups' order of first appearance) and their max as `score`.
    `what` names the pool vectors in the error raised when their count differs from the pool's."""
    backend = "torch" if inputs.device.startswith("cuda") else "numpy"
    sims, labels = group_max_scores(inputs.pool_embedding_blocks(), queries, groups, backend=backend,
                                    device=inputs.device, precision=inputs.similarity_precision)
    if sims.shape[0] != len(inputs.pool):
        raise ValueError(f"pool has {len(inputs.pool)} rows but {what} have {sims.shape[0]}")
    frame = base_frame(inputs, sims.max(axis=1) if sims.shape[1] else np.zeros(len(sims)))
    for column, label in enumerate(labels):
        frame[f"{GROUP_PREFIX}{label}"] = sims[:, column]
    return frame


SHORTLIST = Shortlist(column_prefix=GROUP_PREFIX)  # turns across the group columns


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Round-robin over the group columns, each popping its best remaining example."""
    columns = [c for c in scores.columns if c.startswith(GROUP_PREFIX)]
    rows = round_robin_select(scores[columns].to_numpy(dtype=np.float32), budget)
    return selection_frame(scores, rows)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="rds_plus", reference="Ivison et al. 2025", needs=TARGETED,
               space="position_weighted",
               summary="position-weighted LM embeddings, max cosine to task queries, round-robin over tasks"),
    MethodSpec(name="rds_plus_mean", reference="Ivison et al. 2025", needs=TARGETED,
               space="mean", summary="RDS+ with plain mean pooling (ablation)"),
    MethodSpec(name="rds_plus_last_token", reference="Ivison et al. 2025", needs=TARGETED,
               space="last_token", summary="RDS+ with last-token pooling (ablation)"),
    MethodSpec(name="embed_encoder", reference="Ivison et al. 2025", needs=TARGETED, space="encoder",
               summary="RDS+ selection in a sentence-encoder space (GTR/NV-Embed baseline)"),
)

# the public code RDS+ and its pooling ablations follow
CODE = ("hamishivi/automated-instruction-selection: minimal_multitask/compute_influence_cosinesim.py "
        "(embeddings, cosine), minimal_multitask/get_top_influences.py (round-robin)")

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "rds_plus": Provenance(
        code=CODE,
        departures="the world's tokenizer holds the Tulu role markers as special tokens, one token each (it "
                   "was trained with them; a Hugging Face tokenizer without a chat template reads them as text, as "
                   "the reference); a model with its own chat template (SmolLM2) is read through it; "
                   "selection is the paper's round-robin over tasks (get_top_influences.py), not "
                   "get_top_optimized.py's global max over every query; pooling restated token by token",
        cost="2 N_p L (y + q)"),
    "rds_plus_mean": Provenance(
        code=CODE,
        departures="ablation: plain mean pooling; otherwise as rds_plus",
        cost="2 N_p L (y + q)"),
    "rds_plus_last_token": Provenance(
        code=CODE,
        departures="ablation: last-token pooling; otherwise as rds_plus",
        cost="2 N_p L (y + q)"),
    "embed_encoder": Provenance(
        code="hamishivi/automated-instruction-selection: minimal_multitask/compute_influence_sentence_embedding.py",
        departures="default encoder all-MiniLM-L6-v2 (shipped offline), not GTR / NV-Embed",
        cost="2 N_enc L (y + q)"),
}

# What Ivison et al. (2025) report: RDS+ beats random at every scale they test, and beats each of
# these (their baselines and its own pooling ablations), each tested against RDS+ directly too.
CLAIMS = {"rds_plus": "Ivison et al. (2025) find RDS+ beats random at every scale they test"}
OUTPERFORMS = {"rds_plus": ("random_balanced", "top_ppl_sequence", "mid_ppl_sequence", "ifd", "less", "less_mean",
                            "embed_encoder", "rds_plus_mean", "rds_plus_last_token")}
