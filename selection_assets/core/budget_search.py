"""The subset-size search of INSTRUCTMINING (Cao et al. 2023, section 4: fine-tuned quality is not
monotone in the subset size, so the size is searched with BlendSearch, Wang et al. 2021, FLAML's
`flaml.BlendSearch`, microsoft/FLAML flaml/tune/searcher/blendsearch.py, used as it is): which
budget of a ranked pool minimises the dev-split answer loss.

Pure compute, no Dagster. The search keeps no state of its own: `next_size` rebuilds a seeded
BlendSearch from the trials that have finished, replays its proposals in order and answers each with
that finished trial's loss, and returns the first size no trial has covered. So a killed search
resumes without repeating a trial, and the same settings with the same results propose the same
sizes. Trials that lie off the replayed path (sizes run for another reason, or under other settings)
are kept in the trial table but never fed to BlendSearch, so what else is on disk cannot move it.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

SIZE = "subset_size"
OBJECTIVE = "dev_answer_loss"
# BlendSearch answers None when its next point repeats one it has tried; FLAML's own tune loop asks
# again up to 100 times in a row before it gives up, and so does the replay
MAX_EMPTY_SUGGESTIONS = 100


@dataclass(frozen=True)
class SearchSettings:
    """One search: subset sizes from `low` (inclusive) to `high` (exclusive: a budget must stay
    below its pool), drawn log-uniformly; at most `max_trials` sizes; stop once the finished trials'
    seconds reach `time_budget_s` (None: no time limit); `seed` seeds BlendSearch."""

    low: int
    high: int
    max_trials: int = 10
    seed: int = 0
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.low < self.high - 1:
            raise ValueError(f"the subset sizes need 1 <= low < high - 1 (high is exclusive), got low {self.low}, "
                             f"high {self.high}")
        if self.max_trials < 1:
            raise ValueError(f"max_trials must be at least 1, got {self.max_trials}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive or None, got {self.time_budget_s}")


@dataclass(frozen=True)
class Trial:
    """A finished trial: the subset size, its dev-split answer loss (mean over the replicate seeds'
    checkpoints) and the seconds it cost (selection, fine-tuning, evaluation)."""

    size: int
    dev_loss: float
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.dev_loss):
            raise ValueError(f"trial at subset size {self.size}: dev answer loss {self.dev_loss} is not finite")


@dataclass(frozen=True)
class Proposal:
    """What the search asks for next: `size` to run (None when it is over), why, and the sizes it has
    proposed so far in order (the replayed path, finished trials only)."""

    size: int | None
    reason: str
    path: tuple[int, ...]


def _blendsearch(settings: SearchSettings):
    """A fresh seeded BlendSearch over one integer, the subset size, log-uniform in [low, high): it
    first tries `anchors(settings)` (the ends and the log middle of the range), then its own local
    search from the cheapest size (`low`) and global search; it knows the trial budget, as
    `flaml.tune.run` tells it. Cost is counted here, not by FLAML's clock."""
    for name in ("flaml", "flaml.tune", "flaml.tune.searcher.blendsearch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flaml warns that its AutoML extra is not installed
        from flaml import BlendSearch, tune
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return BlendSearch(metric=OBJECTIVE, mode="min", space={SIZE: tune.lograndint(settings.low, settings.high)},
                       low_cost_partial_config={SIZE: settings.low}, seed=settings.seed, cost_attr=None,
                       num_samples=settings.max_trials,
                       points_to_evaluate=[{SIZE: size} for size in anchors(settings)])


def anchors(settings: SearchSettings) -> list[int]:
    """The sizes every search tries first, as many as the trial budget allows of: the smallest, the
    largest and the log middle of the range. Left to itself with ten trials, BlendSearch's local
    search stays near its cheap start (on the world: sizes 20 to 34 of a pool of 4,000, among dev
    losses one seed's noise apart), so the whole range is seen before the search narrows."""
    top = settings.high - 1
    middle = int(round(math.sqrt(settings.low * top)))
    return list(dict.fromkeys([settings.low, top, middle]))[:settings.max_trials]


def _suggest(searcher, trial_ids) -> tuple[str, dict] | None:
    for _ in range(MAX_EMPTY_SUGGESTIONS):
        trial_id = str(next(trial_ids))
        config = searcher.suggest(trial_id)
        if config is not None:
            return trial_id, config
    return None


def next_size(settings: SearchSettings, trials: Mapping[int, Trial]) -> Proposal:
    """The next subset size to run given the finished `trials` (by size), or None with the reason
    the search is over: the trial budget is spent, the time budget is spent, or BlendSearch has no
    new size to propose."""
    searcher, trial_ids = _blendsearch(settings), itertools.count()
    path: list[int] = []
    for _ in range(MAX_EMPTY_SUGGESTIONS * settings.max_trials):
        if len(path) >= settings.max_trials:
            return Proposal(None, f"the trial budget of {settings.max_trials} sizes is spent", tuple(path))
        spent = sum(trials[size].seconds for size in path)
        if settings.time_budget_s is not None and spent >= settings.time_budget_s:
            return Proposal(None, f"the time budget is spent ({spent:.0f} s of {settings.time_budget_s:.0f} s)",
                            tuple(path))
        suggestion = _suggest(searcher, trial_ids)
        if suggestion is None:
            break
        trial_id, config = suggestion
        size = int(config[SIZE])
        if size not in trials:
            return Proposal(size, f"trial {len(path) + 1} of at most {settings.max_trials}", tuple(path))
        # as FLAML's trial runner reports a finished trial: its one result, then its completion
        result = {OBJECTIVE: trials[size].dev_loss, "config": config, "training_iteration": 0}
        searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
        if size not in path:  # a size proposed again (sizes are rounded) is answered, not run twice
            path.append(size)
    return Proposal(None, "BlendSearch proposes no size it has not tried", tuple(path))


def trial_table(proposal: Proposal, trials: Mapping[int, Trial]) -> pd.DataFrame:
    """The search's trials in the order it proposed them (`proposal.path`): size, dev answer loss,
    seconds, and `chosen` on the one with the lowest loss (ties to the smaller size)."""
    rows = [{"order": order, "size": size, "dev_answer_loss": trials[size].dev_loss, "seconds": trials[size].seconds}
            for order, size in enumerate(proposal.path, start=1)]
    table = pd.DataFrame(rows, columns=["order", "size", "dev_answer_loss", "seconds"])
    best = chosen_size(proposal, trials)
    return table.assign(chosen=table["size"] == best)


def chosen_size(proposal: Proposal, trials: Mapping[int, Trial]) -> int | None:
    """The searched size with the lowest dev answer loss (ties to the smaller size); None before any
    trial has finished."""
    if not proposal.path:
        return None
    return min(proposal.path, key=lambda size: (trials[size].dev_loss, size))
