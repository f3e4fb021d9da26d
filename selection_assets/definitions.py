"""The one Definitions object of selection_assets: every asset of the lineage, with its resources.

`build_definitions(grid, ...)` builds it for any grid (tests use a tiny one); the module-level
`defs` builds the active experiment config's (`config.active`), which is what `dagster dev` and the
run workers load.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

from dagster import Definitions, MetadataValue, definitions, map_asset_specs

from selection_assets.orchestration import preflight
from selection_assets.orchestration import log_filters, operations
from selection_assets.assets import embeddings, models, pools, reports, scores, search, sources, versions
from selection_assets.assets.method_slices import method_slice
from selection_assets.core.methods import check_methods, registry
from selection_assets.orchestration.partitions import Grid
from selection_assets import config
from selection_assets.resources import SearchResource, StorageResource, default_storage_root

SHARED_STAGES = (sources, models, pools, embeddings, scores)  # what every method reads


# who answers for each stage, shown as owners in the UI
OWNERS_BY_GROUP = {"sources": "team:data-engineering", "pool": "team:data-engineering",
                   "embeddings": "team:data-engineering", "scores": "team:data-engineering",
                   "selections": "team:data-engineering", "models": "team:ml-research",
                   "training": "team:ml-research", "reports": "team:ml-research"}


def build_assets(grid: Grid, resources: dict | None = None, methods: Sequence[str] | None = None) -> list:
    """Every asset of the lineage for `grid`, with its stage's owner: the shared stages, then each
    registered method's slice (method_slices.py); the reports compare `methods` (default: every
    registered one); the subset-size search's report where `resources` has its settings
    ("search"). Each asset's code version is derived from what its compute reaches and the values
    `resources` (default: every field's default) give the settings it reads (`with_derived_version`)."""
    specs = registry()
    methods = list(specs) if methods is None else list(methods)
    assets = [asset for stage in SHARED_STAGES for asset in stage.build(grid)]
    assets += reports.build(grid, methods)
    if "search" in (resources or {}):  # the search's report comes with its settings
        assets += search.build(grid, resources["search"])
    assets += [asset for spec in specs.values() for asset in method_slice(grid, spec).assets]
    by_class = {type(resource): resource for resource in (resources or {}).values()}
    return [with_derived_version(asset, by_class) for asset in map_asset_specs(
        lambda spec: spec.replace_attributes(owners=[OWNERS_BY_GROUP[spec.group_name]]), assets)]


def with_derived_version(assets_def, resources: dict[type, object]):
    """`assets_def` with the code version `versions.version` derives from its compute function and
    `resources` (by class), and the settings it reads, with their values, as its `settings` metadata."""
    found = versions.reach(versions.compute_function(assets_def))
    settings = versions.settings_text(found.settings, resources)
    code_version = versions.version(found, resources)
    return map_asset_specs(lambda spec: spec.replace_attributes(
        code_version=code_version, metadata={**spec.metadata, "settings": MetadataValue.json(settings)}),
        [assets_def])[0]


def experiment_grid(experiment: config.Experiment | None = None) -> Grid:
    """The partition grid of `experiment` (default: the active experiment config, `config.active`)."""
    experiment = experiment or config.active()
    return Grid(experiment.pool_sizes, experiment.budgets)


# the settings a deployment injects by environment variable: where its data and models are, and
# whether it trusts pickled weights. Everything else an experiment sets is in its config file.
DATA_ENV = {"pool": "SELECTION_ASSETS_POOL", "eval_tasks": "SELECTION_ASSETS_EVAL_TASKS",
            "base_model": "SELECTION_ASSETS_BASE_MODEL", "encoder_model": "SELECTION_ASSETS_ENCODER_MODEL",
            "reward_model": "SELECTION_ASSETS_REWARD_MODEL", "deita_scorers": "SELECTION_ASSETS_DEITA_SCORERS",
            "harness_include": "SELECTION_ASSETS_HARNESS_INCLUDE",
            "allow_pickle_weights": "SELECTION_ASSETS_ALLOW_PICKLE_WEIGHTS"}


def default_resources(storage_root: str | None = None, experiment: config.Experiment | None = None) -> dict:
    """The resources of `experiment` (default: the active experiment config, `config.active`), with
    the data and model locations a deployment injects (DATA_ENV: SELECTION_ASSETS_POOL,
    _EVAL_TASKS, _BASE_MODEL, ...) over its [data] table, and the storage root (`storage_root`, else
    SELECTION_ASSETS_STORAGE, else DAGSTER_HOME/storage)."""
    experiment = experiment or config.active()
    injected = {field: os.environ[env] for field, env in DATA_ENV.items() if os.environ.get(env)}
    # one resource per table of the config, under the table's name
    settings = {name: experiment.settings(name) for name in config.TABLES}
    settings["data"] = {**settings["data"], **injected}
    return {"storage": StorageResource(root=storage_root or default_storage_root()),
            **{name: resource(**settings[name]) for name, resource in config.TABLES.items()}}


def build_experiment(grid: Grid | None = None, resources: dict | None = None, executor=None,
                     methods: Sequence[str] | None = None) -> tuple[Definitions, operations.Stages]:
    """The experiment over `grid` with `resources` and `executor` (default: SELECTION_ASSETS_EXECUTOR,
    else Dagster's default): its Definitions and their stages. The asset graph holds every method;
    the comparison reads, and the stage jobs cover, `methods` (checked by `check_methods`). What is
    not given comes from the active experiment config (`config.active`), read once."""
    experiment = config.active() if grid is None or resources is None or methods is None else None
    grid = grid or experiment_grid(experiment)
    # the subset-size search's settings are its own: an experiment given none searches by the defaults
    resources = {"search": SearchResource(), **(resources or default_resources(experiment=experiment))}
    methods = (experiment.named_methods(resources["data"]) if methods is None
               else check_methods(methods, resources["data"]))
    assets = build_assets(grid, resources, methods)
    stages = experiment_stages(grid, assets, resources, methods)
    jobs = stages.jobs()
    defs = Definitions(assets=assets, resources=resources, jobs=jobs,
                       sensors=[operations.stale_rerun_sensor(stages, jobs), operations.reap_dead_runs_sensor,
                                operations.register_grid_budgets_sensor(grid),
                                search.budget_search_sensor(grid, jobs)],
                       executor=executor or operations.executor_from_env(
                           resources["storage"].root, functools.partial(preflight.ensure, resources, grid,
                                                                        checkpoints(grid, resources, methods))))
    return defs, stages


def checkpoints(grid: Grid, resources: dict, methods: Sequence[str]) -> int:
    """How many fine-tuned models the experiment writes: every method's cells, every seed."""
    return len(methods) * len(grid.valid_cells()) * len(resources["training"].seeds)


def experiment_stages(grid: Grid, assets: list, resources: dict, methods: Sequence[str]) -> operations.Stages:
    """The stages of `assets` (built for `methods` over `grid`), read from their asset graph."""
    graph = Definitions(assets=assets, resources=resources).resolve_asset_graph()
    return operations.Stages(grid, graph, leave_out=frozenset(registry()) - set(methods))


def build_definitions(grid: Grid | None = None, resources: dict | None = None, executor=None,
                      methods: Sequence[str] | None = None) -> Definitions:
    """The Definitions of `build_experiment`."""
    return build_experiment(grid, resources, executor, methods)[0]


log_filters.install()  # before any run: harness warnings the pipeline causes on purpose (log_filters.py)


@definitions
def defs() -> Definitions:
    """What `dagster dev` and every run worker load: the active experiment config's experiment. Built
    when Dagster loads it, not when this module is imported: the command line imports the module
    for its helpers and builds its own experiment (the whole build took 5 s of every command)."""
    return build_definitions()
