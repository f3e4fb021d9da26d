"""Instruction-Following Difficulty (Li et al. 2023, Cherry LLM): IFD = CE(A | Q) / CE(A).

CE(A) is the answer's cross-entropy without its context. IFD >= 1 means the context does not help
predict the answer; those examples are dropped (score -inf). The rest are taken highest first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs, base_frame, top_k


def ifd_values(ce_with_context: np.ndarray, ce_alone: np.ndarray) -> np.ndarray:
    """IFD per example (NaN where CE(A) is not positive)."""
    ce_with_context = np.asarray(ce_with_context, dtype=np.float64)
    ce_alone = np.asarray(ce_alone, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ce_alone > 0, ce_with_context / ce_alone, np.nan)


def score(inputs: ScoringInputs) -> pd.DataFrame:
    """IFD as the score, -inf where IFD >= 1 or undefined."""
    losses = inputs.require_answer_losses()
    values = ifd_values(losses["ce_answer"], losses["ce_answer_alone"])
    frame = base_frame(inputs, np.where(np.isfinite(values) & (values < 1.0), values, -np.inf))
    frame["ifd"] = values
    return frame


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Highest IFD first among examples with IFD < 1; fails if fewer than `budget` remain."""
    return top_k(scores, budget)
