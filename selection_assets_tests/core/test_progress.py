"""Progress lines: counts, rate and time left from a controlled clock; throttled, final line always."""

from selection_assets.core.progress import Progress


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_reports_rate_and_time_left_and_throttles():
    clock, lines = _Clock(), []
    progress = Progress("embedding", 1000, lines.append, unit="rows", every_seconds=10, clock=clock)
    clock.now = 5.0
    progress.advance(100)  # 5 s since start: too soon for a line
    assert lines == []
    clock.now = 20.0
    progress.advance(100)  # 200 rows in 20 s: 10 rows/s, 800 left -> 80 s
    assert lines == ["embedding: 200/1,000 rows (20%), 10.0 rows/s, ~1m20s left"]
    clock.now = 21.0
    progress.advance(800)  # the last unit always logs
    assert lines[-1].startswith("embedding: 1,000/1,000 rows (100%)") and lines[-1].endswith("done")
