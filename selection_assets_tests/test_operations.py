"""Operating the lineage: a changed method reruns only its own lineage, and only as far as its
output changed; a changed setting makes exactly what it decides stale, for the command line and the
UI alike; the comparison reads exactly the experiment's cells; backfills over pool sizes; the
definitions load with the Kubernetes executor."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions, materialize
from dagster._core.instance.ref import InstanceRef

from selection_assets.core.keys import Cell
from selection_assets.core.store import Layout
from selection_assets import cli, config
from selection_assets.definitions import build_assets, build_definitions, default_resources
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import StorageResource
from selection_assets.world import generate
from selection_assets_tests.conftest import REPO, SMALL_ENV_METHODS, cli as _cli

def _materialization_counts(home: Path) -> dict[str, int]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return {key.to_user_string(): len(instance.fetch_materializations(key, limit=1000).records)
                for key in instance.get_asset_keys()}


def test_changed_method_reruns_only_its_own_lineage(small_env, tmp_path):
    reference, env = small_env
    home = tmp_path / "home"  # a copy of the demo's instance and storage: the shared one stays as it is
    shutil.copytree(reference, home, ignore=shutil.ignore_patterns("logs"))
    before = _materialization_counts(home)
    copy = tmp_path / "code"
    shutil.copytree(REPO / "selection_assets", copy / "selection_assets")
    method = copy / "selection_assets" / "core" / "methods" / "random.py"
    edited = {**env, "PYTHONPATH": str(copy), "DAGSTER_HOME": str(home)}
    # code that runs is a change even when it computes the same numbers (x * 1.0 == x)
    method.write_text(method.read_text().replace("/ 2.0**64", "/ 2.0**64 * 1.0"))
    plan = _cli(["rerun", "--stale", "--dry-run"], edited, tmp_path)
    assert "random/scores (code changed)" in plan and "rds_plus" not in plan
    assert "random/selection (only if what it reads changes)" in plan  # its own code did not change
    assert "random/finetuned (only if what it reads changes)" in plan
    _cli(["rerun", "--stale"], edited, tmp_path)
    after = _materialization_counts(home)
    rerun = {key for key in after if after[key] > before.get(key, 0)}
    # the new code scores what the old did: the scores' digests are unchanged, so the selections,
    # fine-tunes, their reports and the comparison stay (test_stages.py: other bytes rerun them)
    assert rerun == {"random/scores"}
    assert "nothing is stale" in _cli(["rerun", "--stale"], edited, tmp_path)


def _dry_run(monkeypatch, capsys, env: dict) -> dict[str, set[str]]:
    """What `rerun --stale --dry-run` says may rerun under `env`'s settings (run in this process):
    asset -> the reasons it gives, over partitions."""
    for name in [n for n in os.environ if n.startswith("SELECTION_ASSETS_") and n not in env]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("SELECTION_ASSETS_") or name == "DAGSTER_HOME":
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert cli.main(["rerun", "--stale", "--dry-run"]) == 0
    output = capsys.readouterr().out
    stale: dict[str, set[str]] = {}
    for line in output.splitlines():
        if ": " in line and line.startswith("  "):
            for entry in line.split(": ", 1)[1].split(", "):
                key, _, reason = entry.partition(" (")
                stale.setdefault(key, set()).add(reason.rstrip(")"))
    return stale if stale or "nothing is stale" in output else {"(unreadable)": {output}}


def _changed_experiment(env: dict, directory: Path, **tables: dict) -> dict:
    """`env` naming its experiment config with the fields of `tables` changed (a new file in `directory`)."""
    experiment = config.load(env[config.CONFIG_ENV]).changed(**tables)
    path = directory / "changed" / f"{experiment.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(experiment.dumps())
    return {**env, config.CONFIG_ENV: str(path)}


def test_a_changed_recipe_or_eval_tasks_make_exactly_what_they_decide_stale(small_env, tmp_path, monkeypatch, capsys):
    home, env = small_env
    methods = SMALL_ENV_METHODS.split(",")
    # the recipe decides every fine-tune, and so all that reads them; nothing above them
    assert _dry_run(monkeypatch, capsys, _changed_experiment(env, tmp_path, training={"epochs": 2})) == {
        **{f"{m}/finetuned": {"settings changed"} for m in methods},
        **{f"{m}/eval_report": {"new data upstream"} for m in methods}, "comparison_report": {"new data upstream"}}
    # the eval tasks decide the eval_tasks asset; what reads it reruns if its bytes change
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(json.dumps(generate.generate_eval_tasks(5, n_dev=3, n_test=4)))
    pending = "only if what it reads changes"
    assert _dry_run(monkeypatch, capsys, {**env, "SELECTION_ASSETS_EVAL_TASKS": str(tasks_file)}) == {
        "eval_tasks": {"settings changed"},
        **{key: {pending} for key in ("query_embeddings_position_weighted", "eval_report_base", "rds_plus/scores",
                                      "rds_plus/selection", "rds_plus/finetuned", "comparison_report")},
        **{f"{m}/eval_report": {pending} for m in methods}}
    # a setting that cannot change an output (the storage root) makes nothing stale
    moved = tmp_path / "moved"
    shutil.copytree(home / "storage", moved)
    assert _dry_run(monkeypatch, capsys, {**env, "SELECTION_ASSETS_STORAGE": str(moved)}) == {}


def test_the_ui_sees_a_changed_setting_as_a_changed_code_version(small_env, tmp_path, monkeypatch):
    home, env = small_env
    monkeypatch.setenv(config.CONFIG_ENV, _changed_experiment(env, tmp_path, training={"epochs": 2})[config.CONFIG_ENV])
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    # what the UI compares: the code version the definitions give against the one each
    # materialisation recorded (its "code version changed" staleness)
    graph = build_definitions().resolve_asset_graph()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        def recorded(key: AssetKey) -> str:
            return instance.fetch_materializations(key, limit=1).records[0].asset_materialization.tags[
                "dagster/code_version"]

        assert recorded(AssetKey(["random", "finetuned"])) != graph.get(AssetKey(["random", "finetuned"])).code_version
        assert recorded(AssetKey(["random", "selection"])) == graph.get(AssetKey(["random", "selection"])).code_version


def test_the_comparison_reads_exactly_the_experiments_cells(small_env, tmp_path):
    home, _ = small_env
    storage = tmp_path / "storage"
    shutil.copytree(home / "storage", storage, ignore=shutil.ignore_patterns("checkpoints"))
    layout = Layout(storage)
    expected = layout.comparison_json.read_bytes()
    # a report of an earlier grid's cell and one of a method this experiment did not choose
    for method, cell in (("random", Cell(120, 40)), ("ifd", Cell(160, 40))):
        for path in (layout.eval_report(method, cell), layout.eval_items(method, cell)):
            path.parent.mkdir(parents=True, exist_ok=True)
        report = json.loads(layout.eval_report("random", Cell(160, 40)).read_text())
        layout.eval_report(method, cell).write_text(json.dumps({**report, "method": method, "pool_size": cell.pool_size}))
        shutil.copy(layout.eval_items("random", Cell(160, 40)), layout.eval_items(method, cell))
    assets = build_assets(Grid((80, 160), (40,)), methods=SMALL_ENV_METHODS.split(","))
    resources = {**default_resources(), "storage": StorageResource(root=str(storage))}
    materialize(assets, selection=[AssetKey("comparison_report")], resources=resources)
    assert layout.comparison_json.read_bytes() == expected
    # a cell of the experiment not materialised is named, not silently left out
    layout.eval_report("top_ppl", Cell(80, 40)).unlink()
    result = materialize(assets, selection=[AssetKey("comparison_report")], raise_on_error=False, resources=resources)
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "top_ppl/eval_report pool 80 budget 40" in failure


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
    # the stage jobs cover the small demo's methods only (its experiment config's), so the rings get
    # no LESS gradients or encoder embeddings
    env = {**env, "DAGSTER_HOME": str(tmp_path / "home"), "SELECTION_ASSETS_STORAGE": str(tmp_path / "storage")}
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
