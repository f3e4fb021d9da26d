"""The error rates of the comparison's paired test (`core.stats.paired_test`), measured by simulation
over the regimes the tool reports, before any verdict is published from it.

Each simulated comparison is one grid cell (or several, pooled as the per-method test pools them):
a method's and random's fine-tuned models, `seeds` of each, answer the same test items. An item's
chance of being answered right is its own difficulty (spread around the base rate on the logit
scale), shifted per model by that model's training draw (the per-seed effect, whose standard
deviation is given on the exact-match scale), and, with correlated items, per model and block of
ten items (a model that happens to learn one kind of item gets its block right together). The
method's models add the true effect. Under a true null (effect 0) both sides come from the same
distribution, and a calibrated test rejects at most alpha of the time.

    python -m benchmarks.calibration            # the whole grid: results/calibration.json
    python -m benchmarks.calibration --replications 100 --base-rates 0.02,0.2 --seeds 1,3 --seed-sds 0,0.05

The test suite runs a smaller grid of the same code (selection_assets_tests/test_calibration.py).
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from selection_assets.core import stats

ALPHA = 0.05
BLOCK = 10  # items per block of correlated items


@dataclass(frozen=True)
class Regime:
    """One simulated design: base rate, test items, seeds (models a side), per-seed exact-match
    standard deviation, whether items are correlated in blocks, and how many cells are pooled."""

    base_rate: float
    items: int
    seeds: int
    seed_sd: float
    correlated: bool
    cells: int = 1


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def simulate(regime: Regime, effect: float, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One comparison under `regime` with a true exact-match difference of `effect`: per cell, the
    method's and random's (seeds, items) 0/1 matrices on the same items."""
    slope = regime.base_rate * (1 - regime.base_rate)  # d(probability)/d(logit) at the base rate
    difficulty = _logit(regime.base_rate) + rng.normal(0.0, 1.0, regime.items)
    methods, baselines = [], []
    for _ in range(regime.cells):
        sides = []
        for shift in (effect, 0.0):
            logits = difficulty[None, :] + rng.normal(0.0, regime.seed_sd / slope, (regime.seeds, 1))
            if regime.correlated:
                blocks = rng.normal(0.0, 0.5, (regime.seeds, math.ceil(regime.items / BLOCK)))
                logits = logits + np.repeat(blocks, BLOCK, axis=1)[:, :regime.items]
            chance = np.clip(1 / (1 + np.exp(-logits)) + shift, 0.0, 1.0)
            sides.append((rng.random(chance.shape) < chance).astype(np.float64))
        methods.append(sides[0])
        baselines.append(sides[1])
    return methods, baselines


def rejection_rate(regime: Regime, effect: float, replications: int, seed: int, resamples: int = 1000) -> dict:
    """How often the paired test rejects at ALPHA over `replications` simulated comparisons, with its
    Monte-Carlo standard error, and how often the design could not reach ALPHA at all."""
    rng = np.random.default_rng(seed)
    rejected = undecidable = 0
    for replication in range(replications):
        methods, baselines = simulate(regime, effect, rng)
        test = stats.paired_test(methods, baselines, resamples=resamples, seed=replication)
        rejected += test.p_value < ALPHA
        undecidable += test.min_p >= ALPHA
    rate = rejected / replications
    return {"regime": asdict(regime), "effect": effect, "replications": replications, "rejection_rate": rate,
            "standard_error": math.sqrt(max(rate * (1 - rate), ALPHA * (1 - ALPHA)) / replications),
            "undecidable_share": undecidable / replications}


def grid(base_rates=(0.02, 0.2, 0.5), items=(60, 750), seeds=(1, 3, 5), seed_sds=(0.0, 0.02, 0.05),
         correlated=(False, True), cells=(1, 4)) -> list[Regime]:
    """Every combination of the regimes' factors."""
    return [Regime(*values) for values in itertools.product(base_rates, items, seeds, seed_sds, correlated, cells)]


def _numbers(text: str, kind) -> tuple:
    return tuple(kind(value) for value in text.split(","))


def main() -> None:
    from benchmarks._common import save

    parser = argparse.ArgumentParser()
    parser.add_argument("--replications", type=int, default=400)
    parser.add_argument("--base-rates", default="0.02,0.2,0.5", help="comma-separated base rates")
    parser.add_argument("--seeds", default="1,3,5", help="comma-separated seeds (models) a side")
    parser.add_argument("--seed-sds", default="0,0.02,0.05", help="comma-separated per-seed exact-match SDs")
    args = parser.parse_args()
    rows = []
    regimes = grid(base_rates=_numbers(args.base_rates, float), seeds=_numbers(args.seeds, int),
                   seed_sds=_numbers(args.seed_sds, float))
    for index, regime in enumerate(regimes):
        for effect in (0.0, 0.01, 0.02, 0.05):
            rows.append(rejection_rate(regime, effect, args.replications, seed=1000 * index + int(effect * 100)))
        print(index, regime, [round(r["rejection_rate"], 3) for r in rows[-4:]], flush=True)
    save("calibration", {"alpha": ALPHA, "rows": rows})


if __name__ == "__main__":
    main()
