"""End to end on a tiny grid: every stage materialises, checks pass, nothing is lost or redone."""

import json

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, MultiPartitionKey, materialize

from selection_assets.core.methods import registry
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.resources import DataResource
from selection_assets_tests.conftest import TINY_GRID

METHODS = tuple(registry())


def test_every_cell_has_a_checkpoint_and_a_report(lineage):
    _, root, _, _ = lineage
    layout = Layout(root)
    for pool_size, budget in TINY_GRID.valid_cells():
        for method in METHODS:
            checkpoint = layout.checkpoint(method, pool_size, budget)
            assert (checkpoint / "config.json").exists() and (checkpoint / "model.safetensors").exists()
            report = json.loads(layout.eval_report(method, pool_size, budget).read_text())
            assert {t["task"] for t in report["tasks"]} == {"arithmetic", "fact_lookup", "multiple_choice"}
            assert 0.0 <= report["avg_exact_match"] <= 1.0 and 0.0 <= report["selection_precision"] <= 1.0
            assert sum(report["per_source"].values()) == int(budget)
    comparison = pd.read_csv(layout.comparison_dir / "comparison.csv")
    assert len(comparison) == len(TINY_GRID.valid_cells()) * len(METHODS)
    assert (layout.comparison_dir / "scaling.png").stat().st_size > 1000


def test_asset_checks_all_pass(lineage):
    _, _, _, results = lineage
    evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
    names = {e.check_name for e in evaluations}
    assert names == {"finite_unit_norm", "size_equals_budget", "no_duplicate_ids"}
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_every_record_is_kept_or_quarantined(lineage):
    instance, root, _, _ = lineage
    layout = Layout(root)
    total = 0
    records = instance.fetch_materializations(AssetKey("raw_pool"), limit=100).records
    by_ring = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert sorted(by_ring) == ["150", "300"]
    for ring, meta in by_ring.items():
        kept, quarantined = meta["kept"].value, meta["quarantined"].value
        assert meta["records_in"].value == kept + quarantined == TINY_GRID.ring_bounds(ring)[1] - TINY_GRID.ring_bounds(ring)[0]
        assert len(pd.read_parquet(layout.ring_quarantine(ring))) == quarantined
        total += quarantined
    assert total > 0, "the world injects malformed records; some must be quarantined"


def test_each_example_is_embedded_once_across_pool_sizes(lineage):
    instance, _, _, _ = lineage
    records = instance.fetch_materializations(AssetKey("pool_embeddings"), limit=100).records
    assert sorted(r.partition_key for r in records) == ["150", "300"]


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
    precision = {m: json.loads(layout.eval_report(m, "300", "40").read_text())["selection_precision"]
                 for m in METHODS}
    assert precision["rds_plus"] > precision["random"]


def test_budget_not_below_pool_is_rejected_with_a_clear_message(lineage):
    _, _, resources, _ = lineage
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey("selection_random")],
                         partition_key=MultiPartitionKey({"pool_size": "150", "budget": "150"}),
                         resources=resources, raise_on_error=False)
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


def test_every_method_reports_its_selection_cost(lineage):
    instance, _, _, _ = lineage
    flops = {}
    for method in METHODS:
        record = instance.fetch_materializations(AssetKey(f"scores_{method}"), limit=10).records[0]
        flops[method] = record.asset_materialization.metadata["selection_flops"].value
    assert flops["random"] == flops["token_length"] == 0.0
    assert 0 < flops["top_ppl"] < flops["ifd"] <= 2 * flops["top_ppl"]  # IFD: a second, shorter pass
    assert flops["rds_plus"] > 0 and flops["embed_encoder"] > 0


def test_instructmining_rule_is_fitted_from_the_lineage(lineage):
    _, root, _, _ = lineage
    rule = json.loads(Layout(root).instructmining_rule.read_text())
    assert rule["subsets"] == len(TINY_GRID.valid_cells()) * len(METHODS)
    assert set(rule["coefficients"]) <= {"input_length", "output_length", "perplexity", "mtld", "knn6"}
