"""benchmarks/gpu_reruns.py on two small demo homes whose differences are planted: it must count
exactly those, stage by stage."""

import json
import shutil

import numpy as np
import pandas as pd

from benchmarks import gpu_reruns

CELLS = [("random", 1000, 10), ("rds_plus", 1000, 10)]
ITEMS = 20


def _home(root):
    storage = root / "storage"
    (storage / "models/base").mkdir(parents=True)
    (storage / "models/base/model.safetensors").write_bytes(b"weights")
    (storage / "models/base_model.json").write_text(json.dumps({"pretrain": {"train_loss": 1.0}}))
    (storage / "embeddings/position_weighted/pool/0-1000").mkdir(parents=True)
    np.save(storage / "embeddings/position_weighted/pool/0-1000/shard-00000.npy",
            np.linspace(-1, 1, 40, dtype=np.float16).reshape(10, 4))
    cells, methods = [], []
    for method, pool, budget in CELLS:
        for stage in ("selections", "reports/items"):
            (storage / stage / method / str(pool)).mkdir(parents=True, exist_ok=True)
        (storage / "scores" / method).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"example_id": [f"{method}-{i}" for i in range(pool)], "score": np.arange(pool) / pool}
                     ).to_parquet(storage / f"scores/{method}/{pool}.parquet")
        pd.DataFrame({"seed": 0, "rank": range(budget), "example_id": [f"{method}-{i}" for i in range(budget)],
                      "source": "s"}).to_parquet(storage / f"selections/{method}/{pool}/{budget}.parquet")
        pd.DataFrame({"seed": 0, "task": "t", "item": range(ITEMS), "prediction": ["1"] * ITEMS,
                      "correct": [i % 2 == 0 for i in range(ITEMS)], "answer_loss": np.linspace(1, 2, ITEMS)}
                     ).to_parquet(storage / f"reports/items/{method}/{pool}/{budget}.parquet")
        tested = method != "random"
        cells.append({"method": method, "pool_size": pool, "budget": budget,
                      "em_vs_random": 0.01 if tested else None, "em_verdict": "better" if tested else None,
                      "loss_verdict": "no difference" if tested else None})
        if tested:
            methods.append({"method": method, "em_vs_random": 0.01, "em_vs_random_ci": "[0.001, 0.020]",
                            "em_p_holm": 0.04, "verdict": "better"})
    methods.append({"method": "random", "em_vs_random": None, "verdict": None})
    (storage / "reports/comparison").mkdir(parents=True)
    (storage / "reports/comparison/comparison.json").write_text(json.dumps({"cells": cells, "methods": methods}))
    (storage / "reports/base_model.json").write_text(json.dumps({"exact_match": 0.1, "answer_loss": 2.5}))
    (root / "demo_run.json").write_text(json.dumps({"seeds": [0], "machine": "test"}))
    return root


def test_two_identical_homes_match_everywhere(tmp_path):
    x = _home(tmp_path / "x")
    shutil.copytree(x, tmp_path / "y")
    pair = gpu_reruns.compare_homes("rerun", x, tmp_path / "y")
    assert all(pair["same_bytes"].values()) and pair["max_abs_embedding_difference"] == 0.0
    assert pair["cell_verdicts_that_differ"] == 0 and pair["cell_verdicts"] == 2
    assert all(cell["pick_overlap"] == 1.0 and cell["items_whose_prediction_differs"] == 0 for cell in pair["cells"])


def test_planted_differences_are_counted_stage_by_stage(tmp_path):
    x = _home(tmp_path / "x")
    y = shutil.copytree(x, tmp_path / "y")
    storage = y / "storage"
    shard = storage / "embeddings/position_weighted/pool/0-1000/shard-00000.npy"
    vectors = np.load(shard)
    vectors[3, 1] += np.float16(0.25)
    np.save(shard, vectors)
    picks = pd.read_parquet(storage / "selections/rds_plus/1000/10.parquet")
    picks.loc[[0, 1], "example_id"] = ["other-a", "other-b"]  # 8 of 10 picks shared
    picks.to_parquet(storage / "selections/rds_plus/1000/10.parquet")
    items = pd.read_parquet(storage / "reports/items/rds_plus/1000/10.parquet")
    items.loc[[0, 1, 2], "prediction"] = "7"
    items.loc[[0, 1], "correct"] = ~items.loc[[0, 1], "correct"]  # item 2 answers differently, still wrong
    items.loc[5, "answer_loss"] += 0.5
    items.sample(frac=1, random_state=0).to_parquet(storage / "reports/items/rds_plus/1000/10.parquet")
    report = json.loads((storage / "reports/comparison/comparison.json").read_text())
    report["cells"][1]["loss_verdict"] = "worse"
    (storage / "reports/comparison/comparison.json").write_text(json.dumps(report))

    pair = gpu_reruns.compare_homes("device", x, y)
    assert pair["same_bytes"] == {"base_model_weights": True, "pool_embeddings": False, "scores": True,
                                  "selections": False, "test_item_results": False}
    assert pair["max_abs_embedding_difference"] == 0.25
    assert pair["base_model"] == {"exact_match": [0.1, 0.1], "answer_loss": [2.5, 2.5], "pretraining_loss": [1.0, 1.0]}
    random_cell, rds = pair["cells"]
    assert random_cell["pick_overlap"] == 1.0 and random_cell["items_whose_correctness_differs"] == 0
    assert rds["pick_overlap"] == 0.8 and not rds["same_picks_in_order"]
    assert rds["items_whose_prediction_differs"] == 3 and rds["items_whose_correctness_differs"] == 2
    assert abs(rds["max_abs_item_loss_difference"] - 0.5) < 1e-12  # compared item by item, whatever the row order
    assert pair["cell_verdicts_that_differ"] == 1 and pair["method_verdicts_that_differ"] == 0
    assert rds["loss_verdict_x"] == "no difference" and rds["loss_verdict_y"] == "worse"
