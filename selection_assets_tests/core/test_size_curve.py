"""Double descent and the balance point are read by tests: a planted peak is found where it is and a
flat curve shows none; the balance point is the first size after the last "better"."""

import numpy as np
import pandas as pd

from selection_assets.core import size_curve

SIZES = (20, 50, 120, 300, 700, 1600)


def items(loss: float, seeds: int = 8, n_items: int = 200, rng_seed: int = 0, em: float = 0.3) -> pd.DataFrame:
    """A per-item table: every seed's model scores each item; its mean answer loss `loss` (with item
    and model noise), exact match drawn at `em`."""
    rng = np.random.default_rng(rng_seed)
    item_effect = np.random.default_rng(99).normal(0, 0.3, n_items)  # the same items at every size
    rows = []
    for seed in range(seeds):
        model_effect = rng.normal(0, 0.01)
        losses = loss + item_effect + model_effect + rng.normal(0, 0.05, n_items)
        rows.append(pd.DataFrame({"seed": seed, "task": "t", "item": np.arange(n_items), "answer_loss": losses,
                                  "correct": (rng.random(n_items) < em).astype(float)}))
    return pd.concat(rows, ignore_index=True)


def test_a_planted_peak_is_found_where_it_is_and_a_flat_curve_has_none():
    curve = {size: items(2.0 - 0.1 * i + (0.3 if size == 300 else 0.0), rng_seed=i) for i, size in enumerate(SIZES)}
    found = size_curve.double_descent(curve, resamples=999)
    assert found["double_descent"]
    assert found["peaks"].loc[found["peaks"]["peak"], "size"].tolist() == [300]
    flat = {size: items(2.0, rng_seed=i) for i, size in enumerate(SIZES)}
    assert not size_curve.double_descent(flat, resamples=999)["double_descent"]
    # a curve that only falls has no peak either, however clear the fall
    falling = {size: items(2.0 - 0.2 * i, rng_seed=i) for i, size in enumerate(SIZES)}
    assert not size_curve.double_descent(falling, resamples=999)["double_descent"]


def test_with_three_seeds_a_size_against_random_cannot_be_decided():
    method = {size: items(1.5, seeds=3, rng_seed=i) for i, size in enumerate(SIZES)}
    random = {size: items(2.0, seeds=3, rng_seed=10 + i) for i, size in enumerate(SIZES)}
    verdicts = size_curve.against_random(method, random, resamples=999)
    # three models a side: 20 relabellings, so no p below 0.1 (the calibrated test's floor)
    assert set(verdicts["verdict"]) == {"cannot decide"}


def test_the_balance_point_is_the_first_size_after_the_last_better():
    table = pd.DataFrame({"measure": "answer_loss", "size": SIZES,
                          "verdict": ["better", "better", "no difference", "better", "no difference", "worse"]})
    assert size_curve.balance_point(table, "answer_loss") == 700
    assert size_curve.balance_point(table.assign(verdict="no difference"), "answer_loss") is None
    assert size_curve.balance_point(table.assign(verdict="better"), "answer_loss") is None
