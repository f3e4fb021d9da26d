"""Intervals, the paired test and Holm's correction against plain restatements, scipy's own
permutation tests and simulated data whose truth is known (the error rates over every regime the
tool reports are measured in test_calibration.py)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from selection_assets.core import stats


def _holm_by_hand(p_values):
    """Holm-Bonferroni as the textbook states it: sort, scale the i-th smallest by (m - i), keep the
    running maximum, cap at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def test_holm_matches_the_textbook_procedure_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(rng.integers(1, 12)) ** 2
        p[rng.random(len(p)) < 0.2] = p[0]  # ties
        np.testing.assert_allclose(stats.holm_adjust(p), _holm_by_hand(list(p)))


def test_mean_interval_of_bernoulli_items_has_the_binomial_width():
    rng = np.random.default_rng(1)
    items = (rng.random((1, 900)) < 0.3).astype(float)
    interval = stats.mean_interval(items, resamples=4000)
    p = items.mean()
    half_width = 1.96 * np.sqrt(p * (1 - p) / 900)
    assert interval.low < p < interval.high
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_a_few_items_that_differ_decide_nothing_and_the_sign_flip_is_exact():
    # the case: every other item the same, k items right for random only
    for k in (3, 5):
        baseline = np.zeros((1, 60))
        baseline[0, :k] = 1
        test = stats.paired_test(np.zeros((1, 60)), baseline)
        assert test.p_items == pytest.approx(2.0 ** (1 - k))  # exact sign flip over the k items
        assert test.models_unknown and test.min_p == 1.0 and test.p_value == 1.0  # one model a side
    # a plain restatement of the sign flip over items, on random continuous differences
    rng = np.random.default_rng(2)
    method, baseline = rng.normal(size=(2, 12)), rng.normal(size=(2, 12))
    differences = method.mean(axis=0) - baseline.mean(axis=0)
    flips = [abs(sum(s * d for s, d in zip(signs, differences))) for signs in itertools.product((-1, 1), repeat=12)]
    by_hand = np.mean([f >= abs(differences.sum()) - 1e-12 for f in flips])
    assert stats.paired_test(method, baseline).p_items == pytest.approx(by_hand)


def test_the_models_part_is_scipys_permutation_test_of_model_means():
    rng = np.random.default_rng(3)
    for seeds in (3, 4, 5):
        method = (rng.random((seeds, 200)) < 0.35).astype(float)
        baseline = (rng.random((seeds, 200)) < 0.3).astype(float)
        expected = scipy_stats.permutation_test(
            (method.mean(axis=1), baseline.mean(axis=1)), lambda a, b: np.mean(a) - np.mean(b),
            permutation_type="independent", alternative="two-sided", n_resamples=math.inf).pvalue
        assert stats.paired_test(method, baseline).p_models == pytest.approx(expected)


def test_strata_permute_within_themselves_and_share_the_items_of_their_set():
    rng = np.random.default_rng(4)
    cells = [((rng.random((2, 50)) < 0.4).astype(float), (rng.random((2, 50)) < 0.3).astype(float))
             for _ in range(3)]
    test = stats.paired_test([m for m, _ in cells], [b for _, b in cells])
    # by hand: every relabelling of each cell's four models (6 ways) in all 216 combinations
    means = [(m.mean(axis=1), b.mean(axis=1)) for m, b in cells]
    observed = np.mean([a.mean() - b.mean() for a, b in means])
    per_cell = []
    for a, b in means:
        values = np.concatenate([a, b])
        per_cell.append([values[list(pick)].mean() - np.delete(values, list(pick)).mean()
                         for pick in itertools.combinations(range(4), 2)])
    null = [np.mean(choice) for choice in itertools.product(*per_cell)]
    assert test.p_models == pytest.approx(np.mean([abs(v) >= abs(observed) - 1e-12 for v in null]))
    assert test.difference == pytest.approx(observed)
    # two worlds (item sets): an item of one world flips without the other's
    worlds = stats.paired_test([cells[0][0], cells[1][0]], [cells[0][1], cells[1][1]], item_sets=["a", "b"])
    assert worlds.df_items == 2 * 49
    with pytest.raises(ValueError, match="same test items"):
        stats.paired_test(cells[0][0], cells[0][1][:, :10])


def test_a_seed_level_effect_that_item_tests_mistake_for_a_finding_is_not_one():
    # the method's three models share one lucky training draw each way: every item moves together
    rng = np.random.default_rng(5)
    chance = rng.random(750) * 0.4 + 0.1
    method = np.stack([(rng.random(750) < chance + shift).astype(float) for shift in (0.06, 0.05, 0.07)])
    baseline = np.stack([(rng.random(750) < chance + shift).astype(float) for shift in (0.0, -0.01, 0.01)])
    test = stats.paired_test(method, baseline)
    assert test.p_items < 0.001  # over the items alone it would be a finding
    assert test.p_models == pytest.approx(0.1) and test.min_p == pytest.approx(0.1)  # 3 a side: 2/20 at best
    assert test.p_value == test.p_models and math.isinf(test.detectable(0.05))


def test_a_real_gain_is_found_and_its_detectable_size_is_smaller_than_it():
    rng = np.random.default_rng(6)
    chance = rng.random(750) * 0.4 + 0.1
    cells_m, cells_b = [], []
    for _ in range(4):  # four cells of five models a side, a true gain of 0.05
        cells_m.append(np.stack([(rng.random(750) < chance + 0.05).astype(float) for _ in range(5)]))
        cells_b.append(np.stack([(rng.random(750) < chance).astype(float) for _ in range(5)]))
    test = stats.paired_test(cells_m, cells_b, resamples=2000)
    assert test.p_value < 0.01 and test.low > 0 and test.detectable(0.05) < 0.05
    assert test.at_floor == (test.p_value <= test.resolution)
    same = stats.paired_test(cells_b, [c[::-1].copy() for c in cells_b])
    assert same.difference == pytest.approx(0.0) and same.p_value == 1.0


def test_the_sign_flip_test_over_units_is_the_plain_enumeration():
    values = [0.10, 0.20, -0.05, 0.15]
    sums = [abs(sum(s * v for s, v in zip(signs, values))) for signs in itertools.product((-1, 1), repeat=4)]
    expected = sum(total >= abs(sum(values)) - 1e-12 for total in sums) / 16
    p_value, min_p, low, high = stats.sign_flip_test(values)
    assert p_value == pytest.approx(expected) and min_p == pytest.approx(2 / 16)
    assert low < sum(values) / 4 < high
