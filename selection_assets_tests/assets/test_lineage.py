"""End to end on a tiny grid: every stage materialises, checks pass, nothing is lost or redone."""

import json
import re

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, MultiPartitionKey, materialize

from selection_assets.assets.reports import BEATS_BASE
from selection_assets.core.methods import registry
from selection_assets.core.report import VERDICTS
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.core.keys import Cell, Ring
from selection_assets.orchestration.partitions import register_budgets
from selection_assets.resources import DataResource
from selection_assets_tests.conftest import LINEAGE_METHODS as METHODS, TINY_GRID, TINY_SEEDS as SEEDS


def test_every_cell_has_a_checkpoint_and_a_report(lineage):
    _, root, _, _ = lineage
    layout = Layout(root)
    for cell in TINY_GRID.valid_cells():
        for method in METHODS:
            for seed in SEEDS:
                checkpoint = layout.seed_checkpoint(method, cell, seed)
                assert (checkpoint / "config.json").exists() and (checkpoint / "model.safetensors").exists()
            report = json.loads(layout.eval_report(method, cell).read_text())
            assert {t["task"] for t in report["tasks"]} == {"arithmetic", "fact_lookup", "multiple_choice"}
            assert report["seeds"] == list(SEEDS) and set(report["by_seed"]) == {str(s) for s in SEEDS}
            low, high = report["exact_match_ci"]
            assert 0.0 <= low <= report["exact_match"] <= high <= 1.0 and 0.0 <= report["selection_precision"] <= 1.0
            assert sum(report["per_source"].values()) == cell.budget
    comparison = pd.read_csv(layout.comparison_dir / "comparison.csv")
    assert len(comparison) == len(TINY_GRID.valid_cells()) * len(METHODS)
    tested = comparison[comparison["method"] != "random"]
    assert tested["em_verdict"].isin(VERDICTS).all()
    assert (layout.comparison_dir / "scaling.png").stat().st_size > 1000
    assert (layout.comparison_dir / "vs_random.png").stat().st_size > 1000


def test_eval_reports_keep_every_test_item_of_every_seed(lineage):
    _, root, _, _ = lineage
    layout = Layout(root)
    tasks = json.loads(layout.eval_tasks.read_text())["tasks"]
    n_items = sum(len(t["test"]) for t in tasks)
    items = pd.read_parquet(layout.eval_items("rds_plus", Cell(300, 40)))
    assert len(items) == n_items * len(SEEDS)
    assert {"seed", "task", "item", "prediction", "gold", "correct", "answer_loss"} <= set(items.columns)
    report = json.loads(layout.eval_report("rds_plus", Cell(300, 40)).read_text())
    # the report's headline is recomputable from the items file
    assert report["exact_match"] == pytest.approx(items["correct"].mean())
    for seed, summary in report["by_seed"].items():
        assert summary["exact_match"] == pytest.approx(items.loc[items["seed"] == int(seed), "correct"].mean())


def test_seeded_methods_draw_a_new_subset_per_seed_and_others_repeat_theirs(lineage):
    _, root, _, _ = lineage
    layout = Layout(root)
    random_picks = pd.read_parquet(layout.selection("random", Cell(300, 40)))
    rds_picks = pd.read_parquet(layout.selection("rds_plus", Cell(300, 40)))
    by_seed = {s: set(g["example_id"]) for s, g in random_picks.groupby("seed")}
    assert set(by_seed) == set(SEEDS) and by_seed[SEEDS[0]] != by_seed[SEEDS[1]]
    rds_by_seed = [list(g["example_id"]) for _, g in rds_picks.groupby("seed")]
    assert rds_by_seed[0] == rds_by_seed[1]


def test_validity_checks_pass_and_the_dev_check_compares_with_the_base_model(lineage):
    _, root, _, results = lineage
    evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
    validity = [e for e in evaluations if e.check_name != BEATS_BASE]
    assert {e.check_name for e in validity} == {"finite_unit_norm", "size_equals_budget", "no_duplicate_ids"}
    assert all(e.passed for e in validity), [e for e in validity if not e.passed]
    base_loss = json.loads(Layout(root).base_eval_report.read_text())["dev_answer_loss"]
    dev = [e for e in evaluations if e.check_name == BEATS_BASE]
    assert len(dev) == len(TINY_GRID.valid_cells()) * len(METHODS) and base_loss > 0
    for evaluation in dev:
        losses = evaluation.metadata["dev_answer_loss_by_seed"].value
        assert set(losses) == {str(s) for s in SEEDS}
        assert evaluation.severity == AssetCheckSeverity.WARN
        assert evaluation.passed == all(loss < base_loss for loss in losses.values())


def test_long_steps_report_progress_in_the_run_log(lineage):
    instance, _, _, results = lineage
    messages = [entry.user_message for result in results for entry in instance.all_logs(result.run_id)]
    for step in ("pre-training: ", "position_weighted embeddings of ring 0-150: ", "CE(answer | question), CE(sequence): ",
                 "fine-tuning seed 0: ", "harness evaluation: ", "answer loss (arithmetic): "):
        lines = [m for m in messages if step in m]
        assert lines and any("(100%)" in m and m.endswith("done") for m in lines), step


def test_every_record_is_kept_or_quarantined(lineage):
    instance, root, _, _ = lineage
    layout = Layout(root)
    total = 0
    records = instance.fetch_materializations(AssetKey("ring_records"), limit=100).records
    by_ring = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert sorted(by_ring) == ["0-150", "150-300"]
    for ring, meta in by_ring.items():
        kept, quarantined = meta["kept"].value, meta["quarantined"].value
        assert meta["records_in"].value == kept + quarantined == Ring.parse(ring).size
        assert len(pd.read_parquet(layout.ring_quarantine(Ring.parse(ring)))) == quarantined
        total += quarantined
    assert total > 0, "the world injects malformed records; some must be quarantined"


def test_each_example_is_embedded_once_across_pool_sizes(lineage):
    instance, _, _, _ = lineage
    records = instance.fetch_materializations(AssetKey("ring_embeddings_position_weighted"), limit=100).records
    assert sorted(r.partition_key for r in records) == ["0-150", "150-300"]


def test_scores_are_queryable_in_duckdb(lineage):
    _, root, _, _ = lineage
    with duckdb.connect(str(Layout(root).scores_db), read_only=True) as con:
        rows = con.execute("SELECT pool_size, count(*), count(rds_plus), count(random) FROM scores "
                           "GROUP BY pool_size ORDER BY pool_size").fetchall()
        long_columns = {r[0] for r in con.execute("SELECT DISTINCT score_column FROM scores_long").fetchall()}
    pool_rows = {r[0]: r[1] for r in rows}
    assert pool_rows["150"] < pool_rows["300"] <= 300
    assert all(r[1] == r[2] == r[3] for r in rows)
    assert {"score", "group__arithmetic"} <= long_columns


def test_rds_selects_more_targeted_clean_data_than_random(lineage):
    _, root, _, _ = lineage
    layout = Layout(root)
    precision = {m: json.loads(layout.eval_report(m, Cell(300, 40)).read_text())["selection_precision"]
                 for m in METHODS}
    assert precision["rds_plus"] > precision["random"]


def test_budget_not_below_pool_is_rejected_with_a_clear_message(lineage):
    _, _, resources, _ = lineage
    instance = DagsterInstance.ephemeral()
    register_budgets(instance, TINY_GRID.budgets)
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey(["random", "selection"])],
                         partition_key=MultiPartitionKey({"pool_size": "150", "budget": "150"}),
                         resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "budget 150 is not smaller than pool size 150" in failure.step_failure_data.error.message


def test_method_whose_model_is_not_configured_fails_naming_the_setting(lineage):
    _, _, resources, _ = lineage
    unconfigured = {**resources, "data": DataResource(max_length=128, shard_size=64, encoder_model="")}
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey("query_embeddings_encoder")],
                         resources=unconfigured, raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "DataResource.encoder_model" in failure.step_failure_data.error.message


def _restated_selection_flops(layout: Layout, spec, pool_size: int, epochs: float) -> float | None:
    """The cost model of docs/science.md written out plainly from what a method reads: a forward
    pass (2 N L per example) to embed the pool and its queries, or for LESS a forward and backward
    pass (6 N L) per example and warm-up checkpoint after the warm-up's 6 N per trained token; one
    LM pass for CE(A | Q) and one for CE(A); DiverseEvol's rounds, per budget: fine-tuning on the
    choice so far (6 N L x epochs) and an embedding pass over the pool. None for the pre-experienced
    IFD, whose passes read an instruction length and a sample no file holds."""
    from selection_assets.core.methods import Need
    from selection_assets.core.methods.diverse_evol import round_sizes

    if Need.PRE_EXPERIENCED_LOSSES in spec.needs:
        return None

    manifest = json.loads(layout.pool_manifest(pool_size).read_text())
    n, tokens, pool = json.loads(layout.base_model_ref.read_text())["parameters"], manifest["mean_tokens"], manifest["examples"]
    flops = 0.0
    if Need.EMBEDDINGS in spec.needs:
        ring = next(r for r in TINY_GRID.rings() if r.end <= pool_size)
        embedder = json.loads((layout.ring_embeddings(ring, spec.space) / "manifest.json").read_text())
        examples = pool + (len(pd.read_parquet(layout.query_embeddings(spec.space) / "queries.parquet"))
                           if Need.QUERIES in spec.needs else 0)
        if Need.GRADIENTS in spec.needs:
            warmup = json.loads((layout.less_warmup / "manifest.json").read_text())
            flops += 6 * n * warmup["tokens"] + 6 * n * tokens * examples * len(warmup["checkpoints"])
        else:
            flops += 2 * embedder["fingerprint"]["parameters"] * tokens * examples
    flops += 2 * n * tokens * pool * len(spec.needs & {Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE})
    if Need.FINETUNE_ROUNDS in spec.needs:
        for budget in TINY_GRID.budgets_below(pool_size):
            sizes = round_sizes(budget)
            flops += sum(6 * n * tokens * sum(sizes[:r]) * epochs + 2 * n * tokens * pool for r in range(1, len(sizes)))
    return flops


def test_every_method_reports_its_selection_cost(lineage):
    instance, root, resources, _ = lineage
    specs, flops = registry(), {}
    for method in METHODS:
        for record in instance.fetch_materializations(AssetKey([method, "scores"]), limit=10).records:
            materialization = record.asset_materialization
            pool_size = int(materialization.partition)
            flops[method, pool_size] = materialization.metadata["selection_flops"].value
            expected = _restated_selection_flops(Layout(root), specs[method], pool_size, resources["training"].epochs)
            assert expected is None or flops[method, pool_size] == pytest.approx(expected, rel=1e-12), method
    for pool_size in TINY_GRID.pool_sizes:
        cost = {method: flops[method, pool_size] for method in METHODS}
        assert cost["random"] == cost["token_length"] == 0.0
        assert 0 < cost["top_ppl"] < cost["ifd"] <= 2 * cost["top_ppl"]  # IFD: a second, shorter pass
        assert cost["rds_plus"] > 0 and cost["instructmining_no_reward"] > cost["top_ppl"]  # + encoder embeddings
        # the pre-experienced IFD: IFD's two passes, plus instructions read alone (at most a pass) and a
        # fine-tune of one epoch on a sample (at most 3 passes' worth over the whole pool)
        assert cost["ifd"] < cost["ifd_pre_experienced"] < cost["ifd"] + 4 * cost["top_ppl"]


def test_instructmining_rule_is_fitted_from_the_lineage(lineage):
    _, root, _, _ = lineage
    rule = json.loads(Layout(root).instructmining_rule.read_text())
    assert rule["subsets"] == len(TINY_GRID.valid_cells()) * len(METHODS) * len(SEEDS)
    assert set(rule["coefficients"]) <= {"input_length", "output_length", "perplexity", "mtld", "knn6"}


def test_a_section_can_publish_some_of_a_runs_methods_compared_on_their_own(lineage, tmp_path):
    from selection_assets.reporting import published

    _, root, _, _ = lineage
    run = {"command": "selection-assets demo --methods all", "methods": list(METHODS), "pool_sizes": [150, 300],
           "budgets": [40, 150], "seeds": SEEDS, "wall_seconds": 1.0, "machine": "here"}
    directory = published.publish(Layout(root), run, "Two methods", tmp_path / "two", methods=["rds_plus", "random"])
    section = json.loads((directory / "section.json").read_text())
    assert {r["method"] for r in section["reports"]} == {"random", "rds_plus"}
    assert section["run"]["compared"] == ["random", "rds_plus"] and section["run"]["methods"] == list(METHODS)
    assert set(pd.read_parquet(directory / "items.parquet")["method"]) == {"random", "rds_plus"}
    rendered = published.render(directory)
    assert "This section compares random, rds_plus of its methods" in rendered
    assert not re.search(r"\|\s*top_ppl\s*\|", rendered) and re.search(r"\|\s*rds_plus\s*\|", rendered)
    with pytest.raises(ValueError, match="compared no deita"):
        published.publish(Layout(root), run, "None", tmp_path / "none", methods=["deita"])
