"""Runs launched from the UI: the reaper sensor `dagster dev` runs marks failed a run whose process is
gone and frees its gpu slot (the command line's own reaping is proven by test_kill_matrix.py), and
such runs share the storage root with each other but never with a command."""

import subprocess
import sys

import pytest
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from dagster._core.test_utils import create_run_for_test

from selection_assets.operations import reap_dead_runs_sensor
from selection_assets.runs import PID_TAG, StorageBusy, exclusive_storage, owner_tags, storage_for_run


def test_the_sensor_fails_a_run_whose_process_died_and_frees_its_slot():
    gone = subprocess.Popen(["true"])
    gone.wait()
    with instance_for_test() as instance:  # sqlite storage, which keeps concurrency slots
        dead = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED,
                                   tags={**owner_tags(), PID_TAG: str(gone.pid)})
        alive = create_run_for_test(instance, job_name="experiment_rings", status=DagsterRunStatus.STARTED,
                                    tags=owner_tags())  # this very process
        storage = instance.event_log_storage
        storage.set_concurrency_slots("gpu", 1)
        storage.claim_concurrency_slot("gpu", dead.run_id, "embed_step")
        result = reap_dead_runs_sensor(build_sensor_context(instance=instance))
        assert dead.run_id in result.skip_message
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
        assert not storage.get_concurrency_run_ids()
        assert "no run has lost its process" in reap_dead_runs_sensor(build_sensor_context(instance=instance)).skip_message


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
from selection_assets.runs import exclusive_storage
with DagsterInstance.ephemeral() as instance, exclusive_storage(sys.argv[1], instance):
    print("holding", flush=True)
    time.sleep(300)
"""
