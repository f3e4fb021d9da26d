"""Operating the lineage: a changed method reruns only its own lineage, and only as far as its
output changed; backfills over pool sizes; the definitions load with the Kubernetes executor."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions
from dagster._core.instance.ref import InstanceRef

from selection_assets.definitions import build_definitions
from selection_assets.partitions import Grid
from selection_assets_tests.conftest import REPO, SMALL_ENV_METHODS, cli as _cli

def _materialization_counts(home: Path) -> dict[str, int]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return {key.to_user_string(): len(instance.fetch_materializations(key, limit=1000).records)
                for key in instance.get_asset_keys()}


def test_changed_method_reruns_only_its_own_lineage(small_env, tmp_path):
    home, env = small_env
    before = _materialization_counts(home)
    copy = tmp_path / "code"
    shutil.copytree(REPO / "selection_assets", copy / "selection_assets")
    method = copy / "selection_assets" / "core" / "methods" / "random.py"
    edited = {**env, "PYTHONPATH": str(copy)}
    # a comment alone is no change (test_code_versions.py); a line of code is
    method.write_text(method.read_text() + "\n# a comment\nCHANGED_BY_THE_TEST = True\n")
    plan = _cli(["rerun", "--stale", "--dry-run"], edited, tmp_path)
    assert "random/scores" in plan and "rds_plus" not in plan
    assert "random/finetuned (only if what it reads changes)" in plan
    _cli(["rerun", "--stale"], edited, tmp_path)
    after = _materialization_counts(home)
    rerun = {key for key in after if after[key] > before.get(key, 0)}
    # the new code selects what the old did: the selections' digests are unchanged, so the
    # fine-tunes, their reports and the comparison stay (test_stages.py: other bytes rerun them)
    assert rerun == {"random/scores", "random/selection"}
    assert "nothing is stale" in _cli(["rerun", "--stale"], edited, tmp_path)


def _backfill(job: str, partitions: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "dagster", "job", "backfill", "-m", "selection_assets.definitions",
                    "-j", job, "--partitions", partitions, "--noprompt"],
                   env=env, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)


def _wait_for_runs(instance, job: str, seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = [r for r in instance.get_runs() if r.job_name == job]
        if len(runs) == 2 and all(r.is_finished for r in runs):
            break
        time.sleep(2)
    return {r.tags["dagster/partition"]: r.status.value for r in instance.get_runs() if r.job_name == job}


def test_backfill_over_two_pool_sizes_materialises_every_partition(small_env, tmp_path):
    home, env = small_env
    # the stage jobs cover the small demo's methods only, so the rings get no LESS gradients or
    # encoder embeddings (SELECTION_ASSETS_METHODS)
    env = {**env, "DAGSTER_HOME": str(tmp_path / "home"), "SELECTION_ASSETS_STORAGE": str(tmp_path / "storage"),
           "SELECTION_ASSETS_METHODS": SMALL_ENV_METHODS}
    (tmp_path / "home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "home" / "dagster.yaml")
    shutil.copytree(home / "storage", tmp_path / "storage", ignore=shutil.ignore_patterns("checkpoints", "reports"))
    # the instance's storage is created here, before the daemon and the backfill open it: processes
    # that create a fresh SQLite storage at once can each stamp its schema version ("more than one head")
    with DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        # the backfills' runs are queued; the daemon launches them, one subprocess per partition
        command = [sys.executable, "-m", "dagster._daemon", "run", "-m", "selection_assets.definitions"]
        daemon = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            # the ring stage (the pool and cell stages backfill the same way; the lineage fixture runs them)
            _backfill("experiment_rings", "0-80,80-160", env)
            assert _wait_for_runs(instance, "experiment_rings", 400) == {"0-80": "SUCCESS", "80-160": "SUCCESS"}
            for key in ("ring_records", "ring_token_counts", "ring_embeddings_position_weighted", "ring_answer_losses"):
                records = instance.fetch_materializations(AssetKey(key), limit=10).records
                assert sorted(r.partition_key for r in records) == ["0-80", "80-160"], key
            assert not instance.fetch_materializations(AssetKey("ring_embeddings_less_features"), limit=1).records
        finally:
            os.killpg(daemon.pid, signal.SIGINT)
            daemon.wait(timeout=60)


def test_definitions_load_with_the_kubernetes_executor():
    from dagster_k8s import k8s_job_executor

    defs = build_definitions(Grid((100, 1000), (10,)), executor=k8s_job_executor)
    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("experiment_pools")
    assert job.executor_def.name == "k8s"
    gpu_step = defs.resolve_assets_def(AssetKey("ring_embeddings_position_weighted")).op
    limits = json.loads(gpu_step.tags["dagster-k8s/config"])["container_config"]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_step_logs_live_beside_the_data_not_among_it(small_env):
    home, _ = small_env
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
    assert runs and all((home / "logs" / run.run_id / "compute_logs").is_dir() for run in runs)
    # the storage root holds the project's folders and files only, no Dagster run-id folders
    assert not [p.name for p in (home / "storage").iterdir() if len(p.name) == 36 and p.name.count("-") == 4]
