"""Runs whose process died without ending them (SIGKILL, the OOM killer): found, marked failed, and
their concurrency slots freed; and one command at a time per storage root.

A SIGKILLed run cannot record its own end: it stays STARTED in the instance and keeps the slot of
the `gpu` concurrency pool it held, so the next run waits for that slot forever. Every run is
tagged with the process id and host that orchestrate it: by the command line when it creates the
run, and by the executor (`owner_tagging`) when execution starts, which covers runs the UI or a
daemon launched. Before starting new runs the command line reaps those tagged runs whose process is
gone, as Dagster's run monitoring does for launchers that can check their workers, and frees the
slots of every run that has ended; under `dagster dev` a sensor does the same (operations.py).

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
from typing import Iterator

from dagster import DagsterInstance, DagsterRunStatus, Executor, ExecutorDefinition, RunsFilter

from selection_assets.core import store

PID_TAG = "selection_assets/pid"
HOST_TAG = "selection_assets/host"
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run (what `reap_dead_runs` checks)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


class _OwnerTaggingExecutor(Executor):
    """`inner`, after tagging the run with the process that orchestrates it (for a run the UI or a
    daemon launched, the first moment that process is known), holding the storage root shared
    while it executes (`storage_for_run`)."""

    def __init__(self, inner: Executor, storage_root: Path | None):
        self._inner = inner
        self._storage_root = storage_root

    def execute(self, plan_context, execution_plan):
        plan_context.instance.add_run_tags(plan_context.run_id, owner_tags())
        with nullcontext() if self._storage_root is None else storage_for_run(self._storage_root):
            yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config


def owner_tagging(executor_def: ExecutorDefinition, storage_root: str | Path | None) -> ExecutorDefinition:
    """`executor_def`, with each run tagged with its orchestrating process (pid and host) as it
    starts executing, so that `reap_dead_runs` finds it however it was launched, and refused at
    once while a command holds `storage_root` (`storage_for_run`; None: no storage lock)."""
    root = None if storage_root is None else Path(storage_root)
    return ExecutorDefinition(
        name=executor_def.name, config_schema=executor_def.config_schema, description=executor_def.description,
        requirements=executor_def.get_requirements,
        executor_creation_fn=lambda init_context: _OwnerTaggingExecutor(executor_def.executor_creation_fn(init_context),
                                                                         root))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def reap_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every unfinished run owned by a process of this host that no longer exists, then
    free the concurrency slots of every run that has ended. Returns the reaped run ids."""
    host = socket.gethostname()
    reaped = []
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED)):
        pid = run.tags.get(PID_TAG)
        if pid is None or run.tags.get(HOST_TAG) != host or _process_alive(int(pid)):
            continue
        instance.report_run_failed(run, f"its process (pid {pid} on {host}) ended without ending the run "
                                        "(killed, e.g. by the OOM killer); marked failed by selection-assets")
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reaped


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
        if _holder(handle).startswith(f"pid {os.getpid()} on {socket.gethostname()},"):
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
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
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
