"""Third-party log lines the pipeline silences because it causes them on purpose, each with its reason.

Kept apart from `core/` so that quieting a log changes no step's code version (nothing here
decides an output), and installed when the definitions load, so the CLI, `dagster dev` and the
tests all run with it.
"""

from __future__ import annotations

import logging

HARNESS_MODEL_LOGGER = "lm_eval.models.huggingface"


class InMemoryModelNotices(logging.Filter):
    """Drops the two warnings lm-eval's HFLM logs whenever it is handed a model object instead of a
    name. `core/harness.py` always does that, to score a checkpoint already in memory, so they only
    repeated, twice for every model scored, that such a model must not be launched through accelerate."""

    PREFIXES = ("`pretrained` model kwarg is not of type `str`",
                "Passed an already-initialized model through `pretrained`")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.PREFIXES)


_IN_MEMORY_MODEL_NOTICES = InMemoryModelNotices()


def install() -> None:
    """Attach every filter here to its logger (once, however often called)."""
    logging.getLogger(HARNESS_MODEL_LOGGER).addFilter(_IN_MEMORY_MODEL_NOTICES)
