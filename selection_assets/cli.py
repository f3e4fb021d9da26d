"""The `selection-assets` command: `demo` materialises the whole lineage into a Dagster instance.

The demo runs the stages in lineage order, each as Dagster runs recorded in the instance under
DAGSTER_HOME (default ./.dagster_home), so `dagster dev` with the same DAGSTER_HOME shows every
materialisation, its metadata and checks.
"""

from __future__ import annotations

import os

# Every long step logs its own progress lines (done/total, rate, time left); the libraries' bars
# (GGUF conversion, datasets) would interleave with them. tqdm reads this when it is first
# imported, so it is set before anything imports it; TQDM_DISABLE=0 brings them back.
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Sequence

from dagster import BetaWarning, DagsterInstance
from transformers.utils import logging as transformers_logging

from selection_assets.core.methods import SPINE_METHODS, choose_methods, registry
from selection_assets.core import store
from selection_assets.core.report import BASELINE
from selection_assets.orchestration.operations import INPUTS_JOB, POOLS_JOB, RINGS_JOB, SEARCH_TRIALS_JOB
from selection_assets.orchestration.partitions import Grid, cell_of, partitioned_by_budget, register_budgets
from selection_assets import config
from selection_assets.resources import SearchResource
from selection_assets.orchestration import preflight
from selection_assets.core.preflight import PreflightFailed
from selection_assets.orchestration.runs import StorageBusy, exclusive_storage, reap_dead_runs, run_lease

REPO_INSTANCE_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
# Dagster keeps each step's stdout/stderr under $DAGSTER_HOME/storage/<run id>/ by default, among the
# project's data (which lives in that folder too); a home the CLI prepares keeps them in logs/.
COMPUTE_LOGS_YAML = """
# Written by selection-assets: each step's stdout/stderr (shown in the UI) under logs/, not among the
# data in storage/, where Dagster would put them.
compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {logs}
"""


def prepare_dagster_home(default: Path) -> Path:
    """Use $DAGSTER_HOME, else `default`; make sure it exists and holds the project's dagster.yaml
    (with step logs kept in its logs/ folder)."""
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if REPO_INSTANCE_YAML.exists() and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(REPO_INSTANCE_YAML.read_text()
                                           + COMPUTE_LOGS_YAML.format(logs=json.dumps(str(home / "logs"))))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def reap(instance: DagsterInstance, echo=print) -> None:
    """Before new runs: fail the runs a killed process left STARTED and free their slots (runs.py)."""
    for run_id in reap_dead_runs(instance):
        echo(f"  run {run_id[:8]} had lost its process (killed?): marked failed, its slots freed")


def run_step(defs, step, instance: DagsterInstance, log_level: str = "INFO"):
    """Run one step of a plan: its stage job over its partition (only its assets, when it names
    them), in this process, recorded in `instance` like a run launched from the UI."""
    console = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    job = defs.resolve_job_def(step.job)
    if partitioned_by_budget(job.partitions_def):  # a dynamic partition: it must exist before the run
        register_budgets(instance, [cell_of(step.partition).budget])
    run_id = str(uuid.uuid4())
    with run_lease(instance, run_id):  # held from before the run exists until after it has ended
        return job.execute_in_process(
            run_config=console, instance=instance, partition_key=step.partition, raise_on_error=True,
            asset_selection=list(step.keys) if step.keys else None, run_id=run_id)


def run_timed_step(defs, step, instance: DagsterInstance, log_level: str = "INFO", echo=print):
    """`run_step`, and a line saying what ran, in how long."""
    began = time.perf_counter()
    result = run_step(defs, step, instance, log_level)
    echo(f"  {step.label}: {step.job} in {time.perf_counter() - began:.0f}s (run {result.run_id[:8]})")
    return result


def run_lineage(grid: Grid, resources: dict, instance: DagsterInstance, echo=print,
                log_level: str = "INFO", methods: Sequence[str] = SPINE_METHODS) -> list:
    """Run the experiment's stage jobs for `methods` over every valid cell of `grid`, in stage
    order (operations.Stages); the runs' results.

    Every event still goes to the instance (and the UI); `log_level` only filters the console.
    """
    from selection_assets.definitions import build_experiment, checkpoints

    preflight.ensure(resources, grid, checkpoints(grid, resources, methods), echo)
    defs, stages = build_experiment(grid, resources, methods=methods)
    reap(instance, echo)
    results = []
    with exclusive_storage(Path(resources["storage"].root), instance):
        for step in stages.plan():
            results.append(run_timed_step(defs, step, instance, log_level, echo))
    return results


RUN_RECORD = "demo_run.json"  # beside the instance, not in the storage root: timings differ per run


EXPERIMENTS_DIR = "experiment"  # in the instance directory: the config a demo or search runs


def activate(experiment: config.Experiment, home: Path) -> Path:
    """Write `experiment` into the instance directory `home` and name that file in the environment
    (SELECTION_ASSETS_CONFIG), where the definitions, each run worker and a UI opened on the same
    home read it; its path."""
    path = home / EXPERIMENTS_DIR / f"{experiment.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(experiment.dumps())
    os.environ[config.CONFIG_ENV] = str(path)
    os.environ.pop(config.PROFILE_ENV, None)
    return path


def named_experiment(args: argparse.Namespace) -> config.Experiment:
    """The experiment config a command names (--config FILE, --profile NAME), else the active one."""
    if getattr(args, "config", None):
        return config.load(Path(args.config).resolve())
    if getattr(args, "profile", None):
        return config.shipped(args.profile)
    return config.active()


def demo(args: argparse.Namespace) -> int:
    home = prepare_dagster_home(Path(args.dagster_home))
    if args.seeds < 1:
        print("--seeds must be at least 1")
        return 2
    from selection_assets.definitions import default_resources, experiment_grid

    try:
        experiment = named_experiment(args).changed(training={"seeds": list(range(args.seeds))})
        grid, resources = experiment_grid(experiment), default_resources(experiment=experiment)
        if args.methods:
            try:
                methods = choose_methods(args.methods, resources["data"], echo=print)
            except ValueError as err:
                print(f"--methods: {err}")
                return 2
            experiment = experiment.changed(methods=args.methods)
        else:
            methods = experiment.named_methods(resources["data"], echo=print)
    except ValueError as err:
        print(f"refused before any work: {err}")
        return 2
    config_path = activate(experiment, home)
    storage = resources["storage"].root
    print(f"selection_assets demo ({experiment.source.name}): pool sizes {grid.pool_sizes} x budgets {grid.budgets}, "
          f"{len(grid.valid_cells())} valid cells, seeds {resources['training'].seeds}\n"
          f"  DAGSTER_HOME={home}\n  storage={storage}")
    began = time.perf_counter()
    transformers_logging.disable_progress_bar()
    with DagsterInstance.get() as instance:
        try:
            run_lineage(grid, resources, instance, log_level=args.log_level, methods=methods)
        except (StorageBusy, PreflightFailed) as refused:
            print(f"not started: {refused}")
            return 2
    seconds = time.perf_counter() - began
    command = "selection-assets demo" + "".join(
        f" --{flag} {value}" for flag, value, default in (("profile", args.profile, None),
                                                          ("config", args.config, None),
                                                          ("methods", args.methods, None), ("seeds", args.seeds, 1))
        if value != default)
    record = {"command": command, "profile": experiment.name, "methods": methods, "pool_sizes": list(grid.pool_sizes),
              "budgets": list(grid.budgets), "seeds": resources["training"].seeds, "wall_seconds": seconds,
              "machine": machine_description(resources["compute"].resolved_device())}
    (home / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    table = Path(storage) / "reports" / "comparison" / "comparison.md"
    print(f"\nDone in {seconds:.0f}s. Comparison ({table}):\n")
    print(table.read_text())
    # the UI (and `rerun`) must see the same experiment: its settings are in its assets' versions
    print("Open the same runs in the UI:\n"
          f"  {config.CONFIG_ENV}={config_path} DAGSTER_HOME={home} dagster dev    # then http://127.0.0.1:3000")
    return 0


def search(args: argparse.Namespace) -> int:
    """Run the subset-size search (SearchResource: the active experiment config's [search] table with
    these flags over it): the inputs, rings and pool it needs where they have not run, then one trial at a time, each
    proposed from the trials finished before it (a killed search resumes where it stopped), then its
    report (the `budget_search` asset)."""
    home = prepare_dagster_home(Path(args.dagster_home))
    flags = {name: getattr(args, name) for name in SearchResource.model_fields}
    from selection_assets.assets.search import check_searchable, search_state, search_step
    from selection_assets.definitions import build_experiment, default_resources, experiment_grid

    try:
        experiment = config.active().changed(search={k: v for k, v in flags.items() if v is not None})
        activate(experiment, home)  # the definitions (and a UI opened on them) see the same search
        grid, resources = experiment_grid(experiment), default_resources(experiment=experiment)
        settings = resources["search"]
        check_searchable(settings.method)
        pool_size = settings.searched_pool(grid.pool_sizes)
        methods = choose_methods(",".join(dict.fromkeys([BASELINE, settings.method])), resources["data"])
    except ValueError as err:
        print(f"refused before any work: {err}")
        return 2
    trained = 2 * settings.max_trials * len(resources["training"].seeds)  # the method's and random's per trial
    try:
        preflight.ensure(resources, grid, trained, print)
    except PreflightFailed as refused:
        print(f"not started: {refused}")
        return 2
    defs, stages = build_experiment(grid, resources, methods=methods)
    layout = resources["storage"].layout()
    print(f"subset-size search of {settings.method} on pool {pool_size}: at most {settings.max_trials} sizes from "
          f"{settings.low}, seed {settings.seed}\n  DAGSTER_HOME={home}")
    transformers_logging.disable_progress_bar()
    with DagsterInstance.get() as instance:
        reap(instance)
        try:
            with exclusive_storage(Path(resources["storage"].root), instance):
                for step in upstream_steps(stages, grid, pool_size, instance):
                    run_timed_step(defs, step, instance, args.log_level)
                while True:
                    state = search_state(layout, grid, settings, instance)
                    step = search_step(state)
                    if step.job == SEARCH_TRIALS_JOB:
                        print(f"  proposed size {state.proposal.size} ({state.proposal.reason})")
                    else:
                        print(f"  search over: {state.proposal.reason}")
                    run_timed_step(defs, step, instance, args.log_level)
                    if step.job != SEARCH_TRIALS_JOB:
                        break
        except StorageBusy as refused:
            print(f"not started: {refused}")
            return 2
    found = store.read_json(layout.budget_search(state.method, state.pool_size) / "search.json")
    print(f"\nchosen size {found['chosen_size']} (lowest dev answer loss) of {len(found['trials'])} trials:")
    for trial in found["trials"]:
        print(f"  {trial['order']:>3}. size {trial['size']:>6}: dev answer loss {trial['dev_answer_loss']:.4f}"
              + ("  <- chosen" if trial["chosen"] else ""))
    against = found["chosen_against_random"]
    if against:
        print(f"on the test split, {state.method} at {found['chosen_size']} against random at that size:")
        for measure in ("exact_match", "answer_loss"):
            test = against[measure]
            print(f"  {measure}: {test['difference']:+.3f} [{test['ci'][0]:.3f}, {test['ci'][1]:.3f}], "
                  f"Holm p {test['p_holm']:.3g}: {test['verdict']}")
    print(f"trials, curve and report: {layout.budget_search(state.method, state.pool_size)}")
    return 0


def add_resource_flags(parser: argparse.ArgumentParser, resource_class) -> None:
    """One optional flag per field of `resource_class` (`--pool-size` sets `pool_size`), typed and
    described by the field itself; a flag left out keeps the resource's own value (from its
    environment variable, else its default)."""
    for name, field in resource_class.model_fields.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=type(field.default), default=None,
                            help=f"{field.description} (default {field.default!r})".replace("%", "%%"))


def upstream_steps(stages, grid: Grid, pool_size: int, instance: DagsterInstance) -> list:
    """The runs of the inputs, of the rings of `pool_size` and of that pool that have not all of
    their assets materialised yet, in stage order."""
    wanted = {INPUTS_JOB: None, POOLS_JOB: {str(pool_size)}, RINGS_JOB: {ring.key for ring in grid.rings_of(pool_size)}}
    steps = []
    for step in stages.plan():
        if step.job not in wanted or (wanted[step.job] is not None and step.partition not in wanted[step.job]):
            continue
        keys = [key for key in stages.keys if stages.job_of[key] == step.job]
        done = all(instance.get_latest_materialization_event(key) is not None if step.partition is None
                   else step.partition in instance.get_materialized_partitions(key) for key in keys)
        if not done:
            steps.append(step)
    return steps


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (the architecture where it reports none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine_description(device: str) -> str:
    """The machine a demo ran on, as its results line names it: the CPU's model and the instruction
    set torch's kernels use on it (numbers move with both), with the GPU when it computed on one."""
    import torch

    cores = (f"{os.cpu_count()} CPU cores ({cpu_model()}, {platform.machine()}, torch kernels "
             f"{torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}")
    return f"one {torch.cuda.get_device_name(device)} and {cores}" if device.startswith("cuda") else cores


def ship_world(args: argparse.Namespace) -> int:
    """Make the shipped default-world model (`world.models.SHIPPED`) from a finished default-world
    demo at DAGSTER_HOME: its pre-trained base model, with the tokenizer digest and pre-training
    settings it was made with and the machine it was made on. The base_model asset then starts from
    it on every machine whose tokenizer and settings match, so the default world, and so the demo's
    numbers, no longer depend on the CPU that pre-trains."""
    import shutil

    from selection_assets.assets.models import world_pretraining
    from selection_assets.definitions import default_resources
    from selection_assets.world import models as world_models

    home = Path(os.environ.get("DAGSTER_HOME") or args.dagster_home).resolve()
    layout = store.Layout(home / "storage")
    if not layout.base_model_ref.exists():
        print(f"no finished demo at {home}: run `selection-assets demo` there first")
        return 2
    reference = store.read_json(layout.base_model_ref)
    if "pretrain" not in reference or "shipped" in reference:
        print(f"{home}: its base model was not pre-trained there (already shipped, or not the world's)")
        return 2
    resources = default_resources(experiment=config.shipped(config.DEFAULT_PROFILE))
    _, identity = world_pretraining(layout, resources["data"], resources["world"])
    target = world_models.SHIPPED
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(layout.base_model_dir, target / "model")
    record = {"identity": identity, "pretrain": reference["pretrain"], "made_on": machine_description("cpu")}
    (target / world_models.SHIPPED_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"shipped the default world's base model to {target}")
    return 0


def results(args: argparse.Namespace) -> int:
    """Render a results section into its document (README.md or docs/*.md, the one holding its
    markers) from its published results
    (`results/<section>/`, written first from a finished demo with --publish); section `methods` is
    the method table, rendered from the registry and each method's provenance, and `lineage` the
    lineage picture, drawn from the asset graph."""
    from selection_assets.reporting import published

    if args.section == "methods":
        from selection_assets.core.methods.references import method_table

        return _write_section(Path(args.root), "methods", method_table(registry()), "the method registry")
    if args.section == "lineage":
        return _write_section(Path(args.root), "lineage", lineage_picture(), "the asset graph")
    directory = Path(args.root).resolve() / "results" / args.section
    if args.publish:
        home = Path(os.environ.get("DAGSTER_HOME") or args.dagster_home).resolve()
        layout = store.Layout(Path(args.storage or home / "storage"))
        if not layout.comparison_json.exists() or not (home / RUN_RECORD).exists():
            print(f"no finished demo at {home}: run `selection-assets demo` first")
            return 2
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        try:
            published.publish(layout, store.read_json(home / RUN_RECORD), args.title, directory, methods)
        except ValueError as err:
            print(f"--methods: {err}")
            return 2
    if not (directory / "section.json").exists():
        print(f"no published results at {directory}: give --publish with a finished demo")
        return 2
    return _write_section(Path(args.root), args.section, published.render(directory), str(directory))


def lineage_picture() -> str:
    """The lineage picture (docs/lineage.md), from the asset graph over every method."""
    from selection_assets.definitions import build_assets, default_resources, experiment_stages
    from selection_assets.reporting.lineage_picture import lineage_mermaid

    world = config.shipped(config.DEFAULT_PROFILE)
    grid, resources, methods = Grid(world.pool_sizes, world.budgets), default_resources(experiment=world), list(registry())
    return lineage_mermaid(experiment_stages(grid, build_assets(grid, resources, methods), resources, methods),
                           set(methods))


def _write_section(root: Path, section: str, body: str, source: str) -> int:
    """Replace section `section` of the document under `root` that holds it with `body` (a text
    generated from `source`)."""
    from selection_assets.reporting import results_section

    command = f"selection-assets results --section {section}"
    try:
        document = results_section.document_holding(root, section)
        document.write_text(results_section.replace_section(document.read_text(), section, body, command))
    except ValueError as err:
        print(f"{root}: {err}")
        return 2
    print(f"wrote the results:{section} section of {document} from {source}")
    return 0


def rerun(args: argparse.Namespace) -> int:
    """Rematerialise what is stale in the instance: changed code versions and their downstream, one
    step at a time, each asking again what is stale, so that nothing below a rerun that wrote the
    same bytes runs."""
    if not args.stale:
        print("rerun needs --stale (rematerialise assets whose code or upstream data changed)")
        return 2
    home = prepare_dagster_home(Path(args.dagster_home))
    from selection_assets.definitions import build_experiment, checkpoints, default_resources, experiment_grid
    from selection_assets.orchestration.operations import find_staleness, next_stale_step, stale_plan

    experiment = config.active()
    resources = default_resources(experiment=experiment)
    methods = experiment.named_methods(resources["data"])
    defs, stages = build_experiment(experiment_grid(experiment), resources, methods=methods)
    storage = resources["storage"].root
    transformers_logging.disable_progress_bar()
    with DagsterInstance.get() as instance:
        reap(instance)
        found = find_staleness(stages, instance)
        if not found.now:
            print(f"nothing is stale in {home}")
            return 0
        if args.dry_run:
            for step in stale_plan(stages, found):
                names = (f"{key.to_user_string()} ({found.why[(key, step.partition)]})"
                         if (key, step.partition) in found.now
                         else f"{key.to_user_string()} (only if what it reads changes)" for key in step.keys)
                print(f"  {step.label}: {', '.join(names)}")
            return 0
        try:
            preflight.ensure(resources, stages.grid, checkpoints(stages.grid, resources, methods), print)
            with exclusive_storage(Path(storage), instance):
                last = None
                while (step := next_stale_step(stages, found)) is not None:
                    if step == last:
                        print(f"  {step.label} is still stale after it ran; stopping")
                        return 1
                    print(f"  {step.label}: {', '.join(k.to_user_string() for k in step.keys)}")
                    run_step(defs, step, instance, args.log_level)
                    last = step
                    found = find_staleness(stages, instance)
        except (StorageBusy, PreflightFailed) as refused:
            print(f"not started: {refused}")
            return 2
    return 0


def check(args: argparse.Namespace) -> int:
    """Run every preflight check over the settings (the environment, the experiment config) and say what would
    be refused; 0 when nothing is. The same checks run before `demo`, `rerun` and every stage job."""
    prepare_dagster_home(Path(args.dagster_home))
    from selection_assets.definitions import checkpoints, default_resources, experiment_grid

    try:
        experiment = config.active()
        grid, resources = experiment_grid(experiment), default_resources(experiment=experiment)
        methods = experiment.named_methods(resources["data"])
    except ValueError as error:
        print(f"refused before any work:\n  - {error}")
        return 2
    found = preflight.refusals(resources, grid, checkpoints(grid, resources, methods), print)
    print(PreflightFailed(found) if found else "preflight: every check passed")
    return 2 if found else 0


def main(argv: list[str] | None = None) -> int:
    # backfill_policy (single-run backfills of the GPU ring assets) is a Dagster beta parameter; the
    # choice is deliberate, so its warning on every definitions build is noise on the console
    warnings.filterwarnings("ignore", category=BetaWarning)
    parser = argparse.ArgumentParser(prog="selection-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="materialise the whole lineage on the embedded world")
    demo_parser.add_argument("--dagster-home", default=".dagster_home",
                             help="instance directory when DAGSTER_HOME is unset (default: ./.dagster_home)")
    chosen_experiment = demo_parser.add_mutually_exclusive_group()
    chosen_experiment.add_argument("--profile", choices=config.shipped_names(), default=None,
                                   help="a shipped experiment config: 'world' (the embedded default) or 'smol' "
                                        "(SmolLM2-135M-Instruct, ShareGPT V3 and GSM8K from the package index)")
    chosen_experiment.add_argument("--config", default=None, metavar="FILE",
                                   help="an experiment config of your own (TOML: grid, methods, data, model, "
                                        "training, evaluation, compute; docs/configuration.md)")
    demo_parser.add_argument("--methods", default=None,
                             help="'spine' (random, random_balanced, rds_plus; the world's default), 'all', or "
                                  "comma-separated method names (default: the experiment config's)")
    demo_parser.add_argument("--log-level", default="WARNING",
                             help="console log level of the Dagster runs (all events reach the UI anyway)")
    demo_parser.add_argument("--seeds", type=int, default=1,
                             help="replicate seeds 0..N-1 per cell: training seed and random methods' seed "
                                  "(default 1; published tables use 3)")
    demo_parser.set_defaults(func=demo)
    results_parser = commands.add_parser("results", help="write a published results section into its document "
                                                         "(README.md or docs/*.md)")
    results_parser.add_argument("--section", required=True,
                                help="name of the section, between <!-- results:NAME begin --> and "
                                     "<!-- results:NAME end -->; 'methods' writes the method table, 'lineage' the "
                                     "lineage picture")
    results_parser.add_argument("--title", default="Results", help="heading of the section (with --publish)")
    results_parser.add_argument("--publish", action="store_true",
                                help="first publish the finished demo's results into results/SECTION/ (committed "
                                     "with its document, so a test can re-render the section)")
    results_parser.add_argument("--methods", default=None, help="with --publish: only these of the demo's methods "
                                "(comma-separated), compared on their own")
    results_parser.add_argument("--dagster-home", default=".dagster_home", help="the demo's instance directory")
    results_parser.add_argument("--storage", default=None, help="storage root (default: DAGSTER_HOME/storage)")
    results_parser.add_argument("--root", default=".", help="the repository: its README.md and docs/*.md hold the "
                                                            "sections, its results/ their published results")
    results_parser.set_defaults(func=results)
    rerun_parser = commands.add_parser("rerun", help="rematerialise stale assets (changed code or upstream data)")
    rerun_parser.add_argument("--stale", action="store_true", help="only what is stale, and so its downstream")
    rerun_parser.add_argument("--dry-run", action="store_true", help="print what may rerun, run nothing")
    rerun_parser.add_argument("--dagster-home", default=".dagster_home")
    rerun_parser.add_argument("--log-level", default="WARNING")
    rerun_parser.set_defaults(func=rerun)
    check_parser = commands.add_parser("preflight", help="check the settings (pool, models, tasks, grid, storage) "
                                                         "without starting any work")
    check_parser.add_argument("--dagster-home", default=".dagster_home")
    check_parser.set_defaults(func=check)
    ship_parser = commands.add_parser("ship-world", help="ship a finished default-world demo's pre-trained base "
                                                         "model with the package (maintainers)")
    ship_parser.add_argument("--dagster-home", default=".dagster_home", help="the demo's instance directory")
    ship_parser.set_defaults(func=ship_world)
    search_parser = commands.add_parser("search", help="search the subset size of one method's ranking "
                                                       "(INSTRUCTMINING's BlendSearch over budgets, on the dev split)")
    add_resource_flags(search_parser, SearchResource)
    search_parser.add_argument("--dagster-home", default=".dagster_home")
    search_parser.add_argument("--log-level", default="WARNING")
    search_parser.set_defaults(func=search)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
