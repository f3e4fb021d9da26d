"""Operating the lineage: partitioned jobs for backfills, the stale-rerun plan and its sensor, and
the executor choice (in-process/multiprocess locally, Kubernetes pods with dagster-k8s)."""

from __future__ import annotations

import os

from dagster import (AssetSelection, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason,
                     define_asset_job, in_process_executor, multiprocess_executor, sensor)

from selection_assets.partitions import Grid
from selection_assets.runs import owner_tagging, reap_dead_runs

RING_JOB, POOL_JOB, CELL_JOB = "ring_stage_job", "pool_stage_job", "cell_stage_job"
EXECUTOR_ENV = "SELECTION_ASSETS_EXECUTOR"


def stage_jobs(grid: Grid, assets: list, leave_out: set[str] = frozenset()) -> list:
    """One job per stage, for job backfills (`dagster job backfill`, or the Jobs page), in this
    order: ring_stage_job (validate, tokenize, embed, answer losses; rings are independent, so
    their runs may go in parallel), pool_stage_job (pool views and scores, which read every ring
    up to their size), cell_stage_job (selections, checkpoints, eval reports). An asset backfill
    from the asset graph orders partitions by itself. The assets of the methods in `leave_out`
    (not chosen, or whose external models are not configured) are in no job, nor are ring assets
    only they need (LESS gradients, an embedding space)."""
    left_out = {f"{stage}_{method}" for method in leave_out
                for stage in ("scores", "selection", "finetuned", "eval_report")}
    kept = [a for a in assets if not {k.to_user_string() for k in a.keys} & left_out]
    downstream = [k for a in kept if a.partitions_def in (grid.pools_def, grid.grid_def) for k in a.keys]
    needed = AssetSelection.assets(*downstream).upstream().resolve(assets)
    ring_keys = [k for a in kept if a.partitions_def == grid.rings_def for k in a.keys if k in needed]
    pool_keys = [k for a in kept if a.partitions_def == grid.pools_def for k in a.keys]
    cell_keys = [k for a in kept if a.partitions_def == grid.grid_def for k in a.keys]
    return [define_asset_job(RING_JOB, AssetSelection.assets(*ring_keys), partitions_def=grid.rings_def,
                             description="Per-ring stage: validate, tokenize, embed and score each example once."),
            define_asset_job(POOL_JOB, AssetSelection.assets(*pool_keys), partitions_def=grid.pools_def,
                             description="Per-pool-size stage: the pool view and every method's scores."),
            define_asset_job(CELL_JOB, AssetSelection.assets(*cell_keys), partitions_def=grid.grid_def,
                             description="Per-cell stage: select, fine-tune and evaluate every method.")]


def stale_rerun_sensor(grid: Grid, assets: list):
    """A sensor (off by default) that asks, per partition, for the assets whose code version or
    upstream data changed since their last materialisation (`stale_assets_only`)."""
    ring_keys = [k for a in assets if a.partitions_def == grid.rings_def for k in a.keys]
    pool_keys = [k for a in assets if a.partitions_def == grid.pools_def for k in a.keys]
    cell_keys = [k for a in assets if a.partitions_def == grid.grid_def for k in a.keys]
    unpartitioned = [k for a in assets if a.partitions_def is None for k in a.keys]

    @sensor(name="stale_rerun_sensor", minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
            asset_selection=AssetSelection.assets(*unpartitioned, *ring_keys, *pool_keys, *cell_keys),
            description="Reruns stale assets (changed code version or upstream data) and so their downstream.")
    def _sensor(context: SensorEvaluationContext):
        yield RunRequest(run_key=None, asset_selection=unpartitioned, stale_assets_only=True)
        for ring in grid.rings():
            yield RunRequest(run_key=None, asset_selection=ring_keys, partition_key=ring, stale_assets_only=True)
        for pool_size in grid.pools_def.get_partition_keys():
            yield RunRequest(run_key=None, asset_selection=pool_keys, partition_key=pool_size,
                             stale_assets_only=True)
        for key in grid.grid_def.get_partition_keys():
            pool_size, budget = key.keys_by_dimension["pool_size"], key.keys_by_dimension["budget"]
            if int(budget) < int(pool_size):
                yield RunRequest(run_key=None, asset_selection=cell_keys, partition_key=key,
                                 stale_assets_only=True)

    return _sensor


def executor_from_env(storage_root: str):
    """SELECTION_ASSETS_EXECUTOR: `k8s`, every step in its own pod (dagster-k8s); `multiprocess`,
    every step in its own process; unset, all steps of a run in the run's process, which suits one
    machine: a step's model and library imports are loaded once per run, and GPU steps queue on
    the `gpu` pool anyway. Each is wrapped by `runs.owner_tagging` (over `storage_root`, but for k8s)."""
    choice = os.environ.get(EXECUTOR_ENV, "")
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        # no storage flock: a shared volume may not honour it, and the cluster has no command line beside it
        return owner_tagging(k8s_job_executor, None)
    if choice == "multiprocess":
        return owner_tagging(multiprocess_executor, storage_root)
    if choice:
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}: 'k8s', 'multiprocess', or unset")
    return owner_tagging(in_process_executor, storage_root)


@sensor(name="reap_dead_runs", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed the runs whose process died without ending them (SIGKILL, the OOM killer) "
                    "and frees their gpu slots, so that queued runs do not wait for those slots forever.")
def reap_dead_runs_sensor(context: SensorEvaluationContext):
    """What the command line does before it starts runs, for runs launched from the UI or a backfill."""
    reaped = reap_dead_runs(context.instance)
    return SkipReason(f"marked failed {len(reaped)} runs whose process had died: {', '.join(reaped)}"
                      if reaped else "no run has lost its process")




def stale_plan(defs, grid: Grid, instance) -> list[tuple[str, list, str | None]]:
    """The runs that rematerialise exactly what is stale and everything downstream of it, in
    lineage order: (label, asset keys, partition key or None).

    Stale is Dagster's own status (a changed code version, or upstream data newer than what the
    asset consumed); downstream follows the lineage's partition mappings (ring -> larger pools,
    pool size -> its cells, any partition -> the unpartitioned reports). Partitions never
    materialised are left alone: this reruns, it does not fill gaps.
    """
    from dagster import MultiPartitionKey, StaticPartitionMapping
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    cells = [MultiPartitionKey({"pool_size": p, "budget": b}) for p, b in grid.valid_cells()]

    def partitions_of(key) -> list:
        partitions = graph.get(key).partitions_def
        if partitions is None:
            return [None]
        if partitions == grid.rings_def:
            return grid.rings()
        return list(grid.pools_def.get_partition_keys()) if partitions == grid.pools_def else cells

    def pool_of(partition) -> str | None:
        return partition.keys_by_dimension["pool_size"] if isinstance(partition, MultiPartitionKey) else partition

    def feeds(parent, parent_partition, child, child_partition) -> bool:
        """Whether `parent_partition` of `parent` is upstream of `child_partition` of `child`."""
        if parent_partition is None or child_partition is None:
            return True
        mapping = graph.get_partition_mapping(child, parent)
        if isinstance(mapping, StaticPartitionMapping):
            return pool_of(child_partition) in mapping.downstream_partition_keys_by_upstream_partition_key.get(
                parent_partition, [])
        if isinstance(parent_partition, MultiPartitionKey):
            return parent_partition == child_partition
        return parent_partition == pool_of(child_partition)

    rerun: set = set()
    for key in graph.toposorted_asset_keys:
        if not graph.get(key).is_materializable:
            continue
        parents = graph.get(key).parent_keys
        for partition in partitions_of(key):
            status = resolver.get_status(key, partition)
            if status == StaleStatus.MISSING:
                continue
            upstream_rerun = any(feeds(parent, pp, key, partition)
                                 for parent, pp in rerun if parent in parents)
            if status == StaleStatus.STALE or upstream_rerun:
                rerun.add((key, partition))

    ordered = [k for k in graph.toposorted_asset_keys if any(k == r[0] for r in rerun)]
    has_partitioned_ancestor = {k: any(graph.get(a).partitions_def is not None
                                       for a in graph.get_ancestor_asset_keys(k)) for k in ordered}
    plan: list[tuple[str, list, str | None]] = []
    first = [k for k in ordered if (k, None) in rerun and not has_partitioned_ancestor[k]]
    if first:
        plan.append(("unpartitioned", first, None))
    for ring, pool_size in grid.ring_then_pool():
        for label, partition in ((f"ring {ring}", ring), (f"pool {pool_size}", pool_size)):
            chosen = [k for k in ordered if (k, partition) in rerun]
            if chosen:
                plan.append((label, chosen, partition))
    for cell in cells:
        chosen = [k for k in ordered if (k, cell) in rerun]
        if chosen:
            plan.append((f"pool {pool_of(cell)} budget {cell.keys_by_dimension['budget']}", chosen, cell))
    last = [k for k in ordered if (k, None) in rerun and has_partitioned_ancestor[k]]
    if last:
        plan.append(("reports", last, None))
    return plan
