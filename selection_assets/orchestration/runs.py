"""Runs whose process died without ending them (SIGKILL, the OOM killer): found, marked failed, and
their concurrency slots freed; and one command at a time per storage root.

A SIGKILLed run cannot record its own end: it stays STARTED in the instance and keeps the slot of
the `gpu` concurrency pool it held, so the next run waits for that slot forever. The process that
orchestrates a run holds the run's lease: an exclusive flock on `run_leases/<run id>` under the
instance's directory, taken by the command line before the run starts and by the executor
(`leasing_executor`) when a run the UI or a daemon launched starts executing. The kernel holds the lock
exactly as long as the process lives, however it dies, in any pid namespace, and (on a shared
volume with locks, such as NFSv4) from any host. A run is dead when its lease exists and nobody
holds it; a re-execution is a new run with its own lease, so the tags it copies from a dead parent
decide nothing. Runs with no lease (launched but not yet executing) are Dagster's run monitoring's
to time out (enabled in dagster.yaml and deploy/). Before starting new runs the command line reaps
dead runs and frees the slots of every run that has ended; under `dagster dev` a sensor does the
same (operations.py).

Two commands on one storage root would redo each other's work and race on the same files, so a
command holds an exclusive lock on the root (`exclusive_storage`) and refuses to start while the
instance has runs in progress from elsewhere (the UI, a daemon's backfill). The lock is an flock:
the kernel drops it when its process dies, however it dies, so a killed command leaves none. Holding
it with no run in progress, a command also deletes the temporary files that killed writes left."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Callable, Iterator

from dagster import DagsterInstance, DagsterRunStatus, Executor, ExecutorDefinition, RunsFilter

from selection_assets.core import store

UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
ORCHESTRATOR_TAG = "selection_assets/orchestrator"  # for people: the process that ran it; decides nothing
LEASES = "run_leases"  # the directory of lease files, under the instance's root directory
_held_leases: dict[str, tuple[IO, Path]] = {}  # run id -> the locked lease file this process holds, its path


def process_name() -> str:
    """This process as people read it: pid and host."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def lease_path(instance: DagsterInstance, run_id: str) -> Path:
    """Where run `run_id`'s lease lives."""
    return Path(instance.root_directory) / LEASES / run_id


def take_lease(instance: DagsterInstance, run_id: str) -> bool:
    """Hold run `run_id`'s lease in this process until `release_lease` or the process ends; False
    where the file system has no locks (the run then goes unleased: never reaped by us). The file
    appears already locked (written aside, locked, renamed), so no reaper finds it free."""
    if run_id in _held_leases:
        return True
    path = lease_path(instance, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{run_id}.{os.getpid()}{store.PARTIAL_FILE_SUFFIX}")
    handle = open(aside, "w", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # ENOLCK, EOPNOTSUPP: a volume without locks
        handle.close()
        aside.unlink(missing_ok=True)
        return False
    handle.write(f"{process_name()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    os.replace(aside, path)
    _held_leases[run_id] = handle, path
    return True


def release_lease(run_id: str) -> None:
    """Give up run `run_id`'s lease (after the run has ended), removing its file."""
    handle, path = _held_leases.pop(run_id, (None, None))
    if handle is not None:
        path.unlink(missing_ok=True)
        handle.close()


@contextmanager
def run_lease(instance: DagsterInstance, run_id: str) -> Iterator[None]:
    """Hold run `run_id`'s lease for the block (the command line wraps each run it starts)."""
    taken_here = run_id not in _held_leases and take_lease(instance, run_id)
    try:
        yield
    finally:
        if taken_here:
            release_lease(run_id)


class _LeasingExecutor(Executor):
    """`inner`, after taking the run's lease for this process (for a run the UI or a daemon
    launched, the first moment its process is known; held until the process ends, past the run's
    end event), holding the storage root shared while it executes (`storage_for_run`)."""

    def __init__(self, inner: Executor, storage_root: Path | None, preflight: Callable[[], None] | None):
        self._inner = inner
        self._storage_root = storage_root
        self._preflight = preflight

    def execute(self, plan_context, execution_plan):
        if self._preflight is not None:
            self._preflight()  # refuses the run, naming setting and fix, before its first step
        take_lease(plan_context.instance, plan_context.run_id)
        plan_context.instance.add_run_tags(plan_context.run_id, {ORCHESTRATOR_TAG: process_name()})
        with nullcontext() if self._storage_root is None else storage_for_run(self._storage_root):
            yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config


def leasing_executor(executor_def: ExecutorDefinition, storage_root: str | Path | None,
                     preflight: Callable[[], None] | None = None) -> ExecutorDefinition:
    """`executor_def`, running `preflight` (which raises to refuse the run) before a run's first
    step, then taking the run's lease for the process that orchestrates it, so that `reap_dead_runs`
    can tell it alive however it was launched, and refused at once while a command holds
    `storage_root` (`storage_for_run`; None: no storage lock)."""
    root = None if storage_root is None else Path(storage_root)
    return ExecutorDefinition(
        name=executor_def.name, config_schema=executor_def.config_schema, description=executor_def.description,
        requirements=executor_def.get_requirements,
        executor_creation_fn=lambda init_context: _LeasingExecutor(executor_def.executor_creation_fn(init_context),
                                                                   root, preflight))


def _dead_holder(instance: DagsterInstance, run_id: str) -> str | None:
    """Who held run `run_id`'s lease, if nobody holds it now and the run is still unfinished (read
    again under the lock: a run that ended and let go of its lease is not dead); else None."""
    path = lease_path(instance, run_id)
    try:
        handle = open(path, "r", encoding="utf-8")
    except FileNotFoundError:
        return None  # never leased, or ended and released
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live process (or no locks here: unknown, so alive)
            return None
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            return handle.read().strip() or "holder unknown"
        return None


def reap_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every unfinished run whose lease nobody holds (its process is gone), then free
    the concurrency slots of every run that has ended. Returns the reaped run ids."""
    reaped = []
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED)):
        holder = _dead_holder(instance, run.run_id)
        if holder is None:
            continue
        instance.report_run_failed(run, f"its process ({holder}) ended without ending the run (killed, e.g. by "
                                        "the OOM killer): it no longer holds the run's lease; marked failed by "
                                        "selection-assets")
        lease_path(instance, run.run_id).unlink(missing_ok=True)
        reaped.append(run.run_id)
    _remove_ended_leases(instance)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reaped


def _remove_ended_leases(instance: DagsterInstance) -> None:
    """Delete the lease files of runs that have ended and whose process let go (a UI run's worker
    holds its lease until it exits)."""
    directory = Path(instance.root_directory) / LEASES
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        run = instance.get_run_by_id(path.name)
        if run is not None and not run.is_finished:
            continue
        try:
            handle = open(path, "r", encoding="utf-8")
        except FileNotFoundError:  # released meanwhile
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            path.unlink(missing_ok=True)


LOCK_FILE = ".selection-assets.lock"


class StorageBusy(RuntimeError):
    """Another command, or runs launched elsewhere, are using the storage root."""


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "holder unknown"


@contextmanager
def storage_for_run(root: Path) -> Iterator[None]:
    """Hold storage root `root` shared while one run executes. Runs launched from the UI or a daemon
    share it with each other (a backfill's partitions may run at once; every write is atomic), while
    a command holding it (`exclusive_storage`) makes such a run fail at once, naming the command:
    the UI and the command line never work on one root together. A run the holding command started
    goes on."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+", encoding="utf-8") as handle:
        if _holder(handle).startswith(f"{process_name()},"):
            yield  # this process is the command that holds the root
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageBusy(f"storage root {root} is in use by a selection-assets command ({_holder(handle)}); "
                              "launch this run when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def exclusive_storage(root: Path, instance: DagsterInstance) -> Iterator[None]:
    """Hold storage root `root` for one command. Raises StorageBusy, naming the holder, if another
    command holds it or if `instance` has unfinished runs (reap dead ones first)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageBusy(f"storage root {root} is in use by another selection-assets command "
                              f"({_holder(handle)}) or by runs launched from the UI; wait for it to finish, or give "
                              "this command another DAGSTER_HOME / SELECTION_ASSETS_STORAGE") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{process_name()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            active = instance.get_runs(filters=RunsFilter(statuses=UNFINISHED))
            if active:
                raise StorageBusy(f"the instance has {len(active)} run(s) in progress "
                                  f"({', '.join(r.run_id[:8] for r in active)}), launched from the UI or another "
                                  "process; wait for them, or cancel them in the UI, before starting this command")
            store.remove_partial_writes(root)  # left by killed writes; nothing else can be writing now
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
