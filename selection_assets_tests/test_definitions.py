"""The Definitions object loads and validates; the lineage has the expected shape."""

import subprocess
import sys

import pytest
from dagster import AssetKey, Definitions, MultiPartitionsDefinition

from selection_assets.core.methods import choose_methods, registry
from selection_assets.definitions import build_definitions, default_resources, experiment_grid
from selection_assets.resources import DataResource
from selection_assets.core.keys import Cell, Ring
from selection_assets.orchestration.partitions import Grid, cell_key, cell_of, partitioned_by_budget
from selection_assets_tests.conftest import REPO


def test_definitions_validate_from_command_line():
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m",
                             "selection_assets.definitions"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_lineage_shape_partitions_and_gpu_pool():
    defs = build_definitions(Grid((100, 1000), (10, 50)))
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for method in registry():
        assert {f"{method}/scores", f"{method}/selection", f"{method}/finetuned", f"{method}/eval_report"} <= keys
        node = graph.get(AssetKey([method, "selection"]))
        assert isinstance(node.partitions_def, MultiPartitionsDefinition)
        assert {d.name for d in node.partitions_def.partitions_defs} == {"pool_size", "budget"}
    gpu = {k.to_user_string() for k in graph.get_all_asset_keys() if defs.resolve_assets_def(k).op.pool == "gpu"}
    per_method = {f"{m}/{stage}" for m in registry() for stage in ("finetuned", "eval_report")}
    embeddings = {f"{kind}_embeddings_{space}" for kind in ("ring", "query")
                  for space in ("position_weighted", "mean", "last_token", "encoder", "less_features")}
    # scorers, rounds, reward model, pre-experience warm-up
    scoring_runs_models = {"deita/scores", "kcenter_diverseevol/scores", "instructmining/scores", "ifd_pre_experienced/scores"}
    assert gpu == ({"base_model", "less_warmup", "ring_answer_losses", "eval_report_base"} | embeddings
                   | scoring_runs_models | per_method)
    # the steps whose data version is the digest of their bytes (operations.staleness), each byte-for-byte
    # reproducible (test_kill_matrix.py): a rerun of theirs that writes the same bytes reruns nothing below
    content = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).tags.get("data_version") == "content"}
    assert content == ({"source_pool", "eval_tasks", "tokenizer", "base_model", "ring_records", "ring_token_counts",
                        "pool_manifest"} | {f"{m}/{stage}" for m in registry() for stage in ("scores", "selection")})
    assert graph.get(AssetKey(["rds_plus", "selection"])).owners == ["team:data-engineering"]
    assert graph.get(AssetKey(["rds_plus", "finetuned"])).owners == ["team:ml-research"]
    pool_parents = {k.to_user_string() for k in graph.get(AssetKey("pool_manifest")).parent_keys}
    assert pool_parents == {"ring_records", "ring_token_counts"}
    rds_parents = {k.to_user_string() for k in graph.get(AssetKey(["rds_plus", "scores"])).parent_keys}
    # its cost reads the embedding passes from the embeddings' own manifests
    assert rds_parents == {"pool_manifest", "ring_embeddings_position_weighted", "query_embeddings_position_weighted"}
    ifd_parents = {k.to_user_string() for k in graph.get(AssetKey(["ifd", "scores"])).parent_keys}
    assert ifd_parents == {"pool_manifest", "ring_answer_losses", "base_model"}  # its cost: the base model's passes
    # a cell reads its pool's rings through the pool view, and its report its method's costs
    report_parents = {k.to_user_string() for k in graph.get(AssetKey(["ifd", "eval_report"])).parent_keys}
    assert report_parents == {"ifd/finetuned", "ifd/selection", "ifd/scores", "eval_tasks", "eval_report_base",
                              "base_model", "pool_manifest"}


def test_grid_rings_and_invalid_cells():
    with pytest.raises(ValueError, match=r"\[grid\] budgets \[100\] are not below any pool size"):
        Grid((50, 100), (10, 100))
    grid = Grid((1000, 100, 10_000), (500, 5000))
    assert grid.pool_sizes == (100, 1000, 10_000)
    assert grid.rings() == [Ring(0, 100), Ring(100, 1000), Ring(1000, 10_000)]
    assert [r.key for r in grid.rings()] == ["0-100", "100-1000", "1000-10000"] and Ring.parse("100-1000") == Ring(100, 1000)
    assert grid.rings_of(1000) == [Ring(0, 100), Ring(100, 1000)]
    assert grid.valid_cells() == [Cell(1000, 500), Cell(10_000, 500), Cell(10_000, 5000)]
    mapping = grid.ring_to_pool_mapping()
    assert mapping.downstream_partition_keys_by_upstream_partition_key["0-100"] == ["100", "1000", "10000"]
    # a key means the same positions in every grid that has it
    assert Grid((100, 500, 1000), (10,)).rings_of(1000) == [Ring(0, 100), Ring(100, 500), Ring(500, 1000)]
    # partition keys are parsed once, and refused when they name no ring or no valid cell
    assert cell_of("500|1000") == Cell(1000, 500) and str(cell_key(Cell(1000, 500))) == "500|1000"
    with pytest.raises(ValueError, match="budget 1000 is not smaller than pool size 1000"):
        cell_of("1000|1000")
    with pytest.raises(ValueError, match="is not a ring key"):
        Ring.parse("100-50")


def test_a_shipped_config_supplies_settings_and_the_environment_the_data_and_model_locations(monkeypatch):
    from selection_assets.definitions import default_resources

    monkeypatch.delenv("SELECTION_ASSETS_CONFIG", raising=False)
    monkeypatch.setenv("SELECTION_ASSETS_PROFILE", "smol")
    monkeypatch.setenv("SELECTION_ASSETS_POOL", "my_pool.jsonl")
    resources = default_resources(storage_root="unused")
    assert resources["data"].pool == "my_pool.jsonl"  # the environment wins
    assert (resources["data"].base_model, resources["data"].eval_tasks) == ("packaged:smollm2", "packaged:gsm8k")
    assert (resources["training"].epochs, resources["training"].learning_rate) == (2.0, 2e-5)
    assert resources["compute"].eval_batch_size == 30 and resources["world"].n_test == 60
    assert experiment_grid().pool_sizes == (150, 600)
    monkeypatch.setenv("SELECTION_ASSETS_PROFILE", "huge")
    with pytest.raises(ValueError, match="SELECTION_ASSETS_PROFILE='huge' is not a shipped experiment config; "
                                         "known: smol, world"):
        experiment_grid()


def _job_keys(defs, job: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def test_stage_jobs_leave_out_methods_whose_scorer_models_are_not_set(tmp_path, monkeypatch):
    from selection_assets import config

    grid = Grid((100, 1000), (10,))
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    # the experiment's methods: the config's (the world's spine)
    assert _job_keys(build_definitions(grid, default_resources()), "experiment_pools") == {
        "pool_manifest", "random/scores", "random_balanced/scores", "rds_plus/scores"}
    every = tmp_path / "every.toml"
    every.write_text(config.shipped("world").changed(methods="all").dumps())
    monkeypatch.setenv(config.CONFIG_ENV, str(every))
    unset = _job_keys(build_definitions(grid, default_resources()), "experiment_pools")
    assert "rds_plus/scores" in unset and "deita/scores" not in unset
    configured = build_definitions(grid, {**default_resources(), "data": DataResource(deita_scorers="c,q")})
    assert "deita/scores" in _job_keys(configured, "experiment_pools")


def test_stage_jobs_cover_the_chosen_methods_and_only_what_they_need():
    grid = Grid((100, 1000), (10,))
    spine = build_definitions(grid, default_resources(), methods=["random", "rds_plus"])
    assert _job_keys(spine, "experiment_pools") == {"pool_manifest", "random/scores", "rds_plus/scores"}
    assert _job_keys(spine, "experiment_rings") == {"ring_records", "ring_token_counts", "ring_embeddings_position_weighted"}
    assert "less_warmup" not in _job_keys(spine, "experiment_inputs")
    assert _job_keys(spine, "experiment_reports") == {"comparison_report"}
    mining = build_definitions(grid, default_resources(), methods=["instructmining_no_reward"])
    assert _job_keys(mining, "experiment_reports") == {"instructmining_rule", "comparison_report"}
    assert {"ring_embeddings_encoder", "ring_answer_losses"} <= _job_keys(mining, "experiment_rings")


def test_choose_methods_reads_one_syntax_and_names_what_it_cannot_run():
    said = []
    everything = choose_methods("all", DataResource(), echo=said.append)
    assert "deita" not in everything and "deita_length_filter" in everything
    assert any("deita" in line and "deita_scorers" in line for line in said)
    assert choose_methods("spine") == ["random", "random_balanced", "rds_plus"]
    assert choose_methods("rds_plus, random", DataResource()) == ["random", "rds_plus"]  # report order
    with pytest.raises(ValueError, match=r"unknown methods \['rds'\]"):
        choose_methods("rds,random")
    with pytest.raises(ValueError, match="deita needs the setting.*deita_scorers"):
        choose_methods("deita", DataResource())


def test_the_documented_lineage_picture_is_the_rendered_one():
    from selection_assets.cli import lineage_picture
    from selection_assets.reporting.results_section import document_holding

    picture = lineage_picture()
    assert "method_scores --> method_selection" in picture and "ring_records --> pool_manifest" in picture
    assert picture.strip() in document_holding(REPO, "lineage").read_text(), (
        "the lineage picture is stale: run `selection-assets results --section lineage`")


def test_a_demo_record_names_the_cpu_its_instruction_set_and_the_gpu_it_computed_on(monkeypatch):
    import torch

    from selection_assets.cli import cpu_model, machine_description

    on_cpu = machine_description("cpu")
    assert on_cpu.endswith(f"torch {torch.__version__}") and "CPU cores" in on_cpu
    assert cpu_model() in on_cpu and f"torch kernels {torch.backends.cpu.get_cpu_capability()}" in on_cpu
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: asked.append(device) or "NVIDIA H200")
    assert machine_description("cuda:0") == f"one NVIDIA H200 and {on_cpu}" and asked == ["cuda:0"]


def test_the_jobs_whose_runs_need_a_registered_budget_are_those_over_cells():
    defs = build_definitions(Grid((100, 1000), (10,)), default_resources())
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]  # not Dagster's implicit
    by_budget = {job.name for job in jobs if partitioned_by_budget(job.partitions_def)}
    # independently: a job needs its budget registered when it materialises a per-cell asset
    over_cells = {job.name for job in jobs
                  if any(key.path[-1] in ("selection", "finetuned", "eval_report")
                         for key in job.asset_layer.selected_asset_keys)}
    assert by_budget == over_cells == {"experiment_cells", "budget_search_trials"}
