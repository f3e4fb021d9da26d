"""Selection methods: one module each, registered as `MethodSpec`s.

Every method module exposes
- `score(inputs: ScoringInputs, **params) -> pd.DataFrame`: one row per pool example, in pool order,
  with `example_id`, `source` and `score` (higher = preferred; methods whose order depends on the
  budget store an order that is a prefix for every smaller budget), plus method-specific columns;
- `select(scores: pd.DataFrame, budget: int, **params) -> pd.DataFrame`: the chosen rows in
  selection order, with `rank`, `example_id`, `source`.

A spec names the module, what its scoring reads (`needs`), which embedding space it uses and its
parameters, so one module can serve several methods (rds_plus and its pooling ablations, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Iterable

import numpy as np
import pandas as pd

# what a method's scoring may read, beyond the pool table (ids, sources, labels, token counts)
EMBEDDINGS, QUERIES, MESSAGES = "embeddings", "queries", "messages"
ANSWER_LOSSES = "answer_losses"  # CE(A | Q): one forward pass per example
ANSWER_LOSSES_ALONE = "answer_losses_alone"  # CE(A) without context: a second, shorter pass
DEITA_SCORES = "deita_scores"  # DEITA's complexity and quality scorer models, per turn
FINETUNE_ROUNDS = "finetune_rounds"  # fine-tunes the base model on its choices so far, then re-embeds the pool
MODEL_PASSES = frozenset({DEITA_SCORES, FINETUNE_ROUNDS})  # scoring itself runs models (the gpu pool)
GRADIENTS = "gradients"  # its "embeddings" are LESS gradient features (a warm-up, then backward passes)


@dataclass
class ScoringInputs:
    """Everything a method may read about one pool (all rings up to a pool size), loaded lazily."""

    pool: pd.DataFrame  # example_id, source, clean, noise, total_tokens, answer_tokens (pool order)
    seed: int = 0
    replicate_seeds: tuple[int, ...] = (0,)  # seeded methods store one score column per replicate
    device: str = "cpu"  # where model-free heavy arithmetic (similarity) may run
    max_budget: int | None = None  # largest budget the pool is selected for (budget-ordered methods)
    budgets: tuple[int, ...] = ()  # every budget the pool is selected for (per-budget methods)
    pool_embedding_blocks: Callable[[], Iterable[np.ndarray]] | None = None
    query_embeddings: np.ndarray | None = None
    query_tasks: np.ndarray | None = None  # task name of each query row
    query_ids: np.ndarray | None = None  # unique id of each query row
    answer_losses: pd.DataFrame | None = None  # ce_answer (given context), ce_answer_alone; pool order
    messages: Callable[[], list[list[dict]]] | None = None  # conversations in pool order
    reward_scores: np.ndarray | None = None  # reward-model score per example, when one is configured
    deita_scores: np.ndarray | None = None  # DEITA evol score per example (sum of complexity x quality)
    # fine-tune a fresh base model on pool rows, return every pool example's embedding under it
    train_and_embed: Callable[[np.ndarray], np.ndarray] | None = None

    def embeddings(self) -> np.ndarray:
        """All pool embeddings as one float32 (N, d) array (diversity methods need random access)."""
        if self.pool_embedding_blocks is None:
            raise ValueError("this method needs pool embeddings")
        blocks = [np.asarray(b, dtype=np.float32) for b in self.pool_embedding_blocks()]
        return np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)

    def require_answer_losses(self) -> pd.DataFrame:
        if self.answer_losses is None:
            raise ValueError("this method needs answer losses (the answer_losses asset)")
        return self.answer_losses


@dataclass(frozen=True)
class MethodSpec:
    """A registered selection method: its module, inputs, embedding space and parameters."""

    name: str
    module: ModuleType
    summary: str
    reference: str
    needs: frozenset[str] = frozenset()
    space: str = "rds"  # embedding space, when `needs` has EMBEDDINGS
    params: dict = field(default_factory=dict)
    uses: tuple[ModuleType, ...] = ()  # other method modules its code calls (part of its code version)
    seeded: bool = False  # its choice depends on the replicate seed (score columns `score_seed_<s>`)
    per_budget: bool = False  # its choice for one budget is no prefix of a larger one (`score_budget_<b>`)
    requires: tuple[str, ...] = ()  # DataResource settings it cannot run without (external models)

    def score(self, inputs: ScoringInputs) -> pd.DataFrame:
        return self.module.score(inputs, **self.params)

    def select(self, scores: pd.DataFrame, budget: int, seed: int = 0) -> pd.DataFrame:
        """The method's choice of `budget` examples; a seeded method uses replicate `seed`'s scores."""
        if self.seeded:
            scores = _scored_by(scores, seed_column(seed), f"{self.name} has no scores for replicate seed {seed}: "
                                "rematerialise its scores with that seed among the training seeds")
        if self.per_budget:
            scores = _scored_by(scores, budget_column(budget), f"{self.name} has no order for budget {budget}: "
                                "rematerialise its scores with that budget in the grid")
        return self.module.select(scores, budget, **self.params)

    def report_notes(self, scores: pd.DataFrame) -> dict[str, str]:
        """What the method's module says a reader of its results must know (e.g. an indicator it
        could not compute); empty for most methods."""
        notes = getattr(self.module, "report_notes", None)
        return notes(scores) if notes else {}


def _scored_by(scores: pd.DataFrame, column: str, missing: str) -> pd.DataFrame:
    """`scores` with `column` as its `score`; ValueError(`missing`) without that column."""
    if column not in scores:
        raise ValueError(missing)
    return scores.assign(score=scores[column])


def seed_column(seed: int) -> str:
    """Score column of a seeded method for replicate `seed`."""
    return f"score_seed_{seed}"


def budget_column(budget: int) -> str:
    """Score column of a per-budget method for `budget`."""
    return f"score_budget_{budget}"


def base_frame(inputs: ScoringInputs, score: np.ndarray) -> pd.DataFrame:
    """A score table: pool ids and sources with one `score` column."""
    return pd.DataFrame({"example_id": inputs.pool["example_id"].to_numpy(),
                         "source": inputs.pool["source"].to_numpy(),
                         "score": np.asarray(score, dtype=np.float64)})


def selection_frame(scores: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The selected rows of a score table, in selection order, as a selection table."""
    chosen = scores.iloc[np.asarray(rows, dtype=np.int64)]
    return pd.DataFrame({"rank": np.arange(len(chosen), dtype=np.int64),
                         "example_id": chosen["example_id"].to_numpy(),
                         "source": chosen["source"].to_numpy()})


def top_k(scores: pd.DataFrame, budget: int, column: str = "score", later_rows_first: bool = False) -> pd.DataFrame:
    """The `budget` highest-scoring rows; NaN and -inf never count. Ties: earlier pool row first, or
    the later one with `later_rows_first` (a reference that sorts ascending and keeps the end).

    Raises ValueError naming the shortfall when fewer than `budget` rows are eligible."""
    values = scores[column].to_numpy(dtype=np.float64)
    eligible = np.isfinite(values) | (values == np.inf)
    if eligible.sum() < budget:
        raise ValueError(f"only {int(eligible.sum())} examples are eligible under '{column}', "
                         f"fewer than the budget {budget}")
    key = -np.where(eligible, values, -np.inf)
    if later_rows_first:
        order = len(key) - 1 - np.argsort(key[::-1], kind="stable")[:budget]
    else:
        order = np.argsort(key, kind="stable")[:budget]
    return selection_frame(scores, order)


def registry() -> dict[str, MethodSpec]:
    """Every selection method by name, in report order."""
    from selection_assets.core.methods import (deita, diverse_evol, diversity, ifd, instructmining, less, perplexity,
                                               random, random_balanced, rds, token_length)

    targeted = frozenset({EMBEDDINGS, QUERIES})
    specs = [
        MethodSpec("random", random, "seeded shuffle, first k", "baseline", seeded=True),
        MethodSpec("random_balanced", random_balanced, "round-robin over sources in shuffle order", "baseline",
                   uses=(random,), seeded=True),
        MethodSpec("rds_plus", rds, "position-weighted LM embeddings, max cosine to task queries, "
                   "round-robin over tasks", "Ivison et al. 2025", targeted, "rds"),
        MethodSpec("rds_plus_mean", rds, "RDS+ with plain mean pooling (ablation)", "Ivison et al. 2025",
                   targeted, "rds_mean"),
        MethodSpec("rds_plus_last_token", rds, "RDS+ with last-token pooling (ablation)", "Ivison et al. 2025",
                   targeted, "rds_last_token"),
        MethodSpec("embed_encoder", rds, "RDS+ selection in a sentence-encoder space (GTR/NV-Embed baseline)",
                   "Ivison et al. 2025", targeted, "encoder"),
        MethodSpec("less", less, "LoRA gradient features after a warm-up (Adam-preconditioned, randomly "
                   "projected), max cosine to task queries, round-robin over tasks", "Xia, Malladi et al. 2024 (LESS)",
                   targeted | {GRADIENTS}, "less", {"aggregate": "max"}, uses=(rds,)),
        MethodSpec("less_mean", less, "LESS with the mean over a task's queries (princeton-nlp/LESS matching.py)",
                   "Xia, Malladi et al. 2024 (LESS)", targeted | {GRADIENTS}, "less", {"aggregate": "mean"},
                   uses=(rds,)),
        MethodSpec("top_ppl", perplexity, "highest answer perplexity first", "Xia et al. 2024",
                   frozenset({ANSWER_LOSSES}), params={"variant": "top"}),
        MethodSpec("mid_ppl", perplexity, "answer perplexity from the 33rd percentile down", "Xia et al. 2024",
                   frozenset({ANSWER_LOSSES}), params={"variant": "mid"}),
        MethodSpec("bottom_ppl", perplexity, "lowest answer perplexity first", "Xia et al. 2024",
                   frozenset({ANSWER_LOSSES}), params={"variant": "bottom"}),
        MethodSpec("top_ppl_sequence", perplexity, "highest whole-sequence perplexity first", "Ivison et al. 2025",
                   frozenset({ANSWER_LOSSES}), params={"variant": "top", "loss": "sequence"}),
        MethodSpec("mid_ppl_sequence", perplexity, "whole-sequence perplexity from the 33rd percentile down",
                   "Ivison et al. 2025", frozenset({ANSWER_LOSSES}), params={"variant": "mid", "loss": "sequence"}),
        MethodSpec("ifd", ifd, "instruction-following difficulty, IFD >= 1 dropped, highest first",
                   "Li et al. 2023", frozenset({ANSWER_LOSSES, ANSWER_LOSSES_ALONE})),
        MethodSpec("token_length", token_length, "k longest conversations (total tokens)", "Xia et al. 2024",
                   params={"count": "total"}),
        MethodSpec("token_length_response", token_length, "k longest answers (response tokens)",
                   "Xia et al. 2024", params={"count": "response"}),
        MethodSpec("kcenter", diversity, "k-center greedy on LM embeddings", "Sener & Savarese 2018",
                   frozenset({EMBEDDINGS}), "rds", {"algorithm": "kcenter"}),
        MethodSpec("kcenter_diverseevol", diverse_evol, "iterative k-center: 10% random, then 3 rounds of fine-tuning "
                   "on the choice so far, re-embedding the pool and adding the farthest examples",
                   "Wu et al. 2023 (DiverseEvol), as Xia et al. 2024 run it", frozenset({FINETUNE_ROUNDS}),
                   uses=(diversity,), per_budget=True),
        MethodSpec("kmeans_round_robin", diversity, "sqrt(N) k-means clusters, round-robin over clusters "
                   "(largest first), nearest-to-centroid first", "this project (a prefix-consistent k-means order)",
                   frozenset({EMBEDDINGS}), "rds", {"algorithm": "kmeans"}),
        MethodSpec("kmeans_xia", diversity, "k-means with as many clusters as the budget, the example nearest "
                   "each centroid, on mean-pooled LM embeddings", "Xia et al. 2024", frozenset({EMBEDDINGS}),
                   "rds_mean", {"algorithm": "kmeans_per_budget"}, per_budget=True),
        MethodSpec("deita", deita, "evol score (complexity x quality from DEITA's scorer models) first, skipping "
                   "examples with cosine > 0.9 to any already taken (last-token embeddings)", "Liu et al. 2024 (DEITA)",
                   frozenset({EMBEDDINGS, DEITA_SCORES}), "rds_last_token",
                   {"threshold": 0.9, "ranking": "evol"}, uses=(diversity,), requires=("deita_scorers",)),
        MethodSpec("deita_length_filter", deita, "longest first, skipping examples with cosine > 0.9 to any "
                   "already taken (DEITA's filter with length as the quality)", "Liu et al. 2024 (DEITA), length "
                   "variant", frozenset({EMBEDDINGS}), "rds", {"threshold": 0.9, "ranking": "length"},
                   uses=(diversity,)),
        MethodSpec("instructmining", instructmining, "published linear rule on indicators, lowest "
                   "predicted eval loss first", "Cao et al. 2023",
                   frozenset({ANSWER_LOSSES, EMBEDDINGS, MESSAGES}), "encoder"),
    ]
    return {spec.name: spec for spec in specs}


SPINE_METHODS = ("random", "random_balanced", "rds_plus")
