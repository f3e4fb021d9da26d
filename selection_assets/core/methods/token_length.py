"""Token-length selection (Xia et al. 2024): the k longest examples under the base model's
tokenizer, by total tokens (the whole conversation, chat format applied: `total_token`) or by
response tokens (the last assistant turn: `response_token`), the two counts of
SFT-DataSelection-at-scale token_length/compute_token_num.py. That repository holds no selection
script, so which count the paper ranked by is not settled by its code: both are offered. Ties:
earlier pool row first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from selection_assets.core.methods import (MethodParams, MethodSpec, Provenance, ScoringInputs, Shortlist, base_frame,
                                           top_k)

COLUMNS = {"total": "total_tokens", "response": "answer_tokens"}


@dataclass(frozen=True)
class Params(MethodParams):
    """Which tokens are counted: the whole conversation, or the answers only."""

    count: Literal["total", "response"]


def score(inputs: ScoringInputs, count: str) -> pd.DataFrame:
    """The token count as the score."""
    if count not in COLUMNS:
        raise ValueError(f"unknown token count {count!r} ({', '.join(COLUMNS)})")
    return base_frame(inputs, inputs.pool[COLUMNS[count]].to_numpy())


SHORTLIST = Shortlist()  # top-k of the token count


def select(scores: pd.DataFrame, budget: int, count: str) -> pd.DataFrame:
    """The `budget` longest (ties: earlier pool row first)."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="token_length", reference="Xia et al. 2024",
               params=Params(count="total"), summary="k longest conversations (total tokens)"),
    MethodSpec(name="token_length_response", reference="Xia et al. 2024",
               params=Params(count="response"), summary="k longest answers (response tokens)"),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "token_length": Provenance(
        code="xiatingyu/SFT-DataSelection-at-scale: token_length/compute_token_num.py (total_token)",
        departures="the repository has no selection script; longest first, earlier row on ties; counts the "
                   "chat-formatted conversation (the reference: its raw 'Human:/Assistant:' text, query and "
                   "response tokenised apart), which ranks alike (Spearman >= 0.999 on the world: asserted in "
                   "test_scoring_methods)",
        cost="0 (tokenisation)"),
    "token_length_response": Provenance(
        code="xiatingyu/SFT-DataSelection-at-scale: token_length/compute_token_num.py (response_token, the last turn)",
        departures="the repository has no selection script; longest first, earlier row on ties; the count is "
                   "the reference's plus the end-of-turn token, of the answer stripped of surrounding whitespace "
                   "(the Tulu format strips, as open-instruct does; the reference counts it as it is), so the "
                   "order is the reference's but for padded answers",
        cost="0 (tokenisation)"),
}

# what Xia et al. (2024) report against random, set beside a finding that this method is worse
CLAIMS = {name: "Xia et al. (2024) find token-length selection holds up at scale"
          for name in ("token_length", "token_length_response")}
