"""The pool_size x budget partition grid, and the nested "rings" that make each example's
expensive work happen once.

Pool sizes are nested prefixes of one seeded shuffle of the source. Per-example assets (raw records,
token counts, embeddings, answer losses) are partitioned by *ring*, keyed by the source positions
it holds: ring "1000-4000" is positions [1000, 4000) whatever the grid, so a key never changes
meaning. Adding pool size 2000 to (1000, 4000) brings rings "1000-2000" and "2000-4000"; ring
"1000-4000" leaves the grid (its files stay under its own key) and pool 4000 is made of the new
rings. A pool-size view maps each pool size to the rings up to it (`ring_to_pool_mapping`, from
`Grid.rings_of`); the pool view records them, and a cell reads its pool's rings through it. The
pool-size partitions are also the `pool_size` dimension of the grid, so Dagster infers the grid ->
pool mapping. Partition keys are parsed into typed values (`core.keys`) once, by the functions at the
end of this module. Budgets are dynamic partitions: the grid's are registered in the instance before
its runs (`register_budgets`; the `register_grid_budgets` sensor does it for the UI), and a
subset-size search adds the sizes it tries, so its trials are cells of the same lineage.

The grid comes from the experiment config's [grid] table (`definitions.experiment_grid`),
so `dagster dev` and `selection-assets demo` see the same partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import (DagsterInstance, DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition,
                     SpecificPartitionsPartitionMapping, StaticPartitionMapping, StaticPartitionsDefinition)

from selection_assets.core.keys import Cell, Ring

POOL_DIM, BUDGET_DIM = "pool_size", "budget"
# the budget dimension is dynamic: a cell's budget is registered in the instance before its run
# (`register_budgets`), and a subset-size search adds the sizes it tries (core/budget_search.py)
BUDGET_PARTITIONS = "budget"


@dataclass(frozen=True)
class Grid:
    """Pool sizes (ascending, nested) and budgets of an experiment, and the partitions they make.

    `rings_of` is the one rule of which rings make a pool; the ring -> pool partition mapping, and
    so Dagster's asset graph, follows from it."""

    pool_sizes: tuple[int, ...]
    budgets: tuple[int, ...]
    pools_def: StaticPartitionsDefinition = field(init=False, compare=False, repr=False)
    rings_def: StaticPartitionsDefinition = field(init=False, compare=False, repr=False)
    budgets_def: DynamicPartitionsDefinition = field(init=False, compare=False, repr=False)
    grid_def: MultiPartitionsDefinition = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_sizes", tuple(sorted(set(self.pool_sizes))))
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        unusable = [b for b in self.budgets if b >= max(self.pool_sizes)]
        if unusable:
            raise ValueError(f"[grid] budgets {unusable} are not below any pool size (the largest of [grid] "
                             f"pool_sizes is {max(self.pool_sizes)}): selecting would take a whole pool")
        pools = StaticPartitionsDefinition([str(p) for p in self.pool_sizes])
        budgets = DynamicPartitionsDefinition(name=BUDGET_PARTITIONS)
        object.__setattr__(self, "pools_def", pools)
        object.__setattr__(self, "rings_def", StaticPartitionsDefinition([r.key for r in self.rings()]))
        object.__setattr__(self, "budgets_def", budgets)
        object.__setattr__(self, "grid_def", MultiPartitionsDefinition({POOL_DIM: pools, BUDGET_DIM: budgets}))

    def rings(self) -> list[Ring]:
        """The rings, ascending: one per pool size, holding the positions it adds to the one below."""
        starts = (0, *self.pool_sizes[:-1])
        return [Ring(start, end) for start, end in zip(starts, self.pool_sizes)]

    def rings_of(self, pool_size: int) -> list[Ring]:
        """The rings that make up the pool of size `pool_size`, ascending: those ending within it."""
        return [ring for ring in self.rings() if ring.end <= pool_size]

    def valid_cells(self) -> list[Cell]:
        """The cells whose budget is smaller than the pool, by pool size then budget."""
        return [Cell(p, b) for p in self.pool_sizes for b in self.budgets_below(p)]

    def budgets_below(self, pool_size: int) -> list[int]:
        """The budgets a pool of `pool_size` is selected for (those smaller than it)."""
        return [b for b in self.budgets if b < pool_size]

    def ring_to_pool_mapping(self) -> StaticPartitionMapping:
        """Each ring feeds the pools it is part of (`rings_of`)."""
        return StaticPartitionMapping({ring.key: [str(p) for p in self.pool_sizes if ring in self.rings_of(p)]
                                       for ring in self.rings()})

    def cells_mapping(self) -> SpecificPartitionsPartitionMapping:
        """An unpartitioned step that reads every valid cell (the comparison) reads these, and no
        cell whose budget is not below its pool."""
        return SpecificPartitionsPartitionMapping([cell_key(c) for c in self.valid_cells()])


def missing_budgets(instance: DagsterInstance, budgets) -> list[str]:
    """The partition keys of `budgets` the instance's dynamic budget partitions lack, ascending."""
    known = set(instance.get_dynamic_partitions(BUDGET_PARTITIONS))
    return [str(b) for b in sorted(set(budgets)) if str(b) not in known]


def register_budgets(instance: DagsterInstance, budgets) -> list[str]:
    """Add `budgets` to the instance's dynamic budget partitions where missing; the keys added."""
    missing = missing_budgets(instance, budgets)
    if missing:
        instance.add_dynamic_partitions(BUDGET_PARTITIONS, missing)
    return missing


def partitioned_by_budget(partitions_def) -> bool:
    """Whether partitions of `partitions_def` (a job's) name a budget, the dynamic dimension whose
    value must be registered before a run over one of them."""
    return (isinstance(partitions_def, MultiPartitionsDefinition)
            and BUDGET_DIM in partitions_def.partition_dimension_names)


# the edge: Dagster's partition keys parsed into typed values once, by the steps that receive them
def ring_of(key: str) -> Ring:
    """The ring a ring partition key names."""
    return Ring.parse(key)


def pool_size_of(key: str) -> int:
    """The pool size a pool partition key names."""
    return int(key)


def cell_of(key: str | MultiPartitionKey) -> Cell:
    """The cell a grid partition key names ("budget|pool_size", or a MultiPartitionKey); ValueError
    for a budget not below its pool."""
    if not isinstance(key, MultiPartitionKey):
        budget, pool_size = str(key).split("|")
        key = MultiPartitionKey({BUDGET_DIM: budget, POOL_DIM: pool_size})
    dims = key.keys_by_dimension
    return Cell(int(dims[POOL_DIM]), int(dims[BUDGET_DIM]))


def cell_key(cell: Cell) -> MultiPartitionKey:
    """The grid partition key of `cell`."""
    return MultiPartitionKey({POOL_DIM: str(cell.pool_size), BUDGET_DIM: str(cell.budget)})
