"""One experiment config: a TOML file (or a shipped one by name) gives the grid, the methods and the
resources' settings to the command line and the definitions alike; a wrong one is refused naming
the file, the field and what it allows."""

import pytest

from selection_assets import config
from selection_assets.definitions import DATA_ENV, build_definitions, default_resources, experiment_grid
from selection_assets.orchestration.operations import POOLS_JOB
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import TrainResource

MINE = """
methods = ["random", "token_length"]

[grid]
pool_sizes = [60, 120]
budgets = [20]

[data]
max_length = 96

[training]
epochs = 1.0
seeds = [0, 1, 2]

[search]
max_trials = 4
"""


def write(tmp_path, text: str, name: str = "mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_config_file_sets_the_grid_methods_and_settings_and_leaves_the_rest_to_resource_defaults(
        tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_ENV, str(write(tmp_path, MINE)))
    resources = default_resources(storage_root=str(tmp_path / "storage"))
    assert experiment_grid() == Grid((60, 120), (20,))
    assert config.active().named_methods(resources["data"]) == ["random", "token_length"]
    assert resources["data"].max_length == 96 and resources["search"].max_trials == 4
    assert (resources["training"].epochs, resources["training"].seeds) == (1.0, [0, 1, 2])
    # a field the file leaves out has its resource's one default
    assert resources["training"].learning_rate == TrainResource.model_fields["learning_rate"].default
    # the environment injects only where data and models are: the experiment's settings are the file's
    monkeypatch.setenv("SELECTION_ASSETS_SEEDS", "5")  # (no longer a setting's variable: ignored)
    monkeypatch.setenv("SELECTION_ASSETS_POOL", "/data/pool.jsonl")
    injected = default_resources(storage_root="unused")
    assert injected["training"].seeds == [0, 1, 2] and injected["data"].pool == "/data/pool.jsonl"
    # the definitions `dagster dev` loads read the same file
    defs = build_definitions()
    assert defs.resources["data"].max_length == 96 and defs.resources["training"].seeds == [0, 1, 2]
    assert defs.resolve_job_def(POOLS_JOB).partitions_def.get_partition_keys() == ["60", "120"]


def test_the_environment_names_only_locations_a_deployment_injects_and_the_config():
    """Every SELECTION_ASSETS_* variable the package reads is a path, a model or data location,
    the pickled-weights policy, the storage root, the executor, or which config: found by reading
    the package's source for the names, against the list the definitions inject."""
    import re

    from selection_assets.resources import DataResource

    package = config.SHIPPED_DIR.parent
    read = {name for path in package.rglob("*.py") for name in re.findall(r'"(SELECTION_ASSETS_[A-Z_]+)"', path.read_text())}
    assert read == {*DATA_ENV.values(), config.CONFIG_ENV, config.PROFILE_ENV, "SELECTION_ASSETS_STORAGE",
                    "SELECTION_ASSETS_EXECUTOR"}
    # each injected field is a location or the trust policy, never an experiment's choice
    assert set(DATA_ENV) == {name for name in DataResource.model_fields
                             if name.endswith(("pool", "tasks", "model", "scorers", "include", "weights"))} - {"harness_tasks"}


def test_an_experiment_written_out_reads_back_as_itself(tmp_path):
    experiment = config.load(write(tmp_path, MINE)).changed(methods="all", training={"learning_rate": 2e-5},
                                                            world={"n_test": 50})
    again = config.load(write(tmp_path, experiment.dumps(), "mine.toml"))
    assert again == experiment and again.settings("training") == {"epochs": 1.0, "seeds": [0, 1, 2], "learning_rate": 2e-5}
    with pytest.raises(config.ConfigError, match=r"\[training\] unknown field 'epoch'"):
        experiment.changed(training={"epoch": 3})


def test_the_shipped_configs_are_the_files_beside_the_loader_and_world_is_the_default(monkeypatch):
    assert config.shipped_names() == sorted(p.stem for p in config.SHIPPED_DIR.glob("*.toml"))
    assert {"world", "smol"} <= set(config.shipped_names())
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.active().name == "world" and experiment_grid() == Grid((1000, 4000), (100, 400))
    smol = config.shipped("smol")
    assert smol.settings("data")["base_model"] == "packaged:smollm2" and smol.methods == "random,rds_plus"


GRID = "[grid]\npool_sizes = [100]\nbudgets = [10]\n"


@pytest.mark.parametrize("text, named", [
    (GRID + "budget = 3\n", r"\[grid\] unknown field 'budget'; allowed: pool_sizes, budgets"),
    ("methods = 'spine'\n", r"\[grid\] is required"),
    ("[grid]\npool_sizes = [200, 100]\nbudgets = [10]\n", r"\[grid\] pool_sizes must be ascending"),
    ("[grid]\npool_sizes = [100]\nbudgets = ['ten']\n", r"\[grid\] budgets must be a non-empty list of positive"),
    (GRID + "[trainig]\nepochs = 1\n", r"unknown key 'trainig'; allowed: methods, grid, data"),
    (GRID + "[training]\nepoch = 1\n", r"\[training\] unknown field 'epoch'; allowed: epochs, "),
    (GRID + "[training]\nepochs = 'many'\n", r"\[training\] epochs: .*number.*'many'"),
    ("methods = 3\n" + GRID, r"methods must be 'spine', 'all', or method names"),
    ("[grid\npool_sizes = [100]\n", r"not valid TOML"),
])
def test_a_wrong_config_is_refused_naming_the_file_the_field_and_what_it_allows(tmp_path, monkeypatch, text, named):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError, match=f"^{path}: {named}"):
        config.load(path)
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    with pytest.raises(config.ConfigError, match=named):
        default_resources(storage_root="unused")


def test_an_unknown_method_is_refused_naming_the_file_and_the_known_methods(tmp_path, monkeypatch):
    path = write(tmp_path, "methods = 'random,rds_plsu'\n" + GRID)
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    with pytest.raises(config.ConfigError, match=rf"^{path}: methods: unknown methods \['rds_plsu'\]; known: random, "):
        config.active().named_methods(default_resources(storage_root="unused")["data"])


def test_a_file_and_a_shipped_name_together_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_ENV, str(write(tmp_path, MINE)))
    monkeypatch.setenv(config.PROFILE_ENV, "smol")
    with pytest.raises(config.ConfigError, match="both set"):
        config.active()
    monkeypatch.delenv(config.PROFILE_ENV)
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(config.ConfigError, match="absent.toml: cannot read the experiment config"):
        config.active()


def test_the_demo_refuses_a_wrong_config_before_any_work(tmp_path, monkeypatch, capsys):
    from selection_assets import cli

    for variable in ("DAGSTER_HOME", config.CONFIG_ENV, config.PROFILE_ENV):
        monkeypatch.setenv(variable, "")  # restored after the test: the command writes them
    path = write(tmp_path, "[grid]\npool_sizes = [100]\nbudgets = [10]\n[compute]\ndevise = 'cpu'\n")
    home = tmp_path / "home"
    assert cli.main(["demo", "--config", str(path), "--dagster-home", str(home)]) == 2
    assert f"refused before any work: {path}: [compute] unknown field 'devise'" in capsys.readouterr().out
    assert not (home / "storage").exists()
