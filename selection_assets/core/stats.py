"""Uncertainty of eval results: bootstrap intervals over test items and seeds, paired comparisons
against a baseline, and Holm's correction for many comparisons (numpy only).

Inputs are per-item score matrices of shape (seeds, items): row s holds one fine-tuned model's
score (exact match 0/1, or answer loss) on every test item, columns are the same test items for
every model. A bootstrap replicate resamples the test items (shared by both sides of a paired
comparison, which is what makes it paired) and, independently per side, the seeds; with a single
seed the interval covers test-item sampling only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_RESAMPLES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float


def _resampled_means(scores: np.ndarray, item_draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean score of each bootstrap replicate: items from `item_draws` (B, n), seeds drawn anew."""
    n_seeds = scores.shape[0]
    seed_draws = rng.integers(0, n_seeds, size=(item_draws.shape[0], n_seeds))
    # mean over resampled seeds of each item, then over resampled items
    per_seed_item = scores[seed_draws[:, :, None], item_draws[:, None, :]]  # (B, seeds, n)
    return per_seed_item.mean(axis=(1, 2))


def _check(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"expected a non-empty (seeds, items) matrix, got shape {scores.shape}")
    return scores


def mean_interval(scores: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  level: float = LEVEL) -> Interval:
    """Mean of a (seeds, items) score matrix with a percentile-bootstrap interval."""
    scores = _check(scores)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, scores.shape[1], size=(resamples, scores.shape[1]))
    means = _resampled_means(scores, draws, rng)
    tail = (1 - level) / 2
    return Interval(float(scores.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


# designs whose label assignments (or item sign patterns) number at most this are enumerated
EXACT_LIMIT = 100_000
POWER = 0.8  # the power at which a comparison's minimum detectable effect is given


@dataclass(frozen=True)
class PairedTest:
    """Method minus baseline over the same test items, tested twice; a difference is a finding only
    if it holds both ways (an intersection-union test, so its p-value is the larger of the two):

    - over the trained models: each model's mean score is one unit, and the method/baseline labels
      are permuted among a cell's models (a model's training draw is a random effect shared by all
      its items, which no test over items can see);
    - over the test items: each item's seed-averaged difference is one unit, and its sign is flipped
      (a difference carried by a few items is not a finding, however consistent the models).

    `low`/`high` is the 95% interval that holds both ways (the hull of the two t intervals; over the
    items only when the models' spread is unknown: one model a side, `models_unknown`). `min_p` is
    the smallest p-value the design can reach (the larger of the two parts'); `resolution` the
    smallest a Monte-Carlo p-value can state (1/(B+1); 0 when exact), `at_floor` whether the
    p-value is that smallest value, so the true one may be below it."""

    difference: float
    low: float
    high: float
    p_value: float
    p_models: float
    p_items: float
    min_p: float
    models_unknown: bool
    resolution: float
    at_floor: bool
    se_models: float  # the standard error of the difference over trained models (inf: unknown)
    df_models: int
    se_items: float  # and over test items
    df_items: int

    def detectable(self, alpha: float) -> float:
        """The minimum detectable effect: the smallest true difference this design detects with
        80% power at two-sided `alpha` (inf where its smallest p-value is not below `alpha`)."""
        if self.min_p >= alpha:
            return math.inf
        return max(_detectable(self.se_models, self.df_models, alpha), _detectable(self.se_items, self.df_items, alpha))


def _permutation_stats(strata: list[tuple[np.ndarray, np.ndarray]], resamples: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """The statistic (mean over strata of method minus baseline mean) under every assignment of the
    labels within each stratum (`exact`), or under `resamples` random ones."""
    sizes = [math.comb(len(a) + len(b), len(a)) for a, b in strata]
    if math.prod(sizes) <= EXACT_LIMIT:
        total = np.zeros(1)
        for a, b in strata:
            values = np.concatenate([a, b])
            per = []
            for chosen in itertools.combinations(range(len(values)), len(a)):
                mask = np.zeros(len(values), dtype=bool)
                mask[list(chosen)] = True
                per.append(values[mask].mean() - values[~mask].mean())
            total = np.add.outer(total, np.asarray(per) / len(strata)).ravel()
        return total, True
    total = np.zeros(resamples)
    for a, b in strata:
        values = rng.permuted(np.tile(np.concatenate([a, b]), (resamples, 1)), axis=1)
        total += (values[:, :len(a)].mean(axis=1) - values[:, len(a):].mean(axis=1)) / len(strata)
    return total, False


def _sign_flip_stats(units: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """sum(e_u * units_u) under every sign pattern e of the nonzero units (`exact`), or random ones."""
    nonzero = units[units != 0]
    if 2 ** len(nonzero) <= EXACT_LIMIT:
        signs = 1 - 2 * ((np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1)
        return signs @ nonzero, True
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, len(nonzero)))
    return signs @ nonzero, False


def _p_value(null: np.ndarray, observed: float, exact: bool) -> tuple[float, float]:
    """Two-sided p of `observed` among `null` (which holds it, when exact; Monte Carlo: (1 + k)/(1 + B))
    and the smallest p the same null can give."""
    tolerance = 1e-12 * max(1.0, float(np.abs(null).max(initial=0.0)))
    extreme = np.abs(null) >= abs(observed) - tolerance
    most = np.abs(null) >= np.abs(null).max(initial=0.0) - tolerance
    if exact:
        return float(extreme.mean()), float(most.mean())
    return float((1 + extreme.sum()) / (1 + len(null))), float(1 / (1 + len(null)))


def _t_interval(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    if not (df > 0 and np.isfinite(se)):
        return -math.inf, math.inf
    half = float(scipy_stats.t.ppf(1 - (1 - level) / 2, df)) * se
    return estimate - half, estimate + half


def _detectable(se: float, df: float, alpha: float) -> float:
    """The true difference a t test of standard error `se` detects with POWER at two-sided `alpha`."""
    if not (df > 0 and np.isfinite(se)):
        return math.inf
    return float(scipy_stats.t.ppf(1 - alpha / 2, df) + scipy_stats.t.ppf(POWER, df)) * se


def paired_test(method, baseline, *, item_sets=None, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                level: float = LEVEL) -> PairedTest:
    """Mean(method) - mean(baseline) on the same test items, tested over the trained models and over
    the test items (`PairedTest`).

    `method` and `baseline` are (models, items) matrices, or equally long lists of them (strata:
    one pair per grid cell, say); the difference is averaged over the strata, and labels are
    permuted within each. `item_sets` names each stratum's test items: strata with the same name
    share them (cells of one world), so an item's sign flips in all of them at once; by default
    every stratum has the same items. Exact where the assignments number at most EXACT_LIMIT,
    else `resamples` Monte Carlo draws (seeded by `seed`)."""
    methods = [_check(m) for m in (method if isinstance(method, (list, tuple)) else [method])]
    baselines = [_check(b) for b in (baseline if isinstance(baseline, (list, tuple)) else [baseline])]
    item_sets = [0] * len(methods) if item_sets is None else list(item_sets)
    if len(methods) != len(baselines) or len(item_sets) != len(methods):
        raise ValueError("paired comparison needs as many baseline matrices (and item sets) as method ones")
    for m, b in zip(methods, baselines):
        if m.shape[1] != b.shape[1]:
            raise ValueError(f"paired comparison needs the same test items on both sides: {m.shape[1]} and "
                             f"{b.shape[1]} items")
    rng = np.random.default_rng(seed)
    strata = len(methods)
    observed = float(np.mean([m.mean() - b.mean() for m, b in zip(methods, baselines)]))

    # over the trained models: each model's mean over the items is one unit
    model_means = [(m.mean(axis=1), b.mean(axis=1)) for m, b in zip(methods, baselines)]
    null, exact_models = _permutation_stats(model_means, resamples, rng)
    p_models, min_p_models = _p_value(null, observed, exact_models)
    spread_df = sum(len(a) - 1 + len(b) - 1 for a, b in model_means)
    squares = sum(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum() for a, b in model_means)
    variance = squares / spread_df if spread_df else math.inf
    se_models = math.sqrt(sum(variance / len(a) + variance / len(b) for a, b in model_means)) / strata

    # over the test items: each (item set, item)'s seed-averaged difference, weighted into the mean
    units, items_df, se_items_squared = [], 0, 0.0
    for name in dict.fromkeys(item_sets):
        members = [c for c, key in enumerate(item_sets) if key == name]
        sizes = {methods[c].shape[1] for c in members}
        if len(sizes) != 1:
            raise ValueError(f"strata of item set {name!r} have different numbers of test items: {sorted(sizes)}")
        per_item = sum(methods[c].mean(axis=0) - baselines[c].mean(axis=0) for c in members) / (strata * sizes.pop())
        units.append(per_item)
        if len(per_item) > 1:
            se_items_squared += len(per_item) * per_item.var(ddof=1)
            items_df += len(per_item) - 1
    units = np.concatenate(units)
    flipped, exact_items = _sign_flip_stats(units, resamples, rng)
    p_items, min_p_items = _p_value(flipped, observed, exact_items)
    if not exact_items:  # the design's own floor: every nonzero item on one side
        min_p_items = min(1.0, 2.0 ** (1 - int((units != 0).sum())))
    se_items = math.sqrt(se_items_squared) if items_df else math.inf

    low_items, high_items = _t_interval(observed, se_items, items_df, level)
    low_models, high_models = _t_interval(observed, se_models, spread_df, level)
    models_unknown = not spread_df
    low, high = (low_items, high_items) if models_unknown else (min(low_items, low_models), max(high_items, high_models))
    p_value = max(p_models, p_items)
    resolution = 0.0 if exact_models and exact_items else 1 / (1 + resamples)
    return PairedTest(difference=observed, low=float(low), high=float(high), p_value=p_value, p_models=p_models,
                      p_items=p_items, min_p=max(min_p_models, min_p_items), models_unknown=models_unknown,
                      resolution=resolution, at_floor=bool(resolution and p_value <= resolution),
                      se_models=se_models, df_models=spread_df, se_items=se_items, df_items=items_df)


def sign_flip_test(values, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float, float]:
    """Values one per sampling unit (say, per world): the two-sided sign-flip p-value of their sum
    (exact up to EXACT_LIMIT sign patterns), the smallest p that null can give, and the t interval of
    their mean (df units - 1)."""
    values = np.asarray(values, dtype=np.float64)
    null, exact = _sign_flip_stats(values, resamples, np.random.default_rng(seed))
    p_value, min_p = _p_value(null, float(values.sum()), exact)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.inf
    low, high = _t_interval(float(values.mean()), se, len(values) - 1, level)
    return p_value, min_p, low, high


def holm_adjust(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over all comparisons given)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out
