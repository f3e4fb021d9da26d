"""benchmarks/ingestion_issue_baseline.py's pairing: each step's speedup of today's run over the
issue's, from what each side measured."""

import pytest

from benchmarks import ingestion_issue_baseline


def test_each_pair_sets_today_s_seconds_against_the_issue_s_rates():
    issue = {"rows": 1000, "validate_rows_per_s": 100.0, "ingest_rows_per_s": 50.0, "tokenize_tokens_per_s": 2000.0}
    today = {"source": {"seconds": 4.0}, "validate": {"seconds": 2.5}, "tokenize": {"tokens": 9000, "seconds": 1.5}}
    speedups = ingestion_issue_baseline.pair_speedups(issue, today)
    assert speedups["validate"] == pytest.approx(10 / 2.5)  # the issue took 1000 / 100 = 10 s
    assert speedups["ingest"] == pytest.approx(20 / 6.5)  # 20 s against today's source and validation
    assert speedups["tokenize"] == pytest.approx(6000 / 2000)  # rates: each side counts its own tokens
