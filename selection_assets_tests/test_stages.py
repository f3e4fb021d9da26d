"""The stage order, the plans built from it and staleness read through Dagster's public APIs, on a
five-asset lineage with the experiment's partitioning (source -> rings -> pools -> cells -> report)."""

from dagster import (AssetDep, AssetKey, DagsterInstance, DataVersion, Definitions, MaterializeResult, RunRequest,
                     SensorResult, SkipReason, asset, build_sensor_context)

from selection_assets.orchestration.labels import CONTENT_VERSIONED_TAGS, SEARCH_TAGS
from selection_assets.cli import run_step
from selection_assets.orchestration.operations import (CELLS_JOB, INPUTS_JOB, POOLS_JOB, REPORTS_JOB, RINGS_JOB, SEARCH_REPORT_JOB,
                                         SEARCH_TRIALS_JOB, Stages, Step,
                                         find_staleness, next_stale_step, register_grid_budgets_sensor, stale_plan,
                                         stale_rerun_sensor)
from selection_assets.orchestration.partitions import BUDGET_PARTITIONS, Grid, missing_budgets

GRID = Grid((80, 160), (40,))


def toy_lineage(view_version: str = "1", view_content: str | None = None) -> list:
    """source, records (per ring), view (per pool size, reading its rings), choice (per cell; method
    'toy'), report (over every cell): the experiment's shape with nothing in it. With `view_content`,
    the view is content-versioned and writes that content (its data version)."""

    @asset(code_version="1")
    def source() -> None:
        pass

    @asset(partitions_def=GRID.rings_def, deps=[source], code_version="1")
    def records() -> None:
        pass

    @asset(partitions_def=GRID.pools_def, code_version=view_version,
           tags=CONTENT_VERSIONED_TAGS if view_content is not None else None,
           deps=[AssetDep(records, partition_mapping=GRID.ring_to_pool_mapping())])
    def view() -> MaterializeResult:
        return MaterializeResult(data_version=None if view_content is None else DataVersion(view_content))

    @asset(partitions_def=GRID.grid_def, deps=[view], code_version="1", tags={"method": "toy"})
    def choice() -> None:
        pass

    @asset(deps=[AssetDep(choice, partition_mapping=GRID.cells_mapping())], code_version="1")
    def report() -> None:
        pass

    return [source, records, view, choice, report]


def stages_of(assets: list, leave_out: frozenset[str] = frozenset()) -> Stages:
    """The stages of a toy lineage, read from its asset graph."""
    return Stages(GRID, Definitions(assets=assets).resolve_asset_graph(), leave_out)


def _run_all(stages: Stages, assets: list, instance, plan: list[Step]) -> None:
    defs = Definitions(assets=assets, jobs=stages.jobs())
    for step in plan:
        run_step(defs, step, instance, log_level="ERROR")


def _plan(stages: Stages, instance) -> list[Step]:
    return stale_plan(stages, find_staleness(stages, instance))


def _labels(plan: list[Step]) -> list[tuple[str, list[str]]]:
    return [(step.label, [k.to_user_string() for k in step.keys]) for step in plan]


def test_the_stage_order_is_inputs_then_each_ring_and_its_pool_then_cells_then_reports():
    stages = stages_of(toy_lineage())
    assert [(step.job, step.label) for step in stages.plan()] == [
        (INPUTS_JOB, "inputs"), (RINGS_JOB, "ring 0-80"), (POOLS_JOB, "pool 80"), (RINGS_JOB, "ring 80-160"),
        (POOLS_JOB, "pool 160"), (CELLS_JOB, "pool 80 budget 40"), (CELLS_JOB, "pool 160 budget 40"),
        (REPORTS_JOB, "reports")]
    assert {k.to_user_string(): job for k, job in stages.job_of.items()} == {
        "source": INPUTS_JOB, "records": RINGS_JOB, "view": POOLS_JOB, "choice": CELLS_JOB, "report": REPORTS_JOB}
    # leaving out the only method leaves out its assets; the pool view and the report still run
    without = stages_of(toy_lineage(), leave_out=frozenset({"toy"}))
    assert [k.to_user_string() for k in without.keys] == ["source", "records", "view", "report"]


def test_which_partitions_a_child_reads_come_from_the_graphs_partition_mappings():
    stages = stages_of(toy_lineage())
    source, records, view, choice, report = (AssetKey(name) for name in ("source", "records", "view", "choice", "report"))
    assert stages.read_by(records, view, "80") == ["0-80"]
    assert sorted(stages.read_by(records, view, "160")) == ["0-80", "80-160"]
    assert stages.read_by(view, choice, "40|160") == ["160"]
    assert stages.read_by(source, records, "0-80") == [None]
    # the report reads every valid cell of the grid, and no other
    assert sorted(stages.read_by(choice, report, None)) == ["40|160", "40|80"]


def test_staleness_is_a_changed_code_version_or_newer_upstream_data_and_everything_below_it():
    assets = toy_lineage()
    stages = stages_of(assets)
    with DagsterInstance.ephemeral() as instance:
        _run_all(stages, assets, instance, stages.plan())
        assert _plan(stages, instance) == []

        # the pool view's code changed: every pool view and all below it, nothing above; nothing
        # waits on the view's bytes, as it records none
        changed = stages_of(toy_lineage(view_version="2"))
        assert find_staleness(changed, instance).pending == set()
        assert _labels(_plan(changed, instance)) == [
            ("pool 80", ["view"]), ("pool 160", ["view"]), ("pool 80 budget 40", ["choice"]),
            ("pool 160 budget 40", ["choice"]), ("reports", ["report"])]

        # the second ring was materialised again: only the pool that holds it, and below
        _run_all(stages, assets, instance, [Step(RINGS_JOB, "80-160")])
        assert _labels(_plan(stages, instance)) == [
            ("pool 160", ["view"]), ("pool 160 budget 40", ["choice"]), ("reports", ["report"])]

        # the sensor asks for one step at a time, each once the one before it has run
        sensor = stale_rerun_sensor(stages, stages.jobs())
        first = sensor(build_sensor_context(instance=instance))
        assert isinstance(first, RunRequest) and (first.job_name, first.partition_key) == (POOLS_JOB, "160")
        assert [k.to_user_string() for k in first.asset_selection] == ["view"]
        assert sensor(build_sensor_context(instance=instance)).run_key == first.run_key  # asked for once
        _run_all(stages, assets, instance, _plan(stages, instance)[:1])
        second = sensor(build_sensor_context(instance=instance))
        assert (second.job_name, second.partition_key) == (CELLS_JOB, "40|160")
        _run_all(stages, assets, instance, _plan(stages, instance))
        assert _plan(stages, instance) == []
        assert isinstance(sensor(build_sensor_context(instance=instance)), SkipReason)


def _pairs(targets: set) -> set[tuple[str, str | None]]:
    return {(key.to_user_string(), partition) for key, partition in targets}


def _rerun_stale(stages: Stages, assets: list, instance) -> list[tuple[str, list[str]]]:
    """What the command line's rerun does: the next step stale now, until none is; the steps run."""
    ran = []
    while (step := next_stale_step(stages, find_staleness(stages, instance))) is not None:
        assert not ran or ran[-1] != step, f"{step.label} is still stale after it ran"
        _run_all(stages, assets, instance, [step])
        ran.append(step)
    return _labels(ran)


def test_a_rerun_that_writes_the_same_bytes_leaves_what_reads_it_alone():
    assets = toy_lineage(view_content="a")
    stages = stages_of(assets)
    with DagsterInstance.ephemeral() as instance:
        _run_all(stages, assets, instance, stages.plan())
        # the view's code changed but it writes what it wrote: the views rerun, nothing below them
        same_bytes = toy_lineage(view_version="2", view_content="a")
        changed = stages_of(same_bytes)
        found = find_staleness(changed, instance)
        assert _pairs(found.now) == {("view", "80"), ("view", "160")}
        assert _pairs(found.pending) == {("choice", "40|80"), ("choice", "40|160"), ("report", None)}
        assert _labels(_plan(changed, instance)) == [
            ("pool 80", ["view"]), ("pool 160", ["view"]), ("pool 80 budget 40", ["choice"]),
            ("pool 160 budget 40", ["choice"]), ("reports", ["report"])]
        sensor = stale_rerun_sensor(changed, changed.jobs())
        first = sensor(build_sensor_context(instance=instance))
        assert (first.partition_key, [k.to_user_string() for k in first.asset_selection]) == ("80", ["view"])
        assert _rerun_stale(changed, same_bytes, instance) == [("pool 80", ["view"]), ("pool 160", ["view"])]
        assert _plan(changed, instance) == []
        assert isinstance(sensor(build_sensor_context(instance=instance)), SkipReason)  # not the choices

        # changed again, and now it writes other bytes: what reads it reruns, once it has run
        other_bytes = toy_lineage(view_version="3", view_content="b")
        assert _rerun_stale(stages_of(other_bytes), other_bytes, instance) == [
            ("pool 80", ["view"]), ("pool 160", ["view"]), ("pool 80 budget 40", ["choice"]),
            ("pool 160 budget 40", ["choice"]), ("reports", ["report"])]

        # a ring materialised again: the views reread it (no digest of the ring's), and their bytes
        # are the same, so the choices stay
        _run_all(stages, other_bytes, instance, [Step(RINGS_JOB, "0-80")])
        assert _rerun_stale(stages_of(other_bytes), other_bytes, instance) == [
            ("pool 80", ["view"]), ("pool 160", ["view"])]


def test_the_grids_budgets_become_partitions_on_a_new_instance_and_a_run_registers_its_cells_budget():
    with DagsterInstance.ephemeral() as instance:
        sensor = register_grid_budgets_sensor(Grid((80, 160), (20, 40)))
        result = sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SensorResult)
        assert [(r.partitions_def_name, r.partition_keys) for r in result.dynamic_partitions_requests] == [
            (BUDGET_PARTITIONS, ["20", "40"])]
        instance.add_dynamic_partitions(BUDGET_PARTITIONS, ["40"])
        assert missing_budgets(instance, (20, 40)) == ["20"]
        # a cell run outside the grid (a search's trial size) registers its own budget first
        assets = toy_lineage()
        stages = stages_of(assets)
        _run_all(stages, assets, instance, stages.plan()[:3])
        _run_all(stages, assets, instance, [Step(CELLS_JOB, "33|80")])
        assert "33" in instance.get_dynamic_partitions(BUDGET_PARTITIONS)
        assert "33|80" in instance.get_materialized_partitions(AssetKey("choice"))


def test_the_searchs_trial_cells_and_its_report_go_stale_with_what_they_read():
    @asset(deps=[AssetKey("choice")], code_version="1", tags={"method": "toy", **SEARCH_TAGS})
    def budget_search() -> MaterializeResult:
        return MaterializeResult(metadata={"pool_size": 160})  # the pool it searched: its trials' cells

    def lineage(view_version: str = "1") -> list:
        return [*toy_lineage(view_version), budget_search]

    assets = lineage()
    stages = stages_of(assets)
    with DagsterInstance.ephemeral() as instance:
        _run_all(stages, assets, instance, [*stages.plan(), Step(SEARCH_TRIALS_JOB, "33|160"),
                                            Step(SEARCH_TRIALS_JOB, "70|80"), Step(SEARCH_REPORT_JOB, None)])
        assert _plan(stages, instance) == []
        # the views' code changed: the trial cells are stale beside the grid's, and the report after them
        changed = lineage(view_version="2")
        assert _labels(_plan(stages_of(changed), instance)) == [
            ("pool 80", ["view"]), ("pool 160", ["view"]), ("pool 80 budget 40", ["choice"]),
            ("pool 160 budget 40", ["choice"]), ("pool 80 budget 70", ["choice"]), ("pool 160 budget 33", ["choice"]),
            ("reports", ["report"]), ("budget_search_report", ["budget_search"])]
        _rerun_stale(stages_of(changed), changed, instance)
        assert _plan(stages_of(changed), instance) == []
        # a trial of another pool leaves the report alone; one of its pool makes it stale
        _run_all(stages, changed, instance, [Step(SEARCH_TRIALS_JOB, "70|80")])
        assert "budget_search" not in {key.to_user_string() for key, _ in find_staleness(stages_of(changed), instance).now}
        _run_all(stages, changed, instance, [Step(SEARCH_TRIALS_JOB, "33|160")])
        found = find_staleness(stages_of(changed), instance)
        assert found.why[(AssetKey("budget_search"), None)] == "new data upstream"
