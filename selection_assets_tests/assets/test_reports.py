"""The eval report's cost fields: fine-tuning FLOPs from each seed's train_stats.json."""

import pytest

from selection_assets.assets.reports import trained_flops


def test_training_flops_are_six_times_parameters_times_every_trained_token_averaged_over_seeds():
    # train_stats.json as every fine-tune writes it: `tokens` counts all epochs (an older file also
    # carried training_flops, which the report no longer reads)
    stats = [{"tokens": 3_000, "examples": 100, "training_flops": -1.0}, {"tokens": 5_000, "examples": 100}]
    assert trained_flops(1_000, stats) == pytest.approx(6 * 1_000 * (3_000 + 5_000) / 2, rel=1e-12)
