"""Uncertainty of eval results: bootstrap intervals over test items and seeds, paired comparisons
against a baseline, and Holm's correction for many comparisons (numpy only).

Inputs are per-item score matrices of shape (seeds, items): row s holds one fine-tuned model's
score (exact match 0/1, or answer loss) on every test item, columns are the same test items for
every model. A bootstrap replicate resamples the test items (shared by both sides of a paired
comparison, which is what makes it paired) and, independently per side, the seeds; with a single
seed the interval covers test-item sampling only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    """Method minus baseline on the same test items: mean difference, its interval and the
    two-sided bootstrap p-value of 'no difference'."""

    difference: float
    low: float
    high: float
    p_value: float


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


def paired_difference(method, baseline, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> PairedDifference:
    """Mean(method) - mean(baseline) over the same test items (columns), paired by item.

    `method` and `baseline` are (seeds, items) matrices, or equally long lists of them (one pair
    per grid cell, all on the same test items): the difference is then averaged over the pairs,
    and every replicate draws one set of items for all of them. Seeds are drawn independently per
    matrix. The p-value is twice the smaller share of replicates on either side of zero (at least 1/B).
    """
    methods = [_check(m) for m in (method if isinstance(method, (list, tuple)) else [method])]
    baselines = [_check(b) for b in (baseline if isinstance(baseline, (list, tuple)) else [baseline])]
    n_items = {m.shape[1] for m in methods + baselines}
    if len(methods) != len(baselines) or len(n_items) != 1:
        raise ValueError(f"paired comparison needs the same test items on both sides: {sorted(n_items)} items")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_items.pop(), size=(resamples, methods[0].shape[1]))
    differences = np.mean([_resampled_means(m, draws, rng) - _resampled_means(b, draws, rng)
                           for m, b in zip(methods, baselines)], axis=0)
    observed = float(np.mean([m.mean() - b.mean() for m, b in zip(methods, baselines)]))
    tail = (1 - level) / 2
    share_below = (np.sum(differences < 0) + 0.5 * np.sum(differences == 0)) / resamples
    p_value = float(min(1.0, max(2 * min(share_below, 1 - share_below), 1 / resamples)))
    return PairedDifference(observed, float(np.quantile(differences, tail)),
                            float(np.quantile(differences, 1 - tail)), p_value)


def holm_adjust(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over all comparisons given)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out
