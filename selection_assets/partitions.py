"""The pool_size x budget partition grid, and the nested "rings" that make each example's
expensive work happen once.

Pool sizes are nested prefixes of one seeded shuffle of the source. Per-example assets (raw records,
token counts, embeddings, answer losses) are partitioned by *ring*, keyed by the source positions
it holds: ring "1000-4000" is positions [1000, 4000) whatever the grid, so a key never changes
meaning. Adding pool size 2000 to (1000, 4000) brings rings "1000-2000" and "2000-4000"; ring
"1000-4000" leaves the grid (its files stay under its own key) and pool 4000 is made of the new
rings. A pool-size view maps each pool size to the rings up to it (`ring_to_pool_mapping`). The
pool-size partitions are also the `pool_size` dimension of the grid, so Dagster infers the grid ->
pool mapping.

The grid comes from the environment (SELECTION_ASSETS_POOL_SIZES, SELECTION_ASSETS_BUDGETS, comma
separated integers; default: the active profile's), so `dagster dev` and `selection-assets demo`
see the same partitions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dagster import MultiPartitionsDefinition, StaticPartitionMapping, StaticPartitionsDefinition

from selection_assets.profiles import PROFILES, active_profile

DEFAULT_POOL_SIZES = PROFILES["world"].pool_sizes
DEFAULT_BUDGETS = PROFILES["world"].budgets
POOL_DIM, BUDGET_DIM = "pool_size", "budget"


def _parse_sizes(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or values[0] <= 0:
        raise ValueError(f"{name} needs at least one positive integer, got {text!r}")
    return values


def ring_key(start: int, end: int) -> str:
    """The key of the ring of source positions [start, end)."""
    return f"{start}-{end}"


def ring_bounds(ring: str) -> tuple[int, int]:
    """Source positions [start, end) of ring `ring` (its key names them)."""
    start, end = ring.split("-")
    return int(start), int(end)


@dataclass(frozen=True)
class Grid:
    """Pool sizes (ascending, nested) and budgets of an experiment."""

    pool_sizes: tuple[int, ...] = DEFAULT_POOL_SIZES
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    pools_def: StaticPartitionsDefinition = field(init=False, compare=False, repr=False)
    rings_def: StaticPartitionsDefinition = field(init=False, compare=False, repr=False)
    budgets_def: StaticPartitionsDefinition = field(init=False, compare=False, repr=False)
    grid_def: MultiPartitionsDefinition = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_sizes", tuple(sorted(set(self.pool_sizes))))
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        unusable = [b for b in self.budgets if b >= max(self.pool_sizes)]
        if unusable:
            raise ValueError(f"budgets {unusable} (SELECTION_ASSETS_BUDGETS) are not below any pool size (the largest "
                             f"is {max(self.pool_sizes)}, SELECTION_ASSETS_POOL_SIZES): selecting would take a whole pool")
        pools = StaticPartitionsDefinition([str(p) for p in self.pool_sizes])
        budgets = StaticPartitionsDefinition([str(b) for b in self.budgets])
        object.__setattr__(self, "pools_def", pools)
        object.__setattr__(self, "rings_def", StaticPartitionsDefinition(self.rings()))
        object.__setattr__(self, "budgets_def", budgets)
        object.__setattr__(self, "grid_def", MultiPartitionsDefinition({POOL_DIM: pools, BUDGET_DIM: budgets}))

    @classmethod
    def from_env(cls) -> "Grid":
        """The grid named by SELECTION_ASSETS_POOL_SIZES / SELECTION_ASSETS_BUDGETS, else the active
        profile's (SELECTION_ASSETS_PROFILE; the world's by default)."""
        profile = active_profile()
        pools = os.environ.get("SELECTION_ASSETS_POOL_SIZES")
        budgets = os.environ.get("SELECTION_ASSETS_BUDGETS")
        return cls(_parse_sizes(pools, "SELECTION_ASSETS_POOL_SIZES") if pools else profile.pool_sizes,
                   _parse_sizes(budgets, "SELECTION_ASSETS_BUDGETS") if budgets else profile.budgets)

    def rings(self) -> list[str]:
        """Ring keys, ascending: one per pool size, holding the positions it adds to the one below."""
        starts = (0, *self.pool_sizes[:-1])
        return [ring_key(start, end) for start, end in zip(starts, self.pool_sizes)]

    def ring_then_pool(self) -> list[tuple[str, str]]:
        """(ring, pool size) in build order: each ring, then the pool it completes (which reads it
        and every ring before it)."""
        return list(zip(self.rings(), (str(p) for p in self.pool_sizes)))

    def rings_of(self, pool_size: str) -> list[str]:
        """Ring keys that make up the pool of size `pool_size`, ascending."""
        return [r for r in self.rings() if ring_bounds(r)[1] <= int(pool_size)]

    def ring_to_pool_mapping(self) -> StaticPartitionMapping:
        """A ring ending at position e feeds every pool of size >= e."""
        return StaticPartitionMapping({r: [str(p) for p in self.pool_sizes if p >= ring_bounds(r)[1]]
                                       for r in self.rings()})

    def valid_cells(self) -> list[tuple[str, str]]:
        """(pool_size, budget) keys whose budget is smaller than the pool."""
        return [(str(p), str(b)) for p in self.pool_sizes for b in self.budgets_below(str(p))]

    def budgets_below(self, pool_size: str) -> list[int]:
        """The budgets a pool of `pool_size` is selected for (those smaller than it)."""
        return [b for b in self.budgets if b < int(pool_size)]
