"""Typed partition values: a ring of source positions, and a (pool size, budget) cell of the grid.

Dagster names partitions by strings ("0-1000", "100|1000"); the asset steps parse their key into
one of these once, at the edge (`selection_assets.orchestration.partitions`), and everything below takes the
typed value: paths (`store.Layout`), pool reads (`core.pool`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Ring:
    """The source positions [start, end) of the pool's shuffled source: the partition of every
    per-example step (validation, tokenisation, embedding, answer losses)."""

    start: int
    end: int

    @property
    def key(self) -> str:
        """The ring's partition key: its positions, whatever grid it belongs to."""
        return f"{self.start}-{self.end}"

    @property
    def size(self) -> int:
        return self.end - self.start

    @classmethod
    def parse(cls, key: str) -> "Ring":
        """The ring a partition key names ("1000-4000"); ValueError for anything else."""
        start, separator, end = key.partition("-")
        if not separator or not start.isdigit() or not end.isdigit() or int(start) >= int(end):
            raise ValueError(f"{key!r} is not a ring key (start-end, start < end)")
        return cls(int(start), int(end))


@dataclass(frozen=True, order=True)
class Cell:
    """A pool size and a budget smaller than it: the partition of selections, checkpoints and
    eval reports."""

    pool_size: int
    budget: int

    def __post_init__(self) -> None:
        if not 0 < self.budget < self.pool_size:
            raise ValueError(f"budget {self.budget} is not smaller than pool size {self.pool_size}: selecting "
                             "would take the whole pool (launch only cells with budget < pool_size)")

    def __str__(self) -> str:
        return f"pool {self.pool_size} budget {self.budget}"
