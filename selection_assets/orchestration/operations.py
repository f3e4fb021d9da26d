"""Operating the lineage: its stage jobs and the one order they run in, what is stale and the plan
that reruns it (for the command line and a sensor alike), and the executor choice
(in-process/multiprocess locally, Kubernetes pods with dagster-k8s).

Everything here reads the instance and the definitions through Dagster's public APIs: staleness is
a materialisation's recorded code version against the asset's current one, or a parent partition
materialised after it with other data. Assets tagged `data_version: content` record a digest of the
files they wrote as their data version, so a rerun of theirs that writes the same bytes (a refactor,
a new code version of a step whose output did not move) leaves their children fresh; every other
asset's new materialisation counts as new data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from dagster import (AddDynamicPartitionsRequest, AssetKey, AssetRecordsFilter, AssetSelection, DagsterRunStatus,
                     DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, SkipReason,
                     define_asset_job, in_process_executor, multiprocess_executor, sensor)

from selection_assets.orchestration.labels import CONTENT_VERSIONED_TAGS, METHOD_TAG, SEARCH_TAGS
from selection_assets.core.report import BASELINE
from selection_assets.orchestration.partitions import BUDGET_PARTITIONS, Grid, cell_key, cell_of, missing_budgets
from selection_assets.orchestration.runs import leasing_executor, reap_dead_runs

EXECUTOR_ENV = "SELECTION_ASSETS_EXECUTOR"
CODE_VERSION_TAG = "dagster/code_version"  # the code version Dagster records on each materialisation
DATA_VERSION_TAG = "dagster/data_version"  # and its data version, with whether the asset gave it
DATA_VERSION_GIVEN_TAG = "dagster/data_version_is_user_provided"
STALE_RERUN_TAG = "selection_assets/stale_rerun"
# the stage jobs of an experiment, in the order they run; the demo is this experiment on the world
INPUTS_JOB, RINGS_JOB, POOLS_JOB, CELLS_JOB, REPORTS_JOB = (
    "experiment_inputs", "experiment_rings", "experiment_pools", "experiment_cells", "experiment_reports")
JOB_DESCRIPTIONS = {
    INPUTS_JOB: "Unpartitioned inputs: the source pool, eval tasks, tokenizer, base model and query embeddings.",
    RINGS_JOB: "Per ring of source positions: validate, tokenize, embed and score each example once (rings "
               "are independent, so their runs may go in parallel).",
    POOLS_JOB: "Per pool size: the pool view and every method's scores (they read every ring up to the size).",
    CELLS_JOB: "Per (pool size, budget) cell: select, fine-tune and evaluate every method.",
    REPORTS_JOB: "The comparison of every method over the grid (and InstructMining's fitted rule).",
}
# the subset-size search (assets/search.py): a trial is the searched method's and random's cell
# assets at one size; the search's report is its own asset, outside the stages
SEARCH_TRIALS_JOB, SEARCH_REPORT_JOB = "budget_search_trials", "budget_search_report"
SEARCH_RUN_TAG = "selection_assets/budget_search"


@dataclass(frozen=True)
class Step:
    """One run of a stage job: over `partition` (a partition key; None: unpartitioned), for `keys`
    (None: the whole job)."""

    job: str
    partition: str | None
    keys: tuple[AssetKey, ...] | None = None

    @property
    def label(self) -> str:
        if self.job == CELLS_JOB:
            return str(cell_of(self.partition))
        if self.job == SEARCH_TRIALS_JOB:
            return f"search trial {cell_of(self.partition)}"
        where = {RINGS_JOB: "ring", POOLS_JOB: "pool"}.get(self.job)
        return f"{where} {self.partition}" if where else self.job.removeprefix("experiment_")


class Stages:
    """The experiment's asset graph (`Definitions.resolve_asset_graph()`) cut into stage jobs, minus the
    assets of the methods in `leave_out` and of the rings and inputs only they need (LESS
    gradients, an embedding space).

    Parents, partitions, code versions and which partitions of a parent a child reads all come from
    the asset graph and its partition mappings; a step's stage is its partitioning (per ring, pool
    size or cell; unpartitioned inputs before, reports after). This is the one source of the order
    things run in: inputs, then per pool size the rings it adds and then the pool, then every valid
    cell, then the reports."""

    def __init__(self, grid: Grid, graph, leave_out: frozenset[str] = frozenset()):
        self.grid = grid
        self.graph = graph  # Definitions.resolve_asset_graph()
        keys = [key for key in self.graph.toposorted_asset_keys if self.graph.get(key).is_materializable]
        # the subset-size search's report runs when its search has, not in the stages
        self.search_key = next((key for key in keys if SEARCH_TAGS.items() <= self.graph.get(key).tags.items()), None)
        keys = [key for key in keys if key != self.search_key]
        self.parents = {key: set(self.graph.get(key).parent_keys) for key in keys}
        self.code_versions = {key: self.graph.get(key).code_version for key in keys}
        # data version = digest of the files written
        self.content_versioned = {key for key in keys
                                  if CONTENT_VERSIONED_TAGS.items() <= self.graph.get(key).tags.items()}
        self.job_of: dict[AssetKey, str] = {}
        for key in keys:  # parents first
            self.job_of[key] = self._job_for(self.graph.get(key).partitions_def, self.parents[key])
        dropped = {key for key in keys if self.graph.get(key).tags.get(METHOD_TAG) in leave_out}
        later = [k for k in keys if self.job_of[k] not in (INPUTS_JOB, RINGS_JOB) and k not in dropped]
        needed = set(later)
        frontier = list(later)
        while frontier:
            for parent in self.parents[frontier.pop()]:
                if parent not in needed and parent not in dropped:
                    needed.add(parent)
                    frontier.append(parent)
        self.keys = [k for k in keys if k in needed]  # parents first
        # the partitions of each stage but the cells' (`tracks` asks once per materialisation record)
        self.grid_partitions = {job: {None if p is None else str(p) for p in self.partitions(job)}
                                for job in (*JOB_DESCRIPTIONS, SEARCH_REPORT_JOB) if job != CELLS_JOB}
        # what staleness follows: the stages' assets, and the search's report when its method runs
        self.tracked = list(self.keys)
        if self.search_key is not None and self.graph.get(self.search_key).tags.get(METHOD_TAG) not in leave_out:
            self.parents[self.search_key] = set(self.graph.get(self.search_key).parent_keys)
            self.code_versions[self.search_key] = self.graph.get(self.search_key).code_version
            self.job_of[self.search_key] = SEARCH_REPORT_JOB
            self.tracked.append(self.search_key)

    def _job_for(self, partitions_def, parents: set[AssetKey]) -> str:
        by_partitioning = {self.grid.rings_def: RINGS_JOB, self.grid.pools_def: POOLS_JOB,
                           self.grid.grid_def: CELLS_JOB}
        if partitions_def is not None:
            if partitions_def not in by_partitioning:
                raise ValueError(f"an asset is partitioned by {partitions_def}, which is no stage of the grid")
            return by_partitioning[partitions_def]
        return REPORTS_JOB if any(self.job_of[p] != INPUTS_JOB for p in parents) else INPUTS_JOB

    def jobs(self) -> list:
        """The stage jobs, for the UI's Jobs page and job backfills (`dagster job backfill`)."""
        partitions = {RINGS_JOB: self.grid.rings_def, POOLS_JOB: self.grid.pools_def, CELLS_JOB: self.grid.grid_def}
        jobs = [define_asset_job(job, AssetSelection.assets(*(k for k in self.keys if self.job_of[k] == job)),
                                 partitions_def=partitions.get(job), description=description)
                for job, description in JOB_DESCRIPTIONS.items()]
        if self.search_key is not None:
            method = self.graph.get(self.search_key).tags[METHOD_TAG]
            trial = [k for k, job in self.job_of.items()
                     if job == CELLS_JOB and self.graph.get(k).tags.get(METHOD_TAG) in (method, BASELINE)]
            jobs += [define_asset_job(SEARCH_TRIALS_JOB, AssetSelection.assets(*trial),
                                      partitions_def=self.grid.grid_def,
                                      description=f"One trial of the subset-size search: {method}'s and random's "
                                                  "selection, checkpoints and eval report at one size."),
                     define_asset_job(SEARCH_REPORT_JOB, AssetSelection.assets(self.search_key),
                                      description="The subset-size search's trials, chosen size and curve.")]
        return jobs

    def partitions(self, job: str) -> list[str | None]:
        """The partitions `job` runs over, in build order ([None]: unpartitioned); the cells stage
        runs the valid cells only."""
        if job == CELLS_JOB:
            return [cell_key(cell) for cell in self.grid.valid_cells()]
        partitions_def = {RINGS_JOB: self.grid.rings_def, POOLS_JOB: self.grid.pools_def}.get(job)
        return [None] if partitions_def is None else list(partitions_def.get_partition_keys())

    def tracks(self, job: str, partition: str | None) -> bool:
        """Whether staleness follows `job`'s `partition`: the grid's, and a cell of any budget below a
        pool of the grid (the search's trials are cells outside the grid's budgets)."""
        if job != CELLS_JOB:
            return partition in self.grid_partitions[job]
        try:
            cell = cell_of(partition)
        except ValueError:
            return False
        return cell.pool_size in self.grid.pool_sizes and cell.budget < cell.pool_size

    def reads(self, parent: AssetKey, child: AssetKey, child_partition: str | None, child_record,
              materialised) -> list[str | None]:
        """The partitions of `parent` that `child_record` (a materialisation of `child`'s
        `child_partition`) read: those of the asset graph's partition mapping; for the search's
        report, the `materialised` partitions of `parent` that are cells of the pool it recorded."""
        if child != self.search_key:
            return self.read_by(parent, child, child_partition)
        pool = child_record.asset_materialization.metadata.get("pool_size")
        return [p for p in materialised if pool is not None and cell_of(p).pool_size == pool.value]

    def read_by(self, parent: AssetKey, child: AssetKey, child_partition: str | None) -> list[str | None]:
        """The partitions of `parent` that `child`'s `child_partition` reads, by the asset graph's
        partition mapping ([None]: `parent` is unpartitioned)."""
        if self.graph.get(parent).partitions_def is None:
            return [None]
        subset = self.graph.get_parent_partition_keys_for_child(child_partition, parent, child).partitions_subset
        return list(subset.get_partition_keys())

    def order(self, trial_cells=()) -> list[tuple[str, str | None]]:
        """(job, partition) in the order they run: inputs, then for each pool size the rings it
        reads that have not run yet and then the pool, every valid cell (and `trial_cells`, cells
        outside the grid's budgets), the reports."""
        pool_keys = [k for k in self.keys if self.job_of[k] == POOLS_JOB]
        rings_and_pools, done = [], set()
        for pool in self.partitions(POOLS_JOB):
            read = {ring for key in pool_keys for parent in self.parents[key] if self.job_of[parent] == RINGS_JOB
                    for ring in self.read_by(parent, key, pool)}
            for ring in self.partitions(RINGS_JOB):
                if ring in read and ring not in done:
                    rings_and_pools.append((RINGS_JOB, ring))
                    done.add(ring)
            rings_and_pools.append((POOLS_JOB, pool))
        cells = [*self.partitions(CELLS_JOB), *trial_cells]
        return [(INPUTS_JOB, None), *rings_and_pools, *((CELLS_JOB, cell) for cell in cells), (REPORTS_JOB, None)]

    def plan(self, targets: set[tuple[AssetKey, str | None]] | None = None) -> list[Step]:
        """The runs that materialise `targets` ((key, partition) pairs; None: everything, each stage
        job whole), in stage order; with targets, the search's trial cells among them after the
        grid's cells, and its report last."""
        if targets is None:
            return [Step(job, partition) for job, partition in self.order()]
        grid_cells = {str(cell) for cell in self.partitions(CELLS_JOB)}
        trial_cells = sorted({partition for key, partition in targets
                              if self.job_of[key] == CELLS_JOB and partition not in grid_cells}, key=cell_of)
        steps = []
        for job, partition in [*self.order(trial_cells), (SEARCH_REPORT_JOB, None)]:
            keys = tuple(k for k in self.tracked if self.job_of[k] == job and (k, partition) in targets)
            if keys:
                steps.append(Step(job, partition, keys))
        return steps


Materialisations = dict[AssetKey, dict]  # key -> partition (None: unpartitioned) -> its latest record


def latest_materializations(stages: Stages, instance) -> Materialisations:
    """The latest materialisation record of each partition staleness follows (`Stages.tracks`), per
    asset it follows."""
    latest: Materialisations = {}
    for key in stages.tracked:
        latest[key] = {}
        cursor = None
        while True:
            page = instance.fetch_materializations(key, limit=1000, cursor=cursor)
            for record in page.records:  # newest first
                if stages.tracks(stages.job_of[key], record.partition_key):
                    latest[key].setdefault(record.partition_key, record)
            if not page.has_more:
                break
            cursor = page.cursor
    return latest


Target = tuple[AssetKey, str | None]  # an asset's partition (None: unpartitioned)


@dataclass(frozen=True)
class Staleness:
    """What a rerun must rematerialise, read from the instance.

    `now`: stale on what is recorded: materialised under another code version, or after it a parent
    partition it reads was materialised with other data, or below a stale pair whose new data will be
    new whatever it holds. `pending`: below a stale content-versioned pair (or a pending one), so
    stale only if that rerun writes other bytes; known once it has run."""

    now: set[Target]
    pending: set[Target]
    why: dict[Target, str] = field(default_factory=dict)  # of each stale-now pair: what changed


def version_change(recorded: str | None, current: str | None) -> str:
    """What differs between a recorded and a current version (`versions.version`: the code's digest,
    then the settings'): "code", "settings", or both."""
    if recorded is None or current is None or recorded.count(".") != 1 or current.count(".") != 1:
        return "code version"
    changed = [part for part, old, new in zip(("code", "settings"), recorded.split("."), current.split("."))
               if old != new]
    return " and ".join(changed)


def _same_content(current, read) -> bool:
    """Whether two materialisations of one partition wrote the same bytes: both recorded a content
    digest as their data version, and the same one."""
    if read is None:
        return False
    tags = (current.asset_materialization.tags, read.asset_materialization.tags)
    return (all(t.get(DATA_VERSION_GIVEN_TAG) == "true" for t in tags)
            and tags[0].get(DATA_VERSION_TAG) == tags[1].get(DATA_VERSION_TAG))


def _brings_new_data(stages: Stages, now: set[Target], read_before, record, parent: AssetKey,
                     parent_partition: str | None, parent_record) -> bool:
    """Whether `parent`'s partition gives the child materialised as `record` other data than it
    read: materialised since with other bytes (or bytes nobody digested), or stale now and not
    content-versioned, so that its rerun will be new data whatever it writes."""
    if parent_record.storage_id > record.storage_id and not (
            parent in stages.content_versioned
            and _same_content(parent_record, read_before(parent, parent_partition, record.storage_id))):
        return True
    return (parent, parent_partition) in now and parent not in stages.content_versioned


def staleness(stages: Stages, latest: Materialisations, read_before) -> Staleness:
    """Each materialised partition's staleness (`Staleness`). `read_before(key, partition,
    storage_id)` gives the latest materialisation of that partition before `storage_id`: the one a
    child materialised at `storage_id` read. Partitions never materialised (or no longer in the grid)
    are left alone: this reruns, it does not fill gaps."""
    now: set[Target] = set()
    pending: set[Target] = set()
    why: dict[Target, str] = {}
    for key in stages.tracked:  # lineage order: a parent's staleness is known before its children's
        for partition, record in latest[key].items():
            recorded = record.asset_materialization.tags.get(CODE_VERSION_TAG)
            if recorded != stages.code_versions[key]:
                now.add((key, partition))
                why[(key, partition)] = f"{version_change(recorded, stages.code_versions[key])} changed"
                continue
            read = [(parent, parent_partition, latest[parent][parent_partition]) for parent in stages.parents[key]
                    for parent_partition in stages.reads(parent, key, partition, record, latest.get(parent, {}))
                    if parent_partition in latest.get(parent, {})]
            if any(_brings_new_data(stages, now, read_before, record, *parent) for parent in read):
                now.add((key, partition))
                why[(key, partition)] = "new data upstream"
            elif any((parent, parent_partition) in now or (parent, parent_partition) in pending
                     for parent, parent_partition, _ in read):
                pending.add((key, partition))
    return Staleness(now, pending, why)


def _reader(instance):
    """`staleness`'s `read_before` over `instance`."""

    def read_before(key: AssetKey, partition: str | None, storage_id: int):
        records = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=key, asset_partitions=None if partition is None else [partition],
            before_storage_id=storage_id), limit=1).records  # newest first
        return records[0] if records else None

    return read_before


def find_staleness(stages: Stages, instance, latest: Materialisations | None = None) -> Staleness:
    """`staleness` of what `instance` holds for `stages` (its `latest_materializations` unless given)."""
    if latest is None:
        latest = latest_materializations(stages, instance)
    return staleness(stages, latest, _reader(instance))


def stale_plan(stages: Stages, found: Staleness) -> list[Step]:
    """Every run a rerun may take, in stage order: what is stale now and what is pending."""
    return stages.plan(found.now | found.pending)


def next_stale_step(stages: Stages, found: Staleness) -> Step | None:
    """The first run of what is stale now (None: nothing is). A rerun takes these one at a time and
    finds staleness again after each, so a child whose parent's rerun wrote the same bytes is never run."""
    plan = stages.plan(found.now)
    return plan[0] if plan else None


def run_in_flight(instance, tag: str) -> str | None:
    """The id of a run tagged `tag` that is queued or running (None: none is), for a sensor that
    asks for one run at a time."""
    runs = instance.get_runs(RunsFilter(tags={tag: "true"}, statuses=[
        DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]),
        limit=1)
    return runs[0].run_id if runs else None


def stale_rerun_sensor(stages: Stages, jobs: list):
    """A sensor (off by default) that reruns what is stale one step at a time, as `next_stale_step`
    finds it: it asks for the first step when no rerun it asked for is in flight, so each step sees
    its parents' new data, and a child whose parent's rerun wrote the same bytes is left alone."""

    @sensor(name="stale_rerun_sensor", minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
            jobs=jobs, description="Reruns stale assets (changed code version or upstream data) and their "
                                   "downstream, stage by stage.")
    def _sensor(context: SensorEvaluationContext):
        in_flight = run_in_flight(context.instance, STALE_RERUN_TAG)
        if in_flight:
            return SkipReason(f"a stale rerun is in flight (run {in_flight[:8]})")
        latest = latest_materializations(stages, context.instance)
        step = next_stale_step(stages, find_staleness(stages, context.instance, latest))
        if step is None:
            return SkipReason("nothing is stale")
        newest = max((record.storage_id for records in latest.values() for record in records.values()), default=0)
        # the same step over the same materialisations is asked for once (a failed step waits for a change)
        return RunRequest(run_key=f"{step.label}@{newest}", job_name=step.job, partition_key=step.partition,
                          asset_selection=list(step.keys), tags={STALE_RERUN_TAG: "true"})

    return _sensor


def executor_from_env(storage_root: str, preflight: Callable[[], None] | None = None):
    """SELECTION_ASSETS_EXECUTOR: `k8s`, every step in its own pod (dagster-k8s); `multiprocess`,
    every step in its own process; unset, all steps of a run in the run's process, which suits one
    machine: a step's model and library imports are loaded once per run, and GPU steps queue on
    the `gpu` pool anyway. Each is wrapped by `runs.leasing_executor` (over `storage_root`, but for k8s),
    which runs `preflight` before a run's first step."""
    choice = os.environ.get(EXECUTOR_ENV, "")
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        # no storage flock: a shared volume may not honour it, and the cluster has no command line beside it
        return leasing_executor(k8s_job_executor, None, preflight)
    if choice == "multiprocess":
        return leasing_executor(multiprocess_executor, storage_root, preflight)
    if choice:
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}: 'k8s', 'multiprocess', or unset")
    return leasing_executor(in_process_executor, storage_root, preflight)


@sensor(name="reap_dead_runs", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed the runs whose process died without ending them (SIGKILL, the OOM killer) "
                    "and frees their gpu slots, so that queued runs do not wait for those slots forever.")
def reap_dead_runs_sensor(context: SensorEvaluationContext):
    """What the command line does before it starts runs, for runs launched from the UI or a backfill."""
    reaped = reap_dead_runs(context.instance)
    return SkipReason(f"marked failed {len(reaped)} runs whose process had died: {', '.join(reaped)}"
                      if reaped else "no run has lost its process")


def register_grid_budgets_sensor(grid: Grid):
    """A sensor (on by default) that adds the grid's budgets to the instance's dynamic budget
    partitions, so that a UI opened on a new instance shows, and can backfill, every cell of the grid
    (the command line registers them itself before its runs)."""

    @sensor(name="register_grid_budgets", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
            description="Adds the grid's budgets (the experiment config's [grid] budgets) to the dynamic "
                        "budget partitions of the cells.")
    def _sensor(context: SensorEvaluationContext):
        missing = missing_budgets(context.instance, grid.budgets)
        if not missing:
            return SkipReason(f"every budget of the grid is a partition ({', '.join(map(str, grid.budgets))})")
        return SensorResult(dynamic_partitions_requests=[AddDynamicPartitionsRequest(BUDGET_PARTITIONS, missing)])

    return _sensor
