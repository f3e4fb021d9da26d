"""DEITA (Liu et al. 2024, hkust-nlp/deita): walk down a quality ranking and take an example only if
its cosine similarity to everything already taken is at most a threshold (0.9;
deita/selection/filter/base.py keeps a row unless some similarity exceeds it). Two rankings:

- `deita` (published): the evol score, the sum over an example's turns of complexity x quality
  (deita/selection/filter/combined_filter.py), each the expected 1-6 score its scorer model gives
  (deita/selection/scorer/base.py; complexity from the instruction alone, quality from the
  instruction and its response; deita/pipeline/score_pipeline.py), with the scorers configurable
  (DataResource.deita_scorers). Embeddings are last-token hidden states of the base LM
  (deita/selection/embedder/clm_embedder.py; DEITA's default embedder is Mistral-7B).
- `deita_length_filter` (this project's variant): total token length as the quality, the cheap
  score that holds up at scale (Xia et al. 2024), on RDS+ embeddings.

The accepted sequence is prefix-consistent, so the score is -acceptance position (ties in the
ranking: earlier pool row first). When the filter runs out of examples before the largest budget
is filled (templated data can be that redundant), the rest of the budget is filled with the
rejected examples in ranking order, flagged in the `redundant` column, so the budget stays exact
and the shortfall is visible (DEITA itself would return fewer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from selection_assets.core.embedding_matrix import EmbeddingMatrix, as_matrix
from selection_assets.core.methods import (MethodParams, MethodSpec, Need, Provenance, ScoringInputs, Shortlist,
                                           base_frame, top_k)
from selection_assets.core.methods.diversity import order_to_score

# the scorers' prompts, as deita/selection/scorer/llama_scorer.py writes them
COMPLEXITY_PROMPT = ("You are a helpful assistant. Please identify the complexity score of the following user "
                     "query. \n##Query: {instruction}  \n##Complexity: ")
QUALITY_PROMPT = ("You are a helpful assistant. Please identify the quality score of the Response corresponding "
                  "to the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: ")
RANKINGS = ("evol", "length")
CANDIDATE_BATCH = 1024  # candidates compared with the accepted set in one product


def turns(messages: Sequence[dict]) -> list[tuple[str, str]]:
    """(instruction, response) per user turn; a last unanswered instruction gets an empty response."""
    pairs = []
    for index, message in enumerate(messages):
        if message["role"] == "user":
            following = messages[index + 1] if index + 1 < len(messages) else None
            response = following["content"] if following and following["role"] == "assistant" else ""
            pairs.append((message["content"], response))
    return pairs


def scorer_prompts(conversations: Sequence[Sequence[dict]]) -> tuple[list[str], list[str], np.ndarray]:
    """Complexity prompts, quality prompts (one each per turn) and the conversation of each turn."""
    complexity, quality, owner = [], [], []
    for row, messages in enumerate(conversations):
        for instruction, response in turns(messages):
            complexity.append(COMPLEXITY_PROMPT.format(instruction=instruction))
            quality.append(QUALITY_PROMPT.format(instruction=instruction, output=response))
            owner.append(row)
    return complexity, quality, np.asarray(owner, dtype=np.int64)


def evol_scores(complexity: np.ndarray, quality: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Per conversation, the sum over its turns of complexity x quality (0 without a user turn)."""
    return np.bincount(owner, weights=np.asarray(complexity) * np.asarray(quality), minlength=n)


def redundancy_filter(embeddings: np.ndarray | EmbeddingMatrix, ranking: np.ndarray, k: int, threshold: float,
                      batch: int = CANDIDATE_BATCH) -> np.ndarray:
    """Indices accepted walking `ranking`, each with max cosine to the accepted ones <= threshold.

    Candidates are read `batch` at a time in ranking order: one product against everything accepted
    so far, then a walk through the batch that also checks the ones it accepts; the same decisions
    as one candidate at a time, in memory of the accepted vectors plus one batch."""
    matrix = as_matrix(embeddings)
    ranking = np.asarray(ranking, dtype=np.int64)
    accepted_vectors = np.empty((min(k, len(ranking)), matrix.dim), dtype=np.float32)
    accepted: list[int] = []
    for begin in range(0, len(ranking), batch):
        if len(accepted) >= k:
            break
        candidates = ranking[begin:begin + batch]
        vectors = matrix.rows(candidates)
        against_accepted = (vectors @ accepted_vectors[:len(accepted)].T).max(axis=1, initial=-np.inf)
        among_batch = vectors @ vectors.T
        taken_here: list[int] = []
        for position, index in enumerate(candidates):
            if len(accepted) >= k:
                break
            if against_accepted[position] > threshold:
                continue
            if taken_here and among_batch[position, taken_here].max() > threshold:
                continue
            accepted_vectors[len(accepted)] = vectors[position]
            accepted.append(int(index))
            taken_here.append(position)
    return np.asarray(accepted, dtype=np.int64)


@dataclass(frozen=True)
class Params(MethodParams):
    """The cosine above which a candidate is skipped, and what ranks candidates (DEITA's evol score,
    or length)."""

    threshold: float
    ranking: Literal["evol", "length"]


def score(inputs: ScoringInputs, threshold: float, ranking: str) -> pd.DataFrame:
    """Acceptance order of the filter over the evol-score or length ranking."""
    if ranking == "evol":
        if inputs.deita_scores is None:
            raise ValueError("deita needs the scorers' evol scores (DataResource.deita_scorers)")
        quality = np.asarray(inputs.deita_scores, dtype=np.float64)
    elif ranking == "length":
        quality = inputs.pool["total_tokens"].to_numpy()
    else:
        raise ValueError(f"unknown DEITA ranking {ranking!r} ({', '.join(RANKINGS)})")
    matrix = inputs.embedding_matrix()
    order = np.argsort(-quality, kind="stable")
    k = inputs.max_budget or len(matrix)
    accepted = redundancy_filter(matrix, order, k, threshold)
    rejected = order[~np.isin(order, accepted)][: max(k - len(accepted), 0)]
    frame = base_frame(inputs, order_to_score(np.concatenate([accepted, rejected]), len(matrix)))
    frame["redundant"] = np.isin(np.arange(len(matrix)), rejected)
    if ranking == "evol":
        frame["evol_score"] = quality
    return frame


SHORTLIST = Shortlist()  # top-k of its score


def select(scores: pd.DataFrame, budget: int, threshold: float, ranking: str) -> pd.DataFrame:
    """The first `budget` examples of the filter's order (accepted first, then redundant fill)."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="deita", reference="Liu et al. 2024 (DEITA)",
               needs=frozenset({Need.EMBEDDINGS, Need.DEITA_SCORES}), space="last_token",
               params=Params(threshold=0.9, ranking="evol"), requires=("deita_scorers",),
               summary="evol score (complexity x quality from DEITA's scorer models) first, skipping examples "
               "with cosine > 0.9 to any already taken (last-token embeddings)"),
    MethodSpec(name="deita_length_filter", reference="Liu et al. 2024 (DEITA), length variant",
               needs=frozenset({Need.EMBEDDINGS}), space="position_weighted",
               params=Params(threshold=0.9, ranking="length"),
               summary="longest first, skipping examples with cosine > 0.9 to any already "
               "taken (DEITA's filter with length as the quality)"),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "deita": Provenance(
        code="hkust-nlp/deita: selection/scorer/base.py, selection/filter/combined_filter.py, "
             "selection/filter/base.py, selection/embedder/clm_embedder.py",
        departures="embeddings from the base LM (DEITA: Mistral-7B); ranking ties: earlier row first; a filter that "
                   "runs dry is filled with flagged rejects",
        cost="2 N_s L T + 2 N_p L y + O(N k d)"),
    "deita_length_filter": Provenance(
        code="hkust-nlp/deita: selection/filter/base.py (the filter only)",
        departures="length instead of the scorers' evol score; RDS+ embeddings",
        cost="2 N_p L y + O(N k d)"),
}
