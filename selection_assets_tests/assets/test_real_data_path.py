"""The same assets run on a user's pool file, eval file and Hugging Face model directory."""

import json
import shutil

import pandas as pd
from dagster import DagsterInstance, materialize

from selection_assets.cli import run_lineage
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource
from selection_assets.world import generate
from selection_assets_tests.conftest import TINY_WORLD


def test_named_pool_eval_file_and_model_directory(lineage, tmp_path):
    _, world_root, _, _ = lineage
    model_dir = Layout(world_root).base_model_dir  # a save_pretrained directory, as from the Hub
    lines = generate.generate_pool(180, seed=11)
    alpaca = [json.dumps({"instruction": f"Say {i}.", "output": str(i), "dataset": "alpaca"}) for i in range(20)]
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("\n".join(lines + alpaca) + "\n")
    eval_file = tmp_path / "tasks.json"
    eval_file.write_text(json.dumps(generate.generate_eval_tasks(3, n_dev=3, n_test=4, skills=("fact_lookup",))))
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(pool=str(pool_file), eval_tasks=str(eval_file), base_model=str(model_dir),
                                      max_length=128, shard_size=50),
                 "world": TINY_WORLD, "training": TrainResource(epochs=1.0, batch_size=8)}
    run_lineage(Grid((100, 200), (30,)), resources, DagsterInstance.ephemeral(), echo=lambda _: None)
    layout = Layout(tmp_path / "storage")
    assert json.loads(layout.base_model_ref.read_text())["path"] == str(model_dir)
    kept = sum(len(pd.read_parquet(layout.ring_records(r))) for r in ("100", "200"))
    quarantined = sum(len(pd.read_parquet(layout.ring_quarantine(r))) for r in ("100", "200"))
    assert kept + quarantined == 200
    report = json.loads(layout.eval_report("rds_plus", "200", "30").read_text())
    assert [t["task"] for t in report["tasks"]] == ["fact_lookup"]
    # one eval task: RDS+ round-robins over its individual queries
    assert {c for c in pd.read_parquet(layout.scores("rds_plus", "200")).columns if c.startswith("group__")} == {
        "group__fact_lookup/0", "group__fact_lookup/1", "group__fact_lookup/2"}


def test_a_quantized_base_model_is_refused_before_any_fine_tuning(lineage, tmp_path):
    _, world_root, _, _ = lineage
    quantized = tmp_path / "quantized"
    shutil.copytree(Layout(world_root).base_model_dir, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (quantized / "config.json").write_text(json.dumps(config))
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(base_model=str(quantized), max_length=128), "world": TINY_WORLD,
                 "training": TrainResource(epochs=1.0, batch_size=8)}
    result = materialize(build_assets(Grid((100,), (30,))), resources=resources, selection=["tokenizer", "base_model"],
                         raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "SELECTION_ASSETS_BASE_MODEL" in message and "quantized (gptq)" in message
