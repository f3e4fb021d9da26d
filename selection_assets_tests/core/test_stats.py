"""Bootstrap intervals, paired differences and Holm's correction against plain restatements and
simulated data whose truth is known."""

import numpy as np
import pytest

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


def test_interval_widens_when_seeds_disagree():
    rng = np.random.default_rng(2)
    agreeing = np.repeat((rng.random((1, 600)) < 0.4).astype(float), 3, axis=0)
    disagreeing = (rng.random((3, 600)) < np.array([[0.25], [0.4], [0.55]])).astype(float)
    narrow = stats.mean_interval(agreeing)
    wide = stats.mean_interval(disagreeing)
    assert wide.high - wide.low > narrow.high - narrow.low


def test_identical_models_show_no_difference():
    rng = np.random.default_rng(3)
    one_seed = (rng.random((1, 500)) < 0.5).astype(float)
    result = stats.paired_difference(one_seed, one_seed.copy())
    assert result.difference == 0.0 and result.low == result.high == 0.0 and result.p_value == 1.0
    two_seeds = (rng.random((2, 500)) < 0.5).astype(float)  # seeds are resampled per side
    result = stats.paired_difference(two_seeds, two_seeds.copy())
    assert result.difference == 0.0 and result.low < 0.0 < result.high and result.p_value > 0.2


def test_a_real_gain_is_resolved_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(4)
    baseline = (rng.random((1, 900)) < 0.3).astype(float)
    method = baseline.copy()
    fixed = np.flatnonzero(baseline[0] == 0)[:60]  # the method gets 60 more items right
    method[0, fixed] = 1.0
    paired = stats.paired_difference(method, baseline)
    assert paired.difference == pytest.approx(60 / 900)
    assert paired.low > 0 and paired.p_value < 0.01
    p1, p2 = method.mean(), baseline.mean()
    unpaired_half_width = 1.96 * np.sqrt(p1 * (1 - p1) / 900 + p2 * (1 - p2) / 900)
    assert (paired.high - paired.low) / 2 < unpaired_half_width


def test_false_positive_rate_is_near_alpha_when_there_is_no_difference():
    rng = np.random.default_rng(5)
    rejections = 0
    for trial in range(200):
        truth = rng.random(300) * 0.8 + 0.1  # item difficulty shared by both models
        a = (rng.random((1, 300)) < truth).astype(float)
        b = (rng.random((1, 300)) < truth).astype(float)
        rejections += stats.paired_difference(a, b, resamples=1000, seed=trial).p_value < 0.05
    assert rejections / 200 <= 0.09


def test_differences_over_several_cells_average_them_on_shared_item_draws():
    rng = np.random.default_rng(6)
    base = (rng.random((1, 400)) < 0.5).astype(float)
    better = base.copy()
    better[0, np.flatnonzero(base[0] == 0)[:40]] = 1.0
    joint = stats.paired_difference([better, base], [base, base])
    assert joint.difference == pytest.approx(0.05)
    with pytest.raises(ValueError, match="same test items"):
        stats.paired_difference(base, base[:, :10])
