"""Perplexity family (Xia et al. 2024; Ivison et al. 2025): rank by the base model's answer-token
cross-entropy CE(A | Q) = -(1/|A|) sum_t log p(a_t | Q, a_<t).

- top: highest CE first;
- mid: the descending list from its 33rd percentile on;
- bottom: lowest CE first.
The stored `score` is a rank key (higher = taken earlier) so that top-k selects; `ce_answer` holds
the cross-entropy itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs, base_frame, top_k

MID_START_PERCENTILE = 0.33


def order_key(ce: np.ndarray, variant: str) -> np.ndarray:
    """A key whose descending order is the variant's selection order (ties: lower row first)."""
    ce = np.asarray(ce, dtype=np.float64)
    if variant == "top":
        return ce
    if variant == "bottom":
        return -ce
    if variant == "mid":
        descending = np.argsort(-ce, kind="stable")
        start = int(np.floor(MID_START_PERCENTILE * len(ce)))
        # rotate the descending list so it starts at the 33rd percentile; the top third comes last
        rotated = np.concatenate([descending[start:], descending[:start]])
        key = np.empty(len(ce), dtype=np.float64)
        key[rotated] = -np.arange(len(ce), dtype=np.float64)
        return key
    raise ValueError(f"unknown perplexity variant {variant!r} (top, mid, bottom)")


def score(inputs: ScoringInputs, variant: str) -> pd.DataFrame:
    """Rank key of the variant, with the answer cross-entropy alongside."""
    ce = inputs.require_answer_losses()["ce_answer"].to_numpy(dtype=np.float64)
    frame = base_frame(inputs, order_key(np.nan_to_num(ce, nan=-np.inf if variant == "top" else np.inf), variant))
    frame["ce_answer"] = ce
    return frame


def select(scores: pd.DataFrame, budget: int, variant: str) -> pd.DataFrame:
    """The first `budget` examples in the variant's order."""
    return top_k(scores, budget)
