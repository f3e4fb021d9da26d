"""Runs launched from the UI: the reaper sensor `dagster dev` runs marks failed a run whose process is
gone (nobody holds its lease) and frees its gpu slot, never a live run: not a re-execution carrying a
dead parent's tags, not one whose process lives in another pid namespace (the command line's own
reaping is proven by test_kill_matrix.py); such runs share the storage root with each other but
never with a command."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from dagster._core.test_utils import create_run_for_test

from selection_assets.orchestration.operations import reap_dead_runs_sensor
from selection_assets.orchestration.runs import (LEASES, ORCHESTRATOR_TAG, StorageBusy, exclusive_storage, reap_dead_runs,
                                   release_lease, storage_for_run, take_lease)


HOLD_A_LEASE = """
import sys, time, types
from selection_assets.orchestration.runs import take_lease
assert take_lease(types.SimpleNamespace(root_directory=sys.argv[1]), sys.argv[2])
print("holding", flush=True)
time.sleep(600)
"""


def _holder(instance, run_id: str, namespace: list[str] = ()) -> subprocess.Popen:
    """A process (in `namespace`, a command prefix) that holds run `run_id`'s lease until killed."""
    holder = subprocess.Popen([*namespace, sys.executable, "-c", HOLD_A_LEASE, instance.root_directory, run_id],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the holder and whatever it forked (an `unshare` child); return once all have exited."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the holder's session outlived SIGKILL"
        time.sleep(0.05)


def _separate_pid_namespace() -> list[str]:
    """`unshare` into a new pid namespace where this machine allows it (root, or user namespaces);
    elsewhere no prefix, and the holder's recorded pid is simply one the reaper must not trust."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True)
    return ["unshare", "--pid", "--fork", "--kill-child"] if probe.returncode == 0 else []


def test_the_sensor_fails_a_run_whose_process_died_and_frees_its_slot():
    with instance_for_test() as instance:  # sqlite storage, which keeps concurrency slots
        dead = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED)
        alive = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED)
        _kill(_holder(instance, dead.run_id))
        assert take_lease(instance, alive.run_id)  # this very process
        storage = instance.event_log_storage
        storage.set_concurrency_slots("gpu", 1)
        storage.claim_concurrency_slot("gpu", dead.run_id, "embed_step")
        result = reap_dead_runs_sensor(build_sensor_context(instance=instance))
        assert dead.run_id in result.skip_message
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
        assert not storage.get_concurrency_run_ids()
        assert "no run has lost its process" in reap_dead_runs_sensor(build_sensor_context(instance=instance)).skip_message
        release_lease(alive.run_id)


def test_a_reexecuted_killed_run_is_never_failed_for_its_parents_death():
    """Dagster copies a parent's tags into its re-execution: nothing the reaper decides comes from tags."""
    with instance_for_test() as instance:
        parent = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED)
        holder = _holder(instance, parent.run_id)
        instance.add_run_tags(parent.run_id, {ORCHESTRATOR_TAG: f"pid {holder.pid} on {socket.gethostname()}"})
        _kill(holder)
        assert reap_dead_runs(instance) == [parent.run_id]
        copied = {**instance.get_run_by_id(parent.run_id).tags, "dagster/parent_run_id": parent.run_id}
        starting = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTING,
                                       tags=copied)  # launched, its executor not yet started: no lease
        running = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED,
                                      tags=copied)
        live = _holder(instance, running.run_id)
        try:
            assert reap_dead_runs(instance) == []
            assert {instance.get_run_by_id(r.run_id).status for r in (starting, running)} == {
                DagsterRunStatus.STARTING, DagsterRunStatus.STARTED}
        finally:
            _kill(live)
        assert reap_dead_runs(instance) == [running.run_id]  # once its own process is gone


def test_a_live_run_in_another_pid_namespace_is_never_failed():
    """Its pid means nothing here (pid 1 or 2 in its namespace, another process or none in ours); its
    lease is held all the same."""
    with instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED)
        holder = _holder(instance, run.run_id, _separate_pid_namespace())
        try:
            assert reap_dead_runs(instance) == []
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
        finally:
            _kill(holder)
        assert reap_dead_runs(instance) == [run.run_id]
        assert not (Path(instance.root_directory) / LEASES / run.run_id).exists()


def test_a_run_that_ended_before_its_lease_was_let_go_is_left_alone():
    with instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.SUCCESS)
        _kill(_holder(instance, run.run_id))  # a UI run's worker keeps its lease until it exits
        assert reap_dead_runs(instance) == []
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        assert not (Path(instance.root_directory) / LEASES / run.run_id).exists()  # its file removed


def test_runs_from_the_ui_share_the_storage_root_but_never_with_a_command(tmp_path):
    with instance_for_test() as instance:
        with storage_for_run(tmp_path), storage_for_run(tmp_path):  # two UI runs at once: shared
            with pytest.raises(StorageBusy, match="runs launched from the UI"):
                with exclusive_storage(tmp_path, instance):
                    pass
        # a command in another process holds the root: a UI run fails at once, naming it
        holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_ROOT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "holding"
            with pytest.raises(StorageBusy, match=f"in use by a selection-assets command \\(pid {holder.pid} on"):
                with storage_for_run(tmp_path):
                    pass
        finally:
            holder.kill()
            holder.wait()
        with exclusive_storage(tmp_path, instance):  # the command's own runs go on under its lock
            with storage_for_run(tmp_path):
                pass


HOLD_THE_ROOT = """
import sys, time
from dagster import DagsterInstance
from selection_assets.orchestration.runs import exclusive_storage
with DagsterInstance.ephemeral() as instance, exclusive_storage(sys.argv[1], instance):
    print("holding", flush=True)
    time.sleep(300)
"""
