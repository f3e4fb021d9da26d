"""The subset-size search against FLAML's own loop: stepping `next_size` trial by trial proposes the
sizes `flaml.tune.run` proposes with the same BlendSearch, a search rebuilt after any number of
finished trials goes on where it stopped, and the settings' budgets end it."""

import math

import pytest

from selection_assets.core import budget_search
from selection_assets.core.budget_search import SearchSettings, Trial


def double_descent(size: int) -> float:
    """A loss curve with two dips (near 80 and 1,200 examples) over a rising trend."""
    x = math.log(size)
    return 2.0 - 0.4 * math.exp(-((x - math.log(80)) ** 2)) - 0.6 * math.exp(-((x - math.log(1200)) ** 2) / 0.5)


def run_search(settings: SearchSettings, loss=double_descent, stop_after: int | None = None) -> dict[int, Trial]:
    """Step the search as the lineage does: ask for a size, finish its trial, ask again."""
    trials: dict[int, Trial] = {}
    while stop_after is None or len(trials) < stop_after:
        proposal = budget_search.next_size(settings, trials)
        if proposal.size is None:
            break
        assert proposal.size not in trials, "a finished size was proposed again"
        trials[proposal.size] = Trial(proposal.size, loss(proposal.size), seconds=10.0)
    return trials


def flaml_loop(settings: SearchSettings, loss=double_descent) -> list[int]:
    """The oracle: FLAML's own tune loop with the same BlendSearch, evaluating each size in turn."""
    from flaml import tune

    searcher = budget_search._blendsearch(settings)
    analysis = tune.run(lambda config: {budget_search.OBJECTIVE: loss(config[budget_search.SIZE])},
                        metric=budget_search.OBJECTIVE, mode="min", search_alg=searcher,
                        num_samples=settings.max_trials, verbose=0)
    return [int(trial.config[budget_search.SIZE]) for trial in analysis.trials]


@pytest.mark.parametrize("seed", [0, 3])
def test_stepped_search_proposes_what_flaml_tune_run_proposes(seed):
    settings = SearchSettings(low=20, high=4000, max_trials=8, seed=seed)
    proposal = budget_search.next_size(settings, run_search(settings))
    assert list(proposal.path) == flaml_loop(settings)
    assert proposal.size is None and "trial budget" in proposal.reason


def test_a_killed_search_resumes_without_repeating_a_trial():
    settings = SearchSettings(low=20, high=4000, max_trials=8, seed=1)
    whole = budget_search.next_size(settings, run_search(settings)).path
    for kept in range(len(whole)):
        # the trials that finished before the kill, whatever order they finished in
        finished = {size: Trial(size, double_descent(size), 10.0) for size in reversed(whole[:kept])}
        resumed = budget_search.next_size(settings, finished)
        assert resumed.path == whole[:kept] and resumed.size == whole[kept]


def test_sizes_stay_in_bounds_and_the_chosen_size_has_the_lowest_dev_loss():
    settings = SearchSettings(low=30, high=3000, max_trials=10, seed=2)
    trials = run_search(settings)
    assert all(30 <= size < 3000 for size in trials)
    proposal = budget_search.next_size(settings, trials)
    table = budget_search.trial_table(proposal, trials)
    assert list(table["order"]) == list(range(1, len(trials) + 1))
    chosen = table.loc[table["chosen"], "size"]
    assert len(chosen) == 1 and chosen.iloc[0] == min(trials, key=lambda s: trials[s].dev_loss)


def test_trials_off_the_path_do_not_move_the_search():
    settings = SearchSettings(low=20, high=4000, max_trials=6, seed=0)
    path = budget_search.next_size(settings, run_search(settings)).path
    others = {size: Trial(size, 0.0) for size in (21, 333, 3999) if size not in path}
    trials = {**{size: Trial(size, double_descent(size)) for size in path}, **others}
    proposal = budget_search.next_size(settings, trials)
    assert proposal.path == path
    assert budget_search.chosen_size(proposal, trials) not in others


def test_the_time_budget_counts_the_finished_trials_seconds():
    settings = SearchSettings(low=20, high=4000, max_trials=10, seed=0, time_budget_s=25.0)
    trials = run_search(settings)
    assert len(trials) == 3  # 10 s each: after 2 trials 20 s < 25 s, after 3 the budget is spent
    assert "time budget" in budget_search.next_size(settings, trials).reason


@pytest.mark.parametrize("low, high, max_trials", [(0, 100, 5), (50, 51, 5), (10, 100, 0)])
def test_settings_that_cannot_search_are_refused(low, high, max_trials):
    with pytest.raises(ValueError):
        SearchSettings(low=low, high=high, max_trials=max_trials)


def test_a_trial_without_a_finite_loss_is_refused():
    with pytest.raises(ValueError, match="subset size 40"):
        Trial(40, float("nan"))


def test_every_search_first_sees_both_ends_and_the_log_middle_of_its_range():
    settings = SearchSettings(low=20, high=4000, max_trials=6, seed=0)
    path = budget_search.next_size(settings, run_search(settings)).path
    assert path[:3] == (20, 3999, 283)  # sqrt(20 x 3999) = 282.8
    assert budget_search.next_size(SearchSettings(low=20, high=4000, max_trials=2), {}).size == 20
    assert budget_search.anchors(SearchSettings(low=20, high=4000, max_trials=2)) == [20, 3999]
