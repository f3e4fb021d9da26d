"""Perplexity family: rank by the base model's cross-entropy of each example, either

- `loss="answer"` (Xia et al. 2024, SFT-DataSelection-at-scale cross_entropy/entropy_response.py):
  CE(A | Q) = -(1/|A|) sum_t log p(a_t | Q, a_<t) over the last assistant turn, the earlier turns
  as context (that script scores logits unshifted, against token t instead of t + 1; not followed);
- `loss="sequence"` (Ivison et al. 2025, automated-instruction-selection
  minimal_multitask/compute_influence_perplexity.py): the model's loss with labels = input_ids,
  the mean CE of every token of the Tulu-formatted conversation.

Orders (scripts/ppl_selections.py for top and mid):
- top: highest CE first;
- mid: the descending list from its 33rd percentile on;
- bottom: lowest CE first.
The stored `score` is a rank key (higher = taken earlier) so that top-k selects; `ce_answer` or
`ce_sequence` holds the cross-entropy itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from selection_assets.core.methods import (MethodParams, MethodSpec, Need, Provenance, ScoringInputs, Shortlist,
                                           base_frame, top_k)

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


LOSS_COLUMNS = {"answer": "ce_answer", "sequence": "ce_sequence"}


@dataclass(frozen=True)
class Params(MethodParams):
    """Which end of the perplexity order to take, and over which tokens the loss is averaged."""

    variant: Literal["top", "mid", "bottom"]
    loss: Literal["answer", "sequence"] = "answer"


def score(inputs: ScoringInputs, variant: str, loss: str = "answer") -> pd.DataFrame:
    """Rank key of the variant, with the cross-entropy it ranks alongside."""
    if loss not in LOSS_COLUMNS:
        raise ValueError(f"unknown perplexity loss {loss!r} ({', '.join(LOSS_COLUMNS)})")
    ce = inputs.require_answer_losses()[LOSS_COLUMNS[loss]].to_numpy(dtype=np.float64)
    frame = base_frame(inputs, order_key(np.nan_to_num(ce, nan=-np.inf if variant == "top" else np.inf), variant))
    frame[LOSS_COLUMNS[loss]] = ce
    return frame


SHORTLIST = Shortlist()  # top-k of the variant's order


def select(scores: pd.DataFrame, budget: int, variant: str, loss: str = "answer") -> pd.DataFrame:
    """The first `budget` examples in the variant's order."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="top_ppl", reference="Xia et al. 2024", needs=frozenset({Need.ANSWER_LOSSES}),
               params=Params(variant="top"), summary="highest answer perplexity first"),
    MethodSpec(name="mid_ppl", reference="Xia et al. 2024", needs=frozenset({Need.ANSWER_LOSSES}),
               params=Params(variant="mid"), summary="answer perplexity from the 33rd percentile down"),
    MethodSpec(name="bottom_ppl", reference="Xia et al. 2024", needs=frozenset({Need.ANSWER_LOSSES}),
               params=Params(variant="bottom"), summary="lowest answer perplexity first"),
    MethodSpec(name="top_ppl_sequence", reference="Ivison et al. 2025", needs=frozenset({Need.ANSWER_LOSSES}),
               params=Params(variant="top", loss="sequence"),
               summary="highest whole-sequence perplexity first"),
    MethodSpec(name="mid_ppl_sequence", reference="Ivison et al. 2025", needs=frozenset({Need.ANSWER_LOSSES}),
               params=Params(variant="mid", loss="sequence"),
               summary="whole-sequence perplexity from the 33rd percentile down"),
)

# the public code each family of variants follows, and the departure shared by Xia et al.'s
XIA_CE_CODE = ("xiatingyu/SFT-DataSelection-at-scale: cross_entropy/entropy_response.py (CE of the last turn); "
               "ordering as automated-instruction-selection scripts/ppl_selections.py")
XIA_CE_DEPARTURE = ("the reference scores unshifted logits (token t against its own logit); here CE is the usual "
                    "next-token loss")
IVISON_CODE = ("hamishivi/automated-instruction-selection: minimal_multitask/compute_influence_perplexity.py "
               "(loss with labels = input_ids), scripts/ppl_selections.py")

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "top_ppl": Provenance(
        code=XIA_CE_CODE,
        departures=XIA_CE_DEPARTURE,
        cost="2 N_p L y"),
    "mid_ppl": Provenance(
        code=XIA_CE_CODE,
        departures=XIA_CE_DEPARTURE + "; past the list's end, wraps to its top third",
        cost="2 N_p L y"),
    "bottom_ppl": Provenance(
        code=XIA_CE_CODE,
        departures=XIA_CE_DEPARTURE,
        cost="2 N_p L y"),
    "top_ppl_sequence": Provenance(
        code=IVISON_CODE,
        departures="none known",
        cost="2 N_p L y"),
    "mid_ppl_sequence": Provenance(
        code=IVISON_CODE,
        departures="past the list's end, wraps to its top third (the reference returns fewer)",
        cost="2 N_p L y"),
}
