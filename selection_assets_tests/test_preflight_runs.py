"""The preflight runs before any work: the command line refuses a bad setting naming it and the fix,
with no run started and nothing in the storage root, and every stage job's executor refuses the run
before its first step (runs launched from the UI or a backfill)."""

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, execute_job, instance_for_test, reconstructable

from selection_assets import cli, config
from selection_assets.definitions import build_experiment, default_resources
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import DataResource
from selection_assets_tests.conftest import experiment_env


def test_a_refused_setting_starts_nothing_and_writes_nothing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    for variable, value in {**experiment_env(home, (80, 160), (40,)),
                            "SELECTION_ASSETS_POOL": str(tmp_path / "missing.jsonl")}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert cli.main(["demo"]) == 2
    out = capsys.readouterr().out
    assert "DataResource.pool (SELECTION_ASSETS_POOL): no pool file at" in out and "Fix: check the path" in out
    assert not (home / "storage").exists()
    with DagsterInstance.get() as instance:
        assert instance.get_runs() == []
    assert cli.main(["preflight"]) == 2 and "no pool file" in capsys.readouterr().out


def first_stage_job():
    """The first stage job of an experiment whose pool (PREFLIGHT_TEST_ROOT/missing.jsonl) is absent,
    with the executor the definitions choose (execute_in_process would replace it)."""
    root = Path(os.environ["PREFLIGHT_TEST_ROOT"])
    resources = {**default_resources(str(root / "storage")), "data": DataResource(pool=str(root / "missing.jsonl"))}
    defs, stages = build_experiment(Grid((80, 160), (40,)), resources, methods=["random"])
    return defs.resolve_job_def(stages.plan()[0].job)


def test_every_stage_job_refuses_a_run_before_its_first_step(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_TEST_ROOT", str(tmp_path))
    with instance_for_test() as instance:
        with execute_job(reconstructable(first_stage_job), instance=instance) as result:
            events = instance.all_logs(result.run_id)
    assert not result.success
    assert not [e for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_START]
    failure = next(e for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE)
    assert "DataResource.pool (SELECTION_ASSETS_POOL): no pool file" in failure.message + str(
        failure.dagster_event.event_specific_data)
    assert not [p for p in (tmp_path / "storage").rglob("*") if p.is_file()]
