"""Selection methods, one module each. Every method module exposes:

- `NAME`: the method's name (asset names and report rows use it);
- `NEEDS`: which inputs `score` reads ("embeddings", "queries");
- `score(inputs: ScoringInputs) -> pd.DataFrame`: one row per pool example with `example_id`,
  `source` and `score` (higher = preferred), plus method-specific columns;
- `select(scores: pd.DataFrame, budget: int) -> pd.DataFrame`: the chosen rows in selection order
  with `rank`, `example_id`, `source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Iterable

import numpy as np
import pandas as pd


@dataclass
class ScoringInputs:
    """Everything a method may read about one pool (all rings up to a pool size)."""

    pool: pd.DataFrame  # example_id, source, total_tokens, answer_tokens (pool order)
    seed: int = 0
    pool_embedding_blocks: Callable[[], Iterable[np.ndarray]] | None = None
    query_embeddings: np.ndarray | None = None
    query_tasks: np.ndarray | None = None  # task name of each query row
    query_ids: np.ndarray | None = None  # unique id of each query row
    extra: dict = field(default_factory=dict)


def selection_frame(scores: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The selected rows of a score table, in selection order, as a selection table."""
    chosen = scores.iloc[np.asarray(rows, dtype=np.int64)]
    return pd.DataFrame({"rank": np.arange(len(chosen), dtype=np.int64),
                         "example_id": chosen["example_id"].to_numpy(),
                         "source": chosen["source"].to_numpy()})


def top_k(scores: pd.DataFrame, budget: int, column: str = "score") -> pd.DataFrame:
    """The `budget` highest-scoring rows (ties: earlier pool row first)."""
    order = np.argsort(-scores[column].to_numpy(dtype=np.float64), kind="stable")[:budget]
    return selection_frame(scores, order)


def registry() -> dict[str, ModuleType]:
    """All method modules by name, in report order."""
    from selection_assets.core.methods import random, random_balanced, rds

    modules = [random, random_balanced, rds]
    return {m.NAME: m for m in modules}
