"""The subset-size search in the lineage: each trial is a cell whose budget is a dynamic partition,
the search reads the dev split only, the sensor asks for what the command line runs, and a search
killed during a trial resumes without running a finished trial again."""

import json
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, SensorResult, build_sensor_context

from selection_assets.assets import search
from selection_assets.core import budget_search, store
from selection_assets.core.keys import Cell
from selection_assets.orchestration.operations import SEARCH_REPORT_JOB, SEARCH_TRIALS_JOB
from selection_assets.orchestration.partitions import BUDGET_PARTITIONS, Grid
from selection_assets.resources import SearchResource, StorageResource
from selection_assets_tests.conftest import cli, experiment_env

GRID = Grid((400,), (40,))
METHOD = "token_length"


def dev_loss(size: int) -> float:
    return 2.0 + (np.log(size) - np.log(90)) ** 2 / 10


def fabricated(tmp_path, test_exact_match: float = 0.5, loss_of=dev_loss):
    """A storage root holding the method's scores for pool 400 and, for every size a search with
    these settings tries, an eval report whose dev loss is `loss_of(size)`, its test numbers
    `test_exact_match`; and an instance with those sizes as budget partitions."""
    layout = store.Layout(tmp_path / "storage")
    store.write_parquet(pd.DataFrame({"example_id": [f"e{i}" for i in range(400)], "score": np.arange(400.0)}),
                        layout.scores(METHOD, 400))
    settings = SearchResource(method=METHOD, low=20, max_trials=5)
    instance = DagsterInstance.ephemeral()
    trials = {}
    while (size := budget_search.next_size(settings.settings(400, 400), trials).size) is not None:
        trials[size] = budget_search.Trial(size, loss_of(size))
        report = {"dev_answer_loss_by_seed": {"0": loss_of(size) - 0.01, "1": loss_of(size) + 0.01},
                  "training_seconds": 1.0, "exact_match": test_exact_match, "exact_match_ci": [0, 1],
                  "answer_loss": 9.0, "answer_loss_ci": [8.0, 10.0]}
        store.write_json(report, layout.eval_report(METHOD, Cell(400, size)))
    instance.add_dynamic_partitions(BUDGET_PARTITIONS, [str(size) for size in trials])
    return layout, settings, instance


def state_of(storage) -> search.SearchState:
    layout, settings, instance = storage
    return search.search_state(layout, GRID, settings, instance)


def test_the_search_reads_the_dev_split_only(tmp_path):
    state = state_of(fabricated(tmp_path / "a", test_exact_match=0.1))
    assert state.proposal.size is None and len(state.proposal.path) == 5
    # other test-split numbers: the same search
    assert state_of(fabricated(tmp_path / "b", test_exact_match=0.9)).proposal.path == state.proposal.path
    # other dev losses: another search
    other_dev = fabricated(tmp_path / "c", loss_of=lambda size: 3.0 - dev_loss(size))
    assert state_of(other_dev).proposal.path != state.proposal.path
    # the objective is the dev loss averaged over the report's seeds
    assert all(trial.dev_loss == pytest.approx(dev_loss(size)) for size, trial in state.trials.items())


def test_the_sensor_asks_for_the_next_trial_with_its_partition_then_for_the_report(tmp_path):
    layout, settings, instance = fabricated(tmp_path)
    last = search.search_state(layout, GRID, settings, instance).proposal.path[-1]
    layout.eval_report(METHOD, Cell(400, last)).unlink()  # the last trial has not finished
    sensor = search.budget_search_sensor(GRID, [])
    resources = {"storage": StorageResource(root=str(layout.root)), "search": settings}
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    assert isinstance(result, SensorResult) and not result.dynamic_partitions_requests  # its budget is known
    (request,) = result.run_requests
    assert (request.job_name, request.partition_key) == (SEARCH_TRIALS_JOB, f"{last}|400")
    store.write_json({"dev_answer_loss_by_seed": {"0": dev_loss(last)}, "training_seconds": 1.0},
                     layout.eval_report(METHOD, Cell(400, last)))
    with build_sensor_context(instance=instance, resources=resources) as context:
        (request,) = sensor(context).run_requests
    assert isinstance(request, RunRequest) and request.job_name == SEARCH_REPORT_JOB


def test_a_method_that_chooses_anew_per_budget_cannot_be_searched():
    with pytest.raises(ValueError, match="per_budget"):
        search.check_searchable("kmeans_xia")


def test_a_search_killed_during_a_trial_resumes_without_repeating_a_finished_one(tmp_path):
    home = tmp_path / "home"
    env = experiment_env(home, (160,), (40,))
    # a method that reads only token counts: the search, not the method's inputs, is under test
    command = ["search", "--method", "token_length", "--max-trials", "2", "--low", "10"]
    killed = subprocess.run([sys.executable, "-m", "selection_assets_tests.kill_during", "second_search_trial",
                             *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    layout = store.Layout(home / "storage")
    finished = sorted(layout.eval_report("token_length", Cell(160, 1)).parent.glob("*.json"))
    assert len(finished) == 1, finished  # the first trial, and no more
    first_size, first_written = int(finished[0].stem), finished[0].stat().st_mtime_ns

    resumed = cli(command, env, tmp_path)
    proposed = [int(line.split()[2]) for line in resumed.splitlines() if line.strip().startswith("proposed size")]
    assert first_size not in proposed and len(proposed) == 1
    assert finished[0].stat().st_mtime_ns == first_written
    found = json.loads((layout.budget_search("token_length", 160) / "search.json").read_text())
    assert [trial["size"] for trial in found["trials"]] == [first_size, *proposed]
    # every trial is a cell of the lineage, the method's and random's, under a budget partition
    with DagsterInstance.from_config(str(home)) as instance:
        assert {str(size) for size in [first_size, *proposed]} <= set(instance.get_dynamic_partitions(BUDGET_PARTITIONS))
    out = layout.budget_search("token_length", 160)
    assert (out / "curve.png").stat().st_size > 0
    curve = pd.read_parquet(out / "curve.parquet")
    assert sorted(curve.groupby("size")["method"].apply(sorted).tolist()) == [["random", "token_length"]] * 2
    assert found["chosen_size"] == min(found["trials"], key=lambda t: (t["dev_answer_loss"], t["size"]))["size"]


def test_every_search_setting_is_a_flag_that_reaches_the_resource(tmp_path, monkeypatch):
    from selection_assets import cli as command_line
    from selection_assets.definitions import default_resources

    from selection_assets import config

    home = tmp_path / "home"
    for name, value in experiment_env(home, (200, 400), (40,), search={"seed": 5, "low": 7}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)

    def stop(method):
        raise ValueError("stopped by the test")
    monkeypatch.setattr(search, "check_searchable", stop)
    wanted = {"method": "token_length", "pool_size": 400, "max_trials": 3, "time_budget_s": 12.5}
    flags = [part for name, value in wanted.items() for part in ("--" + name.replace("_", "-"), str(value))]
    assert command_line.main(["search", *flags, "--dagster-home", str(tmp_path / "home")]) == 2
    # every field has a flag, named after it
    parser = command_line.argparse.ArgumentParser()
    command_line.add_resource_flags(parser, SearchResource)
    assert {action.dest for action in parser._actions} - {"help"} == set(SearchResource.model_fields)
    # flags given override the experiment config, the others keep it, and the resource reads the
    # experiment the search activated
    settings = default_resources(str(tmp_path / "storage"))["search"]
    assert {name: getattr(settings, name) for name in wanted} == wanted
    assert (settings.seed, settings.low) == (5, 7)
