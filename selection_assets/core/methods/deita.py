"""DEITA-style representation filter (Liu et al. 2024): walk down a quality ranking and take an
example only if its cosine similarity to everything already taken is at most a threshold (0.9).
Quality here is total token length, the cheap score that holds up at scale (Xia et al. 2024).

The accepted sequence is prefix-consistent, so the score is -acceptance position. When the filter
runs out of examples before the largest budget is filled (templated data can be that redundant),
the rest of the budget is filled with the rejected examples in quality order, flagged in the
`redundant` column, so the budget stays exact and the shortfall is visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs, base_frame, top_k
from selection_assets.core.methods.diversity import order_to_score


def redundancy_filter(embeddings: np.ndarray, ranking: np.ndarray, k: int, threshold: float) -> np.ndarray:
    """Indices accepted walking `ranking`, each with max cosine to the accepted ones <= threshold."""
    x = np.asarray(embeddings, dtype=np.float32)
    max_sim = np.full(len(x), -np.inf, dtype=np.float32)
    accepted: list[int] = []
    for index in ranking:
        if len(accepted) >= k:
            break
        if max_sim[index] <= threshold:
            accepted.append(int(index))
            np.maximum(max_sim, x @ x[index], out=max_sim)
    return np.asarray(accepted, dtype=np.int64)


def score(inputs: ScoringInputs, threshold: float) -> pd.DataFrame:
    """Acceptance order of the filter over the length ranking."""
    x = inputs.embeddings()
    ranking = np.argsort(-inputs.pool["total_tokens"].to_numpy(), kind="stable")
    k = inputs.max_budget or len(x)
    accepted = redundancy_filter(x, ranking, k, threshold)
    rejected = ranking[~np.isin(ranking, accepted)][: max(k - len(accepted), 0)]
    frame = base_frame(inputs, order_to_score(np.concatenate([accepted, rejected]), len(x)))
    frame["redundant"] = np.isin(np.arange(len(x)), rejected)
    return frame


def select(scores: pd.DataFrame, budget: int, threshold: float) -> pd.DataFrame:
    """The first `budget` examples of the filter's order (accepted first, then redundant fill)."""
    return top_k(scores, budget)
