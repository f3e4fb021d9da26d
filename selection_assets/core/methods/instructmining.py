"""INSTRUCTMINING (Cao et al. 2023): natural-language indicators of each example, combined by a
linear rule that predicts the log eval loss of a model fine-tuned on such data; lowest first.

Indicators computed here: input length and output length (tokens), response perplexity under the
base model, MTLD lexical diversity of the response, KNN-6 (as the paper defines KNN-i: the
distance to the i-th nearest neighbour in a SentenceBERT embedding space; here the `encoder` space,
exact search with faiss), and a reward-model score when one is configured. The published rule (v1) is

    log L = 1.0694 - 0.1498 Rew + 8.257e-5 Len - 0.9350 Knn6

with Len the output length. `instructmining` needs its reward model (DataResource.reward_model),
which scores each (instruction, response) pair; the -0.1498 weight belongs to the paper's reward
model's scale, so another reward model changes the term's weight against the others.
`instructmining_no_reward` is the ablation without the Rew term: with unit-norm encoder vectors
KNN-6 spans up to about 2 where the length term spans about 0.02, so it ranks by isolation in the
encoder space (most isolated first). The project can also fit its own rule by least squares from
its (selection -> eval loss) results: `fit_rule` takes the mean indicators of each selected subset
and the subset's eval loss.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from selection_assets.core.embedding_matrix import EmbeddingMatrix, as_matrix, nearest_rows
from selection_assets.core.methods import (MethodParams, MethodSpec, Need, Provenance, ScoringInputs, Shortlist,
                                           base_frame, top_k)

PUBLISHED_RULE = {"intercept": 1.0694, "reward": -0.1498, "output_length": 8.257e-5, "knn6": -0.9350}
INDICATORS = ("input_length", "output_length", "perplexity", "mtld", "knn6", "reward")
MTLD_THRESHOLD = 0.72
_WORD = re.compile(r"[A-Za-z0-9']+")


def _mtld_one_direction(tokens: list[str], threshold: float) -> float:
    factors, types, count = 0.0, set(), 0
    for token in tokens:
        count += 1
        types.add(token)
        if len(types) / count <= threshold:
            factors += 1
            types, count = set(), 0
    if count:
        ttr = len(types) / count
        factors += (1 - ttr) / (1 - threshold) if ttr < 1 else 0.0
    return len(tokens) / factors if factors else float(len(tokens))


def mtld(text: str, threshold: float = MTLD_THRESHOLD) -> float:
    """Measure of Textual Lexical Diversity (McCarthy & Jarvis 2010): mean of forward and backward
    passes; a text too short or too uniform to complete a factor scores its token count."""
    tokens = [t.lower() for t in _WORD.findall(text)]
    if not tokens:
        return 0.0
    return 0.5 * (_mtld_one_direction(tokens, threshold) + _mtld_one_direction(tokens[::-1], threshold))


def knn_distance(embeddings: np.ndarray | EmbeddingMatrix, k: int = 6) -> np.ndarray:
    """L2 distance of each row to its k-th nearest other row (exact search, faiss, a shard of
    queries against every shard at a time: memory of two shards and N x (k + 1) neighbours); with
    fewer than k other rows, to the farthest one."""
    matrix = as_matrix(embeddings)
    n = len(matrix)
    if n < 2:
        return np.zeros(n)
    neighbours = min(k + 1, n)
    result = np.empty(n)
    for start, queries in matrix.blocks():
        squared, found = nearest_rows(matrix, queries, neighbours)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float64)
        own = found == np.arange(start, start + len(queries))[:, None]
        distances[own] = np.inf  # drop each row itself (wherever ties placed it)
        result[start:start + len(queries)] = np.sort(distances, axis=1)[:, neighbours - 2]
    return result


def indicators(inputs: ScoringInputs) -> pd.DataFrame:
    """The indicator table for a pool (reward column only with reward scores)."""
    pool = inputs.pool
    losses = inputs.require_answer_losses()
    if inputs.messages is None:
        raise ValueError("instructmining needs the conversations' text")
    answers = [conversation[-1]["content"] for conversation in inputs.messages()]
    table = pd.DataFrame({
        "input_length": (pool["total_tokens"] - pool["answer_tokens"]).to_numpy(dtype=np.float64),
        "output_length": pool["answer_tokens"].to_numpy(dtype=np.float64),
        "perplexity": np.exp(losses["ce_answer"].to_numpy(dtype=np.float64)),
        "mtld": np.array([mtld(a) for a in answers]),
        "knn6": knn_distance(inputs.embedding_matrix()),
    })
    if inputs.reward_scores is not None:
        table["reward"] = np.asarray(inputs.reward_scores, dtype=np.float64)
    return table


@dataclass(frozen=True)
class Rule:
    """A linear rule: predicted log eval loss = intercept + sum_f coefficient_f * indicator_f."""

    intercept: float
    coefficients: dict[str, float]

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        prediction = np.full(len(table), self.intercept, dtype=np.float64)
        for name, weight in self.coefficients.items():
            if name in table:
                prediction += weight * table[name].to_numpy(dtype=np.float64)
        return prediction

    def to_json(self) -> str:
        return json.dumps({"intercept": self.intercept, "coefficients": self.coefficients})


def published_rule() -> Rule:
    """Cao et al.'s v1 rule (reward, output length, KNN-6)."""
    return Rule(PUBLISHED_RULE["intercept"], {"reward": PUBLISHED_RULE["reward"],
                                              "output_length": PUBLISHED_RULE["output_length"],
                                              "knn6": PUBLISHED_RULE["knn6"]})


def fit_rule(subset_indicators: pd.DataFrame, eval_losses: np.ndarray) -> Rule:
    """Least-squares rule log(loss) ~ intercept + indicators, from one row per fine-tuned subset
    (the mean indicators of its examples) and that subset's eval loss."""
    x = subset_indicators.to_numpy(dtype=np.float64)
    y = np.log(np.asarray(eval_losses, dtype=np.float64))
    if len(x) <= x.shape[1]:
        raise ValueError(f"fitting {x.shape[1]} indicators needs more than {x.shape[1]} subsets, got {len(x)}")
    design = np.column_stack([np.ones(len(x)), x])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return Rule(float(solution[0]), dict(zip(subset_indicators.columns, map(float, solution[1:]))))


@dataclass(frozen=True)
class Params(MethodParams):
    """Whether the rule's reward term is used (the published rule) or left out (the ablation)."""

    reward: Literal["required", "left_out"]


def score(inputs: ScoringInputs, reward: str) -> pd.DataFrame:
    """-predicted log eval loss under the published rule; the indicators alongside. With `reward`
    "required", a pool without reward scores is refused; "left_out" drops the Rew term."""
    if reward == "required" and inputs.reward_scores is None:
        raise ValueError("instructmining needs its reward model: set DataResource.reward_model "
                         "(SELECTION_ASSETS_REWARD_MODEL); without one, instructmining_no_reward is the rule's "
                         "ablation without the Rew term")
    table = indicators(inputs)
    if reward == "left_out":
        table = table.drop(columns=["reward"], errors="ignore")
    frame = base_frame(inputs, -published_rule().predict(table))
    for column in table.columns:
        frame[f"ind_{column}"] = table[column].to_numpy()
    return frame


SHORTLIST = Shortlist()  # top-k of the predicted loss's negation


def select(scores: pd.DataFrame, budget: int, reward: str) -> pd.DataFrame:
    """Lowest predicted eval loss first."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="instructmining", reference="Cao et al. 2023",
               needs=frozenset({Need.ANSWER_LOSSES, Need.EMBEDDINGS, Need.MESSAGES, Need.REWARD_SCORES}),
               space="encoder",
               params=Params(reward="required"), requires=("reward_model",),
               summary="published linear rule on a reward model's score, output length and KNN-6 distance, "
               "lowest predicted eval loss first"),
    MethodSpec(name="instructmining_no_reward", reference="Cao et al. 2023, ablation",
               needs=frozenset({Need.ANSWER_LOSSES, Need.EMBEDDINGS, Need.MESSAGES}), space="encoder",
               params=Params(reward="left_out"),
               summary="the published rule without its reward term: in effect most isolated first (KNN-6 "
               "distance in the encoder space), output length a minor term (ablation)"),
)

CODE = "Cao et al. 2023 (arXiv 2307.06290; no public code)"

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "instructmining": Provenance(
        code=CODE,
        departures="the -0.1498 Rew weight is tied to the paper's reward model's scale: another reward model "
                   "reweighs the term; the reward model reads (instruction, response) pairs; SentenceBERT space: "
                   "all-MiniLM-L6-v2",
        cost="2 N_p L y + 2 N_enc L y + 2 N_rew L y"),
    "instructmining_no_reward": Provenance(
        code=CODE,
        departures="ablation: the Rew term left out, so KNN-6 decides the order (it spans about 2, length "
                   "about 0.02); SentenceBERT space: all-MiniLM-L6-v2",
        cost="2 N_p L y + 2 N_enc L y"),
}
