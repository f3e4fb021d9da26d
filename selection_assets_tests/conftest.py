"""Shared fixtures: a small world with a briefly pre-trained tiny LM, and one tiny end-to-end
materialisation of the whole lineage into a temporary Dagster instance (both built once per session)."""

import json
import os
import subprocess
import sys
from pathlib import Path

# Under pytest-xdist (pyproject: two workers, for this machine's two cores) each worker, and every
# command it starts, computes on one thread: two processes of two OpenMP threads each on two cores
# spin against each other (a LESS test took 31 s alone, 112 s beside a copy of itself, and 29 s
# beside it on one thread each). Set before torch is imported, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import pytest
from dagster import DagsterInstance

from selection_assets import config
from selection_assets.core import records, tokenize, train
from selection_assets.core.methods import registry
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import (ComputeResource, DataResource, StorageResource, TrainResource,
                                        WorldResource)
from selection_assets.world import generate
from selection_assets.world import models as world_models

TINY_WORLD = WorldResource(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2,
                           corpus_documents=400, pretrain_epochs=2.0, n_dev=4, n_test=8)
TINY_GRID = Grid(pool_sizes=(150, 300), budgets=(40, 150))
TINY_SEEDS = [0, 1]
# the default world's shape with a small corpus and test split, for command-line runs in tests
QUICK_WORLD = {"corpus_documents": 150, "pretrain_epochs": 1.0, "n_dev": 6, "n_test": 20}


@pytest.fixture(scope="session")
def world_lm(tmp_path_factory):
    """(tokenizer, model dir, valid pool records) of a 1200-record world pre-trained for 15 epochs."""
    root = tmp_path_factory.mktemp("world_lm")
    raw = generate.generate_pool(1200, seed=7)
    kept = records.validate_raw(raw, range(len(raw)), first_occurrence(records.declared_ids(raw))).kept
    conversations = [json.loads(m) for m in kept["messages"]]
    texts = [tokenize.format_conversation(c, world_models.EOS) for c in conversations]
    tokenizer = world_models.train_tokenizer(texts, 512, root / "tokenizer")
    settings = train.TrainSettings(epochs=15, learning_rate=3e-3, batch_size=16, max_length=128, seed=0)
    world_models.pretrain_tiny_llama(tokenizer, texts, TINY_WORLD.shape(128), settings, root / "model", "cpu")
    return tokenizer, root / "model", kept


def _one_method_per_wiring() -> tuple[str, ...]:
    """The first registered method of each distinct way a method plugs into the lineage (what it
    needs, whether seeded or ordered per budget), leaving out those that need external models
    (deita). Each method's own procedure is tested on its own against a restatement of its
    reference; the end-to-end fixture proves the wiring of each kind once (the embedding spaces are
    one factory; the chosen methods use the rds, mean, encoder and LESS spaces)."""
    chosen: dict[tuple, str] = {}
    for name, spec in registry().items():
        if not spec.requires:
            chosen.setdefault((spec.needs, spec.seeded, spec.per_budget), name)
    return tuple(chosen.values())


LINEAGE_METHODS = _one_method_per_wiring()


@pytest.fixture(scope="session")
def traced_lineage(tmp_path_factory):
    """The whole lineage materialised once over TINY_GRID, under an `AssetCodeTrace` of what each
    asset ran: (instance, storage root, resources, results, trace)."""
    from selection_assets.cli import run_lineage
    from selection_assets_tests.code_trace import AssetCodeTrace

    root = tmp_path_factory.mktemp("lineage")
    resources = {"storage": StorageResource(root=str(root / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(max_length=128, shard_size=64), "world": TINY_WORLD,
                 "training": TrainResource(epochs=1.0, batch_size=8, seeds=TINY_SEEDS)}
    instance = DagsterInstance.ephemeral()
    with AssetCodeTrace(tuple(type(resource) for resource in resources.values())) as trace:
        results = run_lineage(TINY_GRID, resources, instance, echo=lambda _: None, methods=list(LINEAGE_METHODS))
    return instance, Path(root / "storage"), resources, results, trace


@pytest.fixture(scope="session")
def lineage(traced_lineage):
    """The whole lineage materialised once over TINY_GRID: (instance, storage root, resources, results)."""
    return traced_lineage[:4]


REPO = Path(__file__).resolve().parents[1]


def first_occurrence(ids: list[str | None]) -> list[int]:
    """Per position, the position of the first earlier record with the same id, or -1: a plain
    restatement of what ingestion resolves in DuckDB, for validating records held in memory."""
    first: dict[str, int] = {}
    out = []
    for position, value in enumerate(ids):
        if value is None:
            out.append(-1)
        elif value in first:
            out.append(first[value])
        else:
            first[value] = position
            out.append(-1)
    return out


def cli(args: list[str], env: dict, cwd: Path) -> str:
    """Run `selection-assets ARGS` in a subprocess; its stdout (fails the test on a non-zero exit)."""
    result = subprocess.run([sys.executable, "-m", "selection_assets.cli", *args], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def experiment_env(home: Path, pool_sizes: tuple[int, ...], budgets: tuple[int, ...], methods: str = "spine",
                   **tables: dict) -> dict:
    """The environment of a command-line run in the instance directory `home` of an experiment
    config written beside it: the grid, `methods`, the world shrunk to QUICK_WORLD and `tables`."""
    path = home.parent / f"{home.name}-config" / "experiment.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    experiment = config.Experiment(name="experiment", source=path, pool_sizes=tuple(pool_sizes), budgets=tuple(budgets),
                                   methods=methods, tables={"world": QUICK_WORLD, **tables})
    path.write_text(experiment.dumps())
    environment = {**os.environ, "DAGSTER_HOME": str(home), config.CONFIG_ENV: str(path), "PYTHONPATH": str(REPO)}
    environment.pop(config.PROFILE_ENV, None)
    return environment


# the small demo's methods: a baseline, one embedding method and one that needs answer losses
SMALL_ENV_METHODS = "random,rds_plus,top_ppl"


@pytest.fixture(scope="session")
def small_env(tmp_path_factory):
    """A demo of SMALL_ENV_METHODS over pool sizes 80 and 160, budget 40, in a fresh instance, and
    the environment to reach it (naming the experiment config the demo ran, so a rerun or the UI
    compares the same methods)."""
    home = tmp_path_factory.mktemp("dagster_home")
    env = experiment_env(home, (80, 160), (40,), SMALL_ENV_METHODS)
    cli(["demo"], env, REPO)
    return home, {**env, config.CONFIG_ENV: str(home / "experiment" / "experiment.toml")}


# the session fixtures that each cost a demo or a pre-training: under pytest-xdist (pyproject runs
# the suite on two workers, `--dist loadgroup`) every test that uses one runs on the same worker,
# so each is built once
SHARED_FIXTURES = ("small_env", "traced_lineage", "world_lm")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
