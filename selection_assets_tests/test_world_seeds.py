"""benchmarks/world_seeds.py's pooled comparison on small demo homes with planted effects: the pooled
difference must be the plain mean of the worlds' differences, its verdicts must follow it, and the
worlds taken as units must say that three of them cannot decide."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import world_seeds

ITEMS = 200
POOL, BUDGET = 1000, 10


def _home(root, corrects: dict[str, np.ndarray]):
    """A demo home whose eval items hold `corrects[method]`, a (seeds, items) 0/1 matrix per method."""
    storage = root / "storage"
    cells = []
    for method, correct in corrects.items():
        (storage / f"reports/items/{method}/{POOL}").mkdir(parents=True)
        seeds, items = correct.shape
        pd.DataFrame({"seed": np.repeat(np.arange(seeds), items), "task": "t", "item": np.tile(np.arange(items), seeds),
                      "correct": correct.ravel().astype(float), "answer_loss": 2.0 - correct.ravel(),
                      "suite": "project"}).to_parquet(storage / f"reports/items/{method}/{POOL}/{BUDGET}.parquet")
        cells.append({"method": method, "pool_size": POOL, "budget": BUDGET})
    (storage / "reports/comparison").mkdir(parents=True)
    (storage / "reports/comparison/comparison.json").write_text(json.dumps({"cells": cells}))
    return root


def _worlds(tmp_path, gains, seeds=2):
    """One home per gain: random right on a seeded half of the items, random_balanced the same, and
    rds_plus right on `gain` of the items more (items random gets wrong)."""
    homes = []
    for world, gain in enumerate(gains):
        rng = np.random.default_rng(world)
        random = (rng.random((seeds, ITEMS)) < 0.5).astype(float)
        rds_plus = random.copy()
        for row in rds_plus:
            wrong = np.flatnonzero(row == 0)
            row[wrong[:round(gain * ITEMS)]] = 1.0
        homes.append(_home(tmp_path / f"world{world}", {"random": random, "random_balanced": random.copy(),
                                                          "rds_plus": rds_plus}))
    return homes


def _pooled(homes, **options):
    return world_seeds.pooled_comparison(homes, [world_seeds.read_comparison(home) for home in homes], **options)


def test_the_pooled_difference_is_the_mean_of_the_worlds_differences(tmp_path):
    gains = [0.05, 0.10, 0.15]
    pooled = {row["method"]: row for row in _pooled(_worlds(tmp_path, gains), resamples=500)}
    rds = pooled["rds_plus"]
    assert rds["em_vs_random"] == pytest.approx(np.mean(gains))
    assert rds["loss_vs_random"] == pytest.approx(-np.mean(gains))  # loss is 2 - correct
    assert rds["em_vs_random_ci"][0] > 0 and rds["em_verdict"] == "better" and rds["loss_verdict"] == "better"
    assert rds["items_per_cell"] == 3 * ITEMS and rds["worlds"] == 3 and rds["cells"] == 1
    balanced = pooled["random_balanced"]
    # answering exactly as random does, no item differs: too few for any p-value below alpha
    assert balanced["em_vs_random"] == 0 and balanced["em_verdict"] == "cannot decide"
    # the worlds as units: their own differences, and three of them cannot decide (2/8 at best)
    between = rds["em_between_worlds"]
    assert between["per_world"] == pytest.approx(gains) and between["estimate"] == pytest.approx(np.mean(gains))
    assert between["min_p"] == 0.25 and between["verdict"] == "cannot decide"
    assert [part["pool_size"] for part in rds["by_pool"]] == [POOL] and rds["by_pool"][0]["em_verdict"] == "better"


def test_a_gain_in_one_world_only_is_diluted_by_the_others(tmp_path):
    pooled = {row["method"]: row for row in _pooled(_worlds(tmp_path, [0.03, 0.0, 0.0]), resamples=500)}
    assert pooled["rds_plus"]["em_vs_random"] == pytest.approx(0.01)
    assert pooled["rds_plus"]["em_verdict"] == "no difference"


def test_worlds_with_different_grids_or_seeds_are_refused(tmp_path):
    homes = _worlds(tmp_path / "grids", [0.1, 0.1])
    comparison = homes[1] / "storage/reports/comparison/comparison.json"
    cells = json.loads(comparison.read_text())["cells"]
    comparison.write_text(json.dumps({"cells": cells[:-1]}))
    with pytest.raises(ValueError, match="different methods or cells"):
        _pooled(homes)
    homes = _worlds(tmp_path / "seeds", [0.1], seeds=2) + _worlds(tmp_path / "more_seeds", [0.1], seeds=3)
    with pytest.raises(ValueError, match="different seed counts"):
        _pooled(homes)
