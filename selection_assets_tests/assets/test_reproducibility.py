"""Same settings, same bytes: the lineage run again into a fresh storage root and instance gives the
same pools, embeddings, scores, selections, checkpoints and report numbers as the session's run.

Only measured durations (JSON keys naming seconds) may differ; every other byte must match."""

import json
from pathlib import Path

from dagster import DagsterInstance

from selection_assets.cli import run_lineage
from selection_assets.core import store
from selection_assets.resources import StorageResource
from selection_assets_tests.conftest import TINY_GRID

# random, rds_plus and top_ppl are compared byte for byte across processes by test_kill_matrix.py
METHODS = ["random", "less"]
# what both runs hold: everything upstream of the methods, and the methods' own artefacts
COMPARED = ["source", "models", *[f"pool/rings/{ring}/{name}" for ring in TINY_GRID.rings()
                                  for name in ("records.parquet", "quarantine.parquet", "tokens.parquet")],
            "embeddings/less", "reports/base_model.json", "reports/base_model_items.parquet",
            *[f"{stage}/{method}" for method in METHODS
              for stage in ("scores", "selections", "checkpoints", "reports/eval", "reports/items")]]


def _files(root: Path) -> dict[str, Path]:
    found = {}
    for part in COMPARED:
        path = root / part
        for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            found[str(file.relative_to(root))] = file
    return found


def test_a_second_run_reproduces_every_file(lineage, tmp_path):
    _, first_root, resources, _ = lineage
    second_root = tmp_path / "storage"
    run_lineage(TINY_GRID, {**resources, "storage": StorageResource(root=str(second_root))},
                DagsterInstance.ephemeral(), echo=lambda _: None, methods=METHODS)
    first, second = _files(first_root), _files(second_root)
    assert set(first) == set(second)
    assert any(name.endswith("model.safetensors") for name in first)
    assert any(name.startswith("embeddings/less/pool") and name.endswith(".npy") for name in first)
    differing = []
    for name, path in first.items():
        if name.endswith(".json"):
            same = store.without_durations(json.loads(path.read_text())) == store.without_durations(
                json.loads(second[name].read_text()))
        else:
            same = path.read_bytes() == second[name].read_bytes()
        if not same:
            differing.append(name)
    assert not differing, differing
