"""The comparison's paired test rejects a true null at most alpha of the time, measured by simulation
over the regimes it reports (benchmarks/calibration.py; the whole grid, with its power, is a
benchmark with a table in benchmarks/RESULTS.md): base rates from rare to even, few and many test
items, one to five seeds, seed-level spread from none to large, correlated items, one cell or four
pooled. A test that let a training draw pass for a method's effect fails here."""

import pytest

from benchmarks import calibration

REPLICATIONS = 200
# the harder half of the benchmark's grid: the rarest and the even base rate, the fewest items
NULL_REGIMES = calibration.grid(base_rates=(0.02, 0.5), items=(60,), seeds=(1, 3, 5), seed_sds=(0.0, 0.05))


@pytest.mark.parametrize("regime", NULL_REGIMES, ids=lambda r: "-".join(map(str, vars(r).values())))
def test_a_true_null_is_rejected_at_most_alpha_of_the_time(regime):
    result = calibration.rejection_rate(regime, 0.0, REPLICATIONS, seed=hash(regime) % 2**32, resamples=500)
    assert result["rejection_rate"] <= calibration.ALPHA + 2 * result["standard_error"], result


def test_a_real_gain_is_found_when_the_design_can_find_it_and_never_when_it_cannot():
    decidable = calibration.Regime(base_rate=0.2, items=750, seeds=5, seed_sd=0.02, correlated=True, cells=4)
    assert calibration.rejection_rate(decidable, 0.05, 50, seed=1)["rejection_rate"] >= 0.9
    one_seed = calibration.Regime(base_rate=0.2, items=750, seeds=1, seed_sd=0.02, correlated=False, cells=1)
    result = calibration.rejection_rate(one_seed, 0.05, 20, seed=2)
    assert result["rejection_rate"] == 0.0 and result["undecidable_share"] == 1.0
