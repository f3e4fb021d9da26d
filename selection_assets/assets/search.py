"""The subset-size search in the lineage (INSTRUCTMINING's search, core/budget_search.py).

Each size the search tries is a cell of the grid: its budget is a dynamic partition, so the trial
has the method's selection, checkpoints and eval report (and random's, at the same size) with their
lineage, and the UI lists it among the partitions. `search_state` reads the finished trials from
their eval reports (the dev split only) and asks BlendSearch for the next size; the command line
(`selection-assets search`) and the `budget_search` sensor run what it asks for. The `budget_search`
asset records the trial table, the chosen size, the curve of quality against subset size for the
method and for random, and the chosen size against random at that size on the test split.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from dagster import (AddDynamicPartitionsRequest, AssetExecutionContext, DefaultSensorStatus, Failure,
                     MaterializeResult, MetadataValue, RunRequest, SensorEvaluationContext, SensorResult, SkipReason,
                     asset, sensor)

from selection_assets.orchestration.labels import EVAL_REPORT, SEARCH_TAGS, method_key, method_tags
from selection_assets.core import budget_search, report, store
from selection_assets.core.keys import Cell
from selection_assets.core.methods import eligible, registry
from selection_assets.core.store import Layout
from selection_assets.orchestration.operations import SEARCH_REPORT_JOB, SEARCH_RUN_TAG, SEARCH_TRIALS_JOB, Step, run_in_flight
from selection_assets.orchestration.partitions import BUDGET_PARTITIONS, Grid, cell_key, missing_budgets
from selection_assets.resources import SearchResource, StorageResource
from selection_assets.reporting import views

BASELINE = report.BASELINE  # tried at every size the search tries, for the curve and the last test


def eligible_rows(layout: Layout, method: str, pool_size: int) -> int:
    """How many rows of the pool `method`'s score table ranks (a finite or +inf score): the largest
    subset it can select. A budget-ordered method (k-center, DEITA) ranks up to the grid's largest
    budget only."""
    scores = pq.read_table(layout.scores(method, pool_size), columns=["score"])["score"].to_numpy()
    return int(eligible(scores).sum())


def dev_losses(found: dict) -> list[float]:
    """An eval report's dev-split answer losses, one per seed that has one."""
    return [loss for loss in found["dev_answer_loss_by_seed"].values() if loss is not None]


def read_trials(layout: Layout, method: str, pool_size: int, sizes) -> dict[int, budget_search.Trial]:
    """The finished trials of `method` on `pool_size` among `sizes`: each size whose eval report
    exists, with its dev-split answer loss (mean over the report's seeds) and its fine-tuning
    seconds. Nothing of the test split is read."""
    trials = {}
    for size in sizes:
        path = layout.eval_report(method, Cell(pool_size, size))
        if size < pool_size and path.exists():
            found = store.read_json(path)
            dev = dev_losses(found)
            if not dev:
                raise Failure(f"{method} at subset size {size}: its eval report has no dev answer loss (the eval "
                              "tasks have no dev items with answers), which the search minimises")
            trials[size] = budget_search.Trial(size, float(np.mean(dev)), float(found["training_seconds"]))
    return trials


@dataclass(frozen=True)
class SearchState:
    """Where one search stands: its method and pool, its settings, the finished trials and what it
    asks for next."""

    method: str
    pool_size: int
    settings: budget_search.SearchSettings
    trials: dict[int, budget_search.Trial]
    proposal: budget_search.Proposal


def check_searchable(method: str) -> None:
    """A ValueError unless `method` is registered and one score table serves all its budgets."""
    specs = registry()
    if method not in specs:
        raise ValueError(f"SearchResource.method {method!r} is no registered method ({', '.join(specs)})")
    if specs[method].per_budget:
        raise ValueError(f"SearchResource.method {method!r} chooses anew for each budget (per_budget), so a "
                         "search over sizes would need a new score table per size: choose a ranking method")


def search_state(layout: Layout, grid: Grid, search: SearchResource, instance) -> SearchState:
    """The search `search` configures (a method `check_searchable` let through), rebuilt from the
    trials the instance's budget partitions and the storage hold. Needs the method's scores for the
    pool (the pools stage)."""
    pool_size = search.searched_pool(grid.pool_sizes)
    if not layout.scores(search.method, pool_size).exists():
        raise Failure(f"{search.method}/scores has no pool {pool_size} yet: run the pools stage first "
                      f"(selection-assets search runs it)")
    settings = search.settings(pool_size, eligible_rows(layout, search.method, pool_size))
    sizes = [int(key) for key in instance.get_dynamic_partitions(BUDGET_PARTITIONS)]
    trials = read_trials(layout, search.method, pool_size, sizes)
    return SearchState(search.method, pool_size, settings, trials, budget_search.next_size(settings, trials))


def _summary(layout: Layout, method: str, cell: Cell) -> dict | None:
    path = layout.eval_report(method, cell)
    return store.read_json(path) if path.exists() else None


def curve(layout: Layout, state: SearchState) -> pd.DataFrame:
    """Per size the search tried, ascending, the method's and random's test exact match and answer
    loss with their 95% intervals, and their dev answer loss (random's where it has run)."""
    rows = []
    for size in sorted(state.proposal.path):
        for method in (state.method, BASELINE):
            found = _summary(layout, method, Cell(state.pool_size, size))
            if found is None:
                continue
            dev = dev_losses(found)
            rows.append({"method": method, "size": size, "dev_answer_loss": float(np.mean(dev)) if dev else None,
                         "exact_match": found["exact_match"], "exact_match_low": found["exact_match_ci"][0],
                         "exact_match_high": found["exact_match_ci"][1], "answer_loss": found["answer_loss"],
                         "answer_loss_low": found["answer_loss_ci"][0], "answer_loss_high": found["answer_loss_ci"][1]})
    return pd.DataFrame(rows)


def chosen_against_random(layout: Layout, state: SearchState, chosen: int) -> dict | None:
    """The chosen size against random at that size on the same test items, by the comparison's
    paired test (exact match and answer loss, one Holm family); None until random has run there."""
    cell = Cell(state.pool_size, chosen)
    paths = [layout.eval_items(method, cell) for method in (state.method, BASELINE)]
    if not all(path.exists() for path in paths):
        return None
    ours, theirs = (pd.read_parquet(path) for path in paths)
    return report.paired_verdicts(ours, theirs)


def build(grid: Grid, search: SearchResource) -> list:
    """The `budget_search` asset of the search `search` configures (its method's eval reports and
    random's over the trial cells are its parents); a ValueError for a method it cannot search."""
    method = search.method
    check_searchable(method)

    @asset(name="budget_search", group_name="reports",
           deps=[method_key(method, EVAL_REPORT), method_key(BASELINE, EVAL_REPORT)],
           tags={**method_tags(method), **SEARCH_TAGS}, kinds={"pandas", "json"},
           description=f"INSTRUCTMINING's subset-size search over {method}'s ranking (FLAML's BlendSearch, "
                       "minimising the dev-split answer loss): the trials, the chosen size, the curve of exact "
                       "match and answer loss against subset size beside random's, and the chosen size against "
                       "random at that size on the test split.")
    def budget_search_asset(context: AssetExecutionContext, storage: StorageResource,
                            search: SearchResource) -> MaterializeResult:
        layout = storage.layout()
        state = search_state(layout, grid, search, context.instance)
        if not state.proposal.path:
            raise Failure("no trial of the search has finished: run `selection-assets search` or turn on the "
                          "budget_search sensor")
        trials = budget_search.trial_table(state.proposal, state.trials)
        chosen = budget_search.chosen_size(state.proposal, state.trials)
        quality = curve(layout, state)
        against = chosen_against_random(layout, state, chosen)
        out = layout.budget_search(state.method, state.pool_size)
        out.mkdir(parents=True, exist_ok=True)
        store.write_parquet(trials, out / "trials.parquet")
        store.write_parquet(quality, out / "curve.parquet")
        document = {"method": state.method, "pool_size": state.pool_size,
                    "settings": {"low": state.settings.low, "high": state.settings.high,
                                 "max_trials": state.settings.max_trials, "seed": state.settings.seed,
                                 "time_budget_s": state.settings.time_budget_s},
                    "finished": state.proposal.size is None, "status": state.proposal.reason,
                    "chosen_size": chosen, "trials": trials.to_dict(orient="records"),
                    "chosen_against_random": against}
        path = store.write_json(document, out / "search.json")
        plot = views.size_curve_plot(quality, out / "curve.png")
        return MaterializeResult(metadata={
            "pool_size": state.pool_size,  # the pool whose trial cells it read (operations.Stages.reads)
            "chosen_size": chosen, "finished": document["finished"], "status": state.proposal.reason,
            "trials": MetadataValue.md(views.markdown_table(trials)),
            "curve": MetadataValue.md(views.markdown_table(quality)),
            "quality_vs_size": MetadataValue.md(views.png_markdown(plot, "quality vs subset size")),
            "chosen_against_random": MetadataValue.json(against or {}),
            "path": MetadataValue.path(str(path))})

    return [budget_search_asset]


def search_step(state) -> Step:
    """The run the subset-size search in `state` (assets/search.SearchState) asks for: its next
    trial, a cell at the proposed size, or its report once it is over."""
    if state.proposal.size is None:
        return Step(SEARCH_REPORT_JOB, None)
    return Step(SEARCH_TRIALS_JOB, cell_key(Cell(state.pool_size, state.proposal.size)))


def budget_search_sensor(grid: Grid, jobs: list):
    """A sensor (off by default) that runs the subset-size search from the UI: one trial at a time
    (its budget added to the partitions first), each proposed from the trials finished before it,
    then the search's report. What `selection-assets search` does from the command line."""

    @sensor(name="budget_search", minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
            jobs=[job for job in jobs if job.name in (SEARCH_TRIALS_JOB, SEARCH_REPORT_JOB)],
            description="Runs the subset-size search (SearchResource) trial by trial, then its report; needs the "
                        "pools stage of the searched pool.")
    def _sensor(context: SensorEvaluationContext, storage: StorageResource, search: SearchResource):
        in_flight = run_in_flight(context.instance, SEARCH_RUN_TAG)
        if in_flight:
            return SkipReason(f"a search run is in flight (run {in_flight[:8]})")
        try:
            state = search_state(storage.layout(), grid, search, context.instance)
        except (Failure, ValueError) as refused:
            return SkipReason(f"the search cannot start: {getattr(refused, 'description', None) or refused}")
        step = search_step(state)
        # one request per trial and per finished path: a failed trial waits for a person
        run_key = f"{state.method}/{state.pool_size}/{step.label}/after {','.join(map(str, state.proposal.path))}"
        request = RunRequest(run_key=run_key, job_name=step.job, partition_key=step.partition,
                             tags={SEARCH_RUN_TAG: "true"})
        added = [] if state.proposal.size is None else missing_budgets(context.instance, [state.proposal.size])
        return SensorResult(run_requests=[request],
                            dynamic_partitions_requests=[AddDynamicPartitionsRequest(BUDGET_PARTITIONS, added)]
                            if added else [])

    return _sensor
