"""Kill -9 anywhere, rerun, same result.

One storage root is driven through the demo with a SIGKILL (what the OOM killer sends) during
ingestion, embedding, answer losses, score writing (inside the scores database's lock), fine-tuning
and evaluation, each run picking up where the last was killed (each a process of its own, forked
from one that imported the libraries once: `kill_during.Forks`). Then the same command runs to the
end, and its files must equal the uninterrupted demo's (`small_env`) byte for byte; embedding shards
finished before a kill are not written again; no run stays STARTED, no slot stays held, no lock or
temporary file is left. While one run lives (frozen at fine-tuning), a second command on the same
storage root is refused at once, naming the holder."""

import json
import os
import signal
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from selection_assets.core import store
from selection_assets.orchestration.runs import LEASES, reap_dead_runs
from selection_assets_tests.conftest import SMALL_ENV_METHODS
from selection_assets_tests.kill_during import Forks

# in the order the demo reaches them, so each run gets past the previous point and dies at its own
POINTS = ["ingestion", "embedding", "answer_losses", "score_writing", "fine_tuning", "evaluation"]
# what both storage roots hold; the scores database is a set of views over the score files
COMPARED = ["source", "models", "pool", "embeddings", "scores", "selections", "checkpoints", "reports"]


def _outputs(storage: Path) -> dict[str, Path]:
    return {str(p.relative_to(storage)): p for part in COMPARED for p in sorted((storage / part).rglob("*"))
            if p.is_file()}


def _frozen(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state not in ("Z", "X"), f"the run {pid} ended before it froze"
    return state == "T"


def _unfinished_runs(home: Path) -> list:
    with DagsterInstance.from_config(str(home)) as instance:
        return [r for r in instance.get_runs() if r.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING)]


def _slot_holders(home: Path) -> set[str]:
    with DagsterInstance.from_config(str(home)) as instance:
        return set(instance.event_log_storage.get_concurrency_run_ids())


def test_killed_anywhere_the_rerun_finishes_with_the_uninterrupted_bytes(small_env, tmp_path):
    reference_home, reference_env = small_env
    home = tmp_path / "home"
    env = {**reference_env, "DAGSTER_HOME": str(home)}
    command = ["demo", "--methods", SMALL_ENV_METHODS]
    storage = home / "storage"
    finished_shards: dict[str, tuple[int, int]] = {}
    forks = Forks(env, tmp_path)  # each run a fresh process, forked from one that has imported the libraries
    for number, point in enumerate(POINTS):
        log = tmp_path / f"{point}.log"
        victim = forks.run(point, command, log)
        if point == "fine_tuning":  # alive, holding the storage lock and a gpu slot
            deadline = time.monotonic() + 300
            while not _frozen(victim):
                assert time.monotonic() < deadline, "the fine-tuning run never reached its third step"
                time.sleep(0.2)
            second = forks.run(None, command, tmp_path / "second.log")
            assert forks.wait(second) == 2, (tmp_path / "second.log").read_text()[-3000:]
            assert f"in use by another selection-assets command (pid {victim}" in (tmp_path / "second.log").read_text()
            [live] = _unfinished_runs(home)
            assert _slot_holders(home) == {live.run_id}  # what once made every rerun wait forever
            os.kill(victim, signal.SIGKILL)
        returncode = forks.wait(victim)
        output = log.read_text()
        assert returncode == -signal.SIGKILL, f"not killed at {point} (exit {returncode}):\n{output[-3000:]}"
        if number:
            assert "had lost its process" in output, f"the run killed before {point} was not reaped"
        [dead] = _unfinished_runs(home)
        assert (home / LEASES / dead.run_id).read_text().startswith(f"pid {victim} on ")
        for shard in storage.glob("embeddings/*/pool/*/shard-*.npy"):
            finished_shards.setdefault(str(shard), (shard.stat().st_ino, shard.stat().st_mtime_ns))

    final = forks.run(None, command, tmp_path / "final.log")
    assert forks.wait(final) == 0, (tmp_path / "final.log").read_text()[-3000:]
    forks.close()
    output = (tmp_path / "final.log").read_text()
    assert "had lost its process" in output and "Done in" in output
    assert not _unfinished_runs(home) and not _slot_holders(home)
    with DagsterInstance.from_config(str(home)) as instance:
        assert reap_dead_runs(instance) == []
    assert not [p for p in storage.rglob(".*") if p.name.endswith((".tmp", ".partial"))]
    assert (storage / ".selection-assets.lock").read_text() == ""  # released, holder cleared

    assert finished_shards, "no embedding shard was finished before a kill"
    for name, identity in finished_shards.items():
        assert (Path(name).stat().st_ino, Path(name).stat().st_mtime_ns) == identity, f"{name} was recomputed"

    mine, reference = _outputs(storage), _outputs(reference_home / "storage")
    assert set(mine) == set(reference)
    differing = [name for name, path in mine.items()
                 if (store.without_durations(json.loads(path.read_text())) != store.without_durations(
                     json.loads(reference[name].read_text())) if name.endswith(".json")
                     else path.read_bytes() != reference[name].read_bytes())]
    assert not differing, differing
