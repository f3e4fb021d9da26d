"""A run killed with SIGKILL (as the OOM killer does) does not block the pipeline: the next command
marks it failed, frees its concurrency slot, and runs to the end. A second command on the same
storage root while one runs is refused at once, naming the holder."""

import os
import signal
import subprocess
import sys
import time

from dagster import DagsterInstance, DagsterRunStatus

from selection_assets.runs import PID_TAG, reap_dead_runs
from selection_assets_tests.conftest import QUICK_WORLD_JSON, REPO, cli


def _gpu_slot_holders(home) -> set[str]:
    with DagsterInstance.from_config(str(home)) as instance:
        return set(instance.event_log_storage.get_concurrency_run_ids())


def _gpu_slot_holders_once_ready(home) -> set[str]:
    """`_gpu_slot_holders`, or nothing while the other process is still creating the instance's tables."""
    try:
        return _gpu_slot_holders(home)
    except Exception:  # its schema migration is under way; ask again
        return set()


def _stop_while_holding_a_gpu_slot(victim: subprocess.Popen, home) -> None:
    """Freeze `victim` (SIGSTOP) at a moment its run holds a gpu slot. A GPU step can end between
    seeing the slot and the signal, so the slot is checked again once frozen, and the run resumed
    until the next GPU step if it was let go."""
    deadline = time.monotonic() + 300
    while True:
        assert victim.poll() is None and time.monotonic() < deadline, "the run never held a gpu slot"
        if (home / "history").exists() and _gpu_slot_holders_once_ready(home):
            victim.send_signal(signal.SIGSTOP)
            if _gpu_slot_holders(home):
                return
            victim.send_signal(signal.SIGCONT)
        time.sleep(0.2)


def test_a_sigkilled_run_is_failed_its_slot_freed_and_the_rerun_finishes(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "SELECTION_ASSETS_POOL_SIZES": "80",
           "SELECTION_ASSETS_BUDGETS": "40", "SELECTION_ASSETS_WORLD": QUICK_WORLD_JSON, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "selection_assets.cli", "demo", "--methods", "random"]
    victim = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _stop_while_holding_a_gpu_slot(victim, home)
    # a second command on the same storage root is refused at once, naming the holder
    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and f"in use by another selection-assets command (pid {victim.pid}" in second.stdout
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    with DagsterInstance.from_config(str(home)) as instance:
        stuck = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
        assert len(stuck) == 1 and stuck[0].tags[PID_TAG] == str(victim.pid)
    assert _gpu_slot_holders(home) == {stuck[0].run_id}  # what made the rerun wait forever

    # writes the kill cut short leave temporary names behind (planted here, wherever the kill fell)
    storage = home / "storage"
    (storage / "pool" / ".records.parquet.k1ll3d.tmp").parent.mkdir(parents=True, exist_ok=True)
    (storage / "pool" / ".records.parquet.k1ll3d.tmp").write_bytes(b"half a file")
    (storage / "models" / ".base.k1ll3d.partial").mkdir(parents=True)

    # the same command, rerun, reaps the dead run first and goes to the end
    output = cli(["demo", "--methods", "random"], env, tmp_path)
    assert f"run {stuck[0].run_id[:8]} had lost its process" in output and "Done in" in output
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(stuck[0].run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids()
        assert reap_dead_runs(instance) == []
    assert not [p for p in storage.rglob(".*") if p.name.endswith((".tmp", ".partial"))]  # no partial writes left
    assert (storage / ".selection-assets.lock").read_text() == ""  # released, holder cleared
