"""Progress lines for long steps (embedding, losses, training, evaluation): done/total, rate and
time left, written at most every few seconds to any log function (a Dagster run log, which the
command line also prints), so a step of minutes is never silent."""

from __future__ import annotations

import time
from typing import Callable


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Counts work done towards a known total and logs a line when `every_seconds` have passed since
    the last one, and always when the total is reached."""

    def __init__(self, label: str, total: int, log: Callable[[str], None], *, unit: str = "items",
                 every_seconds: float = 15.0, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit = label, int(total), unit
        self._log, self._every, self._clock = log, every_seconds, clock
        self.done = 0
        self._started = self._last = clock()

    def line(self) -> str:
        """The current state: `label: done/total unit (pct%), rate unit/s, ~time left`."""
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = "done" if self.done >= self.total else ("unknown" if left == float("inf") else f"~{_duration(left)} left")
        return (f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), {rate:,.1f} {self.unit}/s, "
                f"{eta}")

    def advance(self, count: int = 1) -> None:
        """Record `count` more units done; log if it is time to."""
        self.done += count
        now = self._clock()
        if self.done >= self.total or now - self._last >= self._every:
            self._last = now
            self._log(self.line())
