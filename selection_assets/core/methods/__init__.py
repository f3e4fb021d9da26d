"""Selection methods: one module each, registered as `MethodSpec`s.

Every method module exposes
- `score(inputs: ScoringInputs, **params) -> pd.DataFrame`: one row per pool example, in pool order,
  with `example_id`, `source` and `score` (higher = preferred; methods whose order depends on the
  budget store an order that is a prefix for every smaller budget), plus method-specific columns;
- `select(scores: pd.DataFrame, budget: int, **params) -> pd.DataFrame`: the chosen rows in
  selection order, with `rank`, `example_id`, `source`;
- `SHORTLIST`, a `Shortlist`: the rankings its `select` takes rows from, so a selection can read only
  the rows it can reach (core/shortlist.py) instead of the whole score table.

- `PROVENANCE`, a `Provenance` per method it serves (the public code followed, departures, cost);
- `SPECS`, its `MethodSpec`s: what each method's scoring reads (`needs`), which embedding space it
  uses and its parameters, so one module can serve several methods (rds_plus and its pooling
  ablations, say).

`registry()` finds the modules of this package that declare `SPECS`: a method is added by adding
its module, and nothing lists it elsewhere.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, fields, replace
from enum import Enum
from types import ModuleType
from typing import Callable, Iterable, Literal, get_args, get_origin, get_type_hints

import numpy as np
import pandas as pd

from selection_assets.core.embedding_matrix import DEFAULT_MEMORY_BYTES, EmbeddingMatrix
from selection_assets.core.ranking import best_first

class Need(str, Enum):
    """What a method's scoring reads beyond the pool table (ids, sources, labels, token counts)."""

    EMBEDDINGS = "embeddings"  # pool embeddings in the method's space
    QUERIES = "queries"  # eval-task query embeddings in the same space
    MESSAGES = "messages"  # the conversations themselves
    ANSWER_LOSSES = "answer_losses"  # CE(A | Q): one forward pass per example
    ANSWER_LOSSES_ALONE = "answer_losses_alone"  # CE(A) without context: a second, shorter pass
    # CE(A | Q) and CE(A) under a pre-experienced model: the base model briefly fine-tuned on a sample
    # of the pool (Cherry LLM's pre-experience), computed per pool
    PRE_EXPERIENCED_LOSSES = "pre_experienced_losses"
    DEITA_SCORES = "deita_scores"  # DEITA's complexity and quality scorer models, per turn
    REWARD_SCORES = "reward_scores"  # a reward model's score of each (instruction, response) pair
    FINETUNE_ROUNDS = "finetune_rounds"  # fine-tunes the base model on its choices so far, re-embeds the pool
    GRADIENTS = "gradients"  # its "embeddings" are LESS gradient features (a warm-up, then backward passes)


TARGETED = frozenset({Need.EMBEDDINGS, Need.QUERIES})  # methods that choose by similarity to the eval tasks' queries
BASELINE_REFERENCE = "baseline"  # the reference of the methods every other is compared against, first in reports


@dataclass(frozen=True)
class MethodParams:
    """Typed parameters of a method module (each module subclasses it as `Params`); a `Literal`
    field refuses any value it does not list, when the registry is built."""

    def __post_init__(self) -> None:
        for name, hint in get_type_hints(type(self)).items():
            value = getattr(self, name)
            if get_origin(hint) is Literal and value not in get_args(hint):
                raise ValueError(f"{type(self).__module__}.{type(self).__name__}.{name}={value!r}: "
                                 f"one of {', '.join(map(repr, get_args(hint)))}")

    def as_kwargs(self) -> dict:
        """The parameters as the keyword arguments of the module's `score` and `select`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Provenance:
    """Where a method comes from: the public code file it follows, its known departures from that
    code, and its selection cost (docs/science.md's model). Each method module declares one per
    method in `PROVENANCE`; docs/methods.md's table is rendered from them."""

    code: str
    departures: str
    cost: str


@dataclass(frozen=True)
class Shortlist:
    """How a method's `select` walks its score table: it takes rows from one or more rankings, each
    best first (highest value; NaN after every number; ties to the earlier pool row, or the later
    one with `later_rows_first`), either the `budget` best of one ranking (top-k) or by turns across
    several. The rankings are the `score` column (the replicate's or budget's column for seeded and
    per-budget methods), or every column whose name starts with `column_prefix`; with `per_source`,
    each ranking is split by source. A select that fits none of these cannot declare a shortlist."""

    column_prefix: str | None = None
    per_source: bool = False
    later_rows_first: bool = False


@dataclass
class ScoringInputs:
    """Everything a method may read about one pool (all rings up to a pool size), loaded lazily."""

    pool: pd.DataFrame  # example_id, source, total_tokens, answer_tokens (pool order; no labels)
    seed: int = 0
    replicate_seeds: tuple[int, ...] = (0,)  # seeded methods store one score column per replicate
    device: str = "cpu"  # where model-free heavy arithmetic (similarity) may run
    similarity_precision: str = "float32"  # of the pool x query products (core.similarity.PRECISIONS)
    max_budget: int | None = None  # largest budget the pool is selected for (budget-ordered methods)
    budgets: tuple[int, ...] = ()  # every budget the pool is selected for (per-budget methods)
    pool_embedding_blocks: Callable[[], Iterable[np.ndarray]] | None = None
    embedding_memory_bytes: int = DEFAULT_MEMORY_BYTES  # float32 embeddings a diversity method keeps in RAM
    query_embeddings: np.ndarray | None = None
    query_tasks: np.ndarray | None = None  # task name of each query row
    query_ids: np.ndarray | None = None  # unique id of each query row
    answer_losses: pd.DataFrame | None = None  # ce_answer (given context), ce_answer_alone; pool order
    messages: Callable[[], list[list[dict]]] | None = None  # conversations in pool order
    reward_scores: np.ndarray | None = None  # reward-model score per example, when one is configured
    deita_scores: np.ndarray | None = None  # DEITA evol score per example (sum of complexity x quality)
    # fine-tune a fresh base model on pool rows, return every pool example's embedding under it
    train_and_embed: Callable[[np.ndarray], np.ndarray] | None = None

    def embedding_matrix(self) -> EmbeddingMatrix:
        """The pool embeddings for passes and random rows (diversity methods), the leading shards
        that fit `embedding_memory_bytes` kept as float32, the rest re-read from their shards."""
        if self.pool_embedding_blocks is None:
            raise ValueError("this method needs pool embeddings")
        return EmbeddingMatrix(self.pool_embedding_blocks(), self.embedding_memory_bytes)

    def require_answer_losses(self) -> pd.DataFrame:
        if self.answer_losses is None:
            raise ValueError("this method needs answer losses (the ring_answer_losses asset)")
        return self.answer_losses


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A selection method: its inputs, embedding space and parameters, declared in its module's
    `SPECS`; `registry()` binds it to that module."""

    name: str
    module: ModuleType | None = None  # set by registry() from the module declaring it
    summary: str
    reference: str
    needs: frozenset[Need] = frozenset()
    space: str = "position_weighted"  # embedding space (assets.embeddings.SPACES) when `needs` has EMBEDDINGS
    params: MethodParams | None = None  # the module's `Params`, for a module that serves several methods
    seeded: bool = False  # its choice depends on the replicate seed (score columns `score_seed_<s>`)
    per_budget: bool = False  # its choice for one budget is no prefix of a larger one (`score_budget_<b>`)
    requires: tuple[str, ...] = ()  # DataResource settings it cannot run without (external models)

    def __post_init__(self) -> None:
        if self.module is None:
            return
        expected = getattr(self.module, "Params", None)
        if (expected is None) != (self.params is None) or (expected and not isinstance(self.params, expected)):
            raise TypeError(f"method {self.name}: params must be {self.module.__name__}.Params"
                            if expected else f"method {self.name}: {self.module.__name__} takes no params")
        if not isinstance(getattr(self.module, "SHORTLIST", None), Shortlist):
            raise TypeError(f"method {self.name}: {self.module.__name__} must declare SHORTLIST, a Shortlist "
                            "naming the rankings its select takes rows from")

    @property
    def shortlist(self) -> Shortlist:
        return self.module.SHORTLIST

    def ranking_columns(self, columns: Iterable[str], seeds: Iterable[int], budget: int) -> list[str]:
        """The columns of a score table with `columns` that `select` ranks rows by, for any of the
        replicate `seeds` at `budget` (a column the table lacks is left out: `select` names it)."""
        columns = list(columns)
        if self.shortlist.column_prefix is not None:
            return [c for c in columns if c.startswith(self.shortlist.column_prefix)]
        if self.per_budget:
            wanted = [budget_column(budget)]
        elif self.seeded:
            wanted = [seed_column(seed) for seed in seeds]
        else:
            wanted = ["score"]
        return [c for c in dict.fromkeys(wanted) if c in columns]

    def selected_columns(self, columns: Iterable[str], seeds: Iterable[int], budget: int) -> list[str]:
        """Every column of a score table with `columns` that `select` reads for the replicate `seeds`
        at `budget`: ids, sources, `score`, the seeds' columns it checks (seeded methods, even when
        a per-budget column ranks) and the ranking columns."""
        columns = list(columns)
        checked = [seed_column(seed) for seed in seeds] if self.seeded else []
        wanted = ["example_id", "source", "score", *checked, *self.ranking_columns(columns, seeds, budget)]
        return [c for c in dict.fromkeys(wanted) if c in columns]

    @property
    def kwargs(self) -> dict:
        return self.params.as_kwargs() if self.params else {}

    def score(self, inputs: ScoringInputs) -> pd.DataFrame:
        return self.module.score(inputs, **self.kwargs)

    def select(self, scores: pd.DataFrame, budget: int, seed: int = 0) -> pd.DataFrame:
        """The method's choice of `budget` examples; a seeded method uses replicate `seed`'s scores."""
        if self.seeded:
            scores = _scored_by(scores, seed_column(seed), f"{self.name} has no scores for replicate seed {seed}: "
                                "rematerialise its scores with that seed among the training seeds")
        if self.per_budget:
            scores = _scored_by(scores, budget_column(budget), f"{self.name} has no order for budget {budget}: "
                                "rematerialise its scores with that budget in the grid")
        return self.module.select(scores, budget, **self.kwargs)


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
    # the columns' own arrays: pandas keeps strings in Arrow, where `to_numpy()` would make one
    # Python object per example (200 MiB at a million)
    return pd.DataFrame({"example_id": inputs.pool["example_id"].array,
                         "source": inputs.pool["source"].array,
                         "score": np.asarray(score, dtype=np.float64)})


def selection_frame(scores: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The selected rows of a score table, in selection order, as a selection table."""
    chosen = scores.iloc[np.asarray(rows, dtype=np.int64)]
    return pd.DataFrame({"rank": np.arange(len(chosen), dtype=np.int64),
                         "example_id": chosen["example_id"].to_numpy(),
                         "source": chosen["source"].to_numpy()})


def eligible(values: np.ndarray) -> np.ndarray:
    """Which rows a ranking can choose: a finite score or +inf (NaN and -inf never count)."""
    return np.isfinite(values) | (values == np.inf)


def top_k(scores: pd.DataFrame, budget: int, column: str = "score", later_rows_first: bool = False) -> pd.DataFrame:
    """The `budget` highest-scoring rows; NaN and -inf never count. Ties: earlier pool row first, or
    the later one with `later_rows_first` (a reference that sorts ascending and keeps the end).

    Raises ValueError naming the shortfall when fewer than `budget` rows are eligible."""
    values = scores[column].to_numpy(dtype=np.float64)
    chosen_from = eligible(values)
    if chosen_from.sum() < budget:
        raise ValueError(f"only {int(chosen_from.sum())} examples are eligible under '{column}', "
                         f"fewer than the budget {budget}")
    # ineligible rows become NaN, which best_first ranks after every number: never reached here
    ranked = np.where(chosen_from, values, np.nan)
    rows = best_first(ranked, budget, tie_order=-np.arange(len(values)) if later_rows_first else None)
    return selection_frame(scores, rows)


def registry() -> dict[str, MethodSpec]:
    """Every selection method by name, in report order: the baselines, then the other methods by
    module name, each module's in the order of its `SPECS`."""
    return dict(_registry())


@functools.cache
def _registry() -> tuple[tuple[str, MethodSpec], ...]:
    specs = [replace(spec, module=module) for module in method_modules() for spec in module.SPECS]
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TypeError(f"methods registered twice: {', '.join(repeated)}")
    ordered = sorted(specs, key=lambda spec: spec.reference != BASELINE_REFERENCE)  # stable: module order kept
    return tuple((spec.name, spec) for spec in ordered)


def method_modules() -> list[ModuleType]:
    """The modules of this package that serve methods (those that declare `SPECS`), by name:
    adding a method is adding a module here (docs/adding-a-method.md)."""
    modules = [importlib.import_module(f"{__name__}.{info.name}")
               for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)]
    return [module for module in modules if hasattr(module, "SPECS")]


SPINE_METHODS = ("random", "random_balanced", "rds_plus")


def choose_methods(text: str, data=None, echo: Callable[[str], None] = lambda _: None) -> list[str]:
    """The methods `text` names, in report order: 'spine' (random, random_balanced, rds_plus), 'all'
    or empty (every method whose required settings are set in `data`, a DataResource; those left
    out are named through `echo`), or comma-separated names.

    Raises ValueError for an unknown name, or a named method whose required setting is empty."""
    specs = registry()
    if text.strip() in ("", "all"):
        for name in (n for n in specs if _unset_settings(specs[n], data)):
            echo(f"  (all methods but {name}: set {', '.join(_unset_settings(specs[name], data))} to run it)")
        return [name for name in specs if not _unset_settings(specs[name], data)]
    names = SPINE_METHODS if text.strip() == "spine" else [n.strip() for n in text.split(",") if n.strip()]
    return check_methods(names, data)


def check_methods(names: Iterable[str], data=None) -> list[str]:
    """`names` in report order, once each. Raises ValueError for an unknown name, or a method whose
    required setting is empty in `data` (a DataResource)."""
    specs, names = registry(), set(names)
    unknown = names - set(specs)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(specs)}")
    for name in sorted(names):
        if _unset_settings(specs[name], data):
            raise ValueError(f"{name} needs the setting(s) {', '.join(_unset_settings(specs[name], data))} "
                             "(its external models)")
    return [name for name in specs if name in names]


def _unset_settings(spec: MethodSpec, data) -> list[str]:
    """The DataResource settings `spec` requires that are empty in `data` (all of them without it)."""
    return [setting for setting in spec.requires if data is None or not getattr(data, setting)]
