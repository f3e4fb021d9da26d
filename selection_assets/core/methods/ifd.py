"""Instruction-Following Difficulty (Li et al. 2023, Cherry LLM): IFD = CE(A | Q) / CE(A).

CE(A) is the answer's cross-entropy without its context. IFD > 1 means the context makes the answer
harder to predict; those examples are dropped (score -inf), as in Cherry LLM. So are examples that do not fit in
`max_length` whole: CE(A | Q) would cover only the answer tokens left after the question while CE(A)
covers the whole answer, and Cherry LLM's `cherry_seletion/data_by_IFD.py` skips such examples
(`instruct_i_len + len_1 > max_length`). The rest are taken highest first; among equal IFDs (duplicated
examples tie exactly) the later pool row first, as the reference sorts (IFD, index) ascending and
keeps the end of the list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import MethodSpec, Need, Provenance, ScoringInputs, Shortlist, base_frame, top_k


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
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "ifd": Provenance(
        code="tianyi-lab/Cherry_LLM: cherry_seletion/data_analysis.py, cherry_seletion/data_by_IFD.py",
        departures="scored with the base model: Cherry LLM's pipeline and Xia et al.'s run (IFD/2-train.sh) first "
                   "fine-tune a pre-experienced model briefly on a small pre-selected sample and score with it (not "
                   "offered yet); CE(A) after only the assistant header (the reference: after '### Response:'); "
                   "examples that do not fit whole are skipped, as there",
        cost="2 x 2 N_p L y"),
}
