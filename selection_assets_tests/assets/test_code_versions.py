"""Code versions follow what the code does: comments, docstrings and layout change nothing, any
change of code changes them, a method's assets cover the shared method code it runs, and each
step's version covers the helpers and resource defaults that decide its output."""

import dataclasses
import inspect
import textwrap

import pytest
from dagster import AssetKey

from selection_assets.assets import _shared, embeddings, models, reports, scores
from selection_assets import definitions, partitions, real_material
from selection_assets.core import cost, embed, harness, parallel, ranking
from selection_assets.core import methods as methods_package
from selection_assets.core import pool as pool_io
from selection_assets.resources import ComputeResource, TrainResource
from selection_assets.definitions import build_assets
from selection_assets.partitions import Grid

FUNCTION = '''
def top(scores, budget):
    """Highest first."""
    return scores[:budget]  # ties: earlier row first
'''


def test_comments_docstrings_and_layout_keep_the_version_and_code_changes_it():
    same = FUNCTION.replace('    """Highest first."""\n', "").replace("  # ties: earlier row first", "")
    same = same.replace("scores[:budget]", "scores[ : budget ]") + "\n# a trailing comment\n"
    assert _shared.behaviour(same) == _shared.behaviour(FUNCTION)
    assert _shared.behaviour(FUNCTION.replace("[:budget]", "[-budget:]")) != _shared.behaviour(FUNCTION)
    assert _shared.behaviour(FUNCTION.replace("budget]", "budget + 0]")) != _shared.behaviour(FUNCTION)


def _versions(keys: list[str]) -> dict[str, str]:
    assets = {key: a for a in build_assets(Grid((100, 200), (50,))) for key in a.keys}
    return {key: assets[AssetKey.from_user_string(key)].get_asset_spec(AssetKey.from_user_string(key)).code_version
            for key in keys}


def test_a_change_to_shared_method_code_changes_every_method_score_and_selection(monkeypatch):
    keys = ["random/scores", "random/selection", "rds_plus/scores", "rds_plus/selection"]
    before = _versions(keys)
    original = inspect.getsource

    def with_shared_code_changed(obj):
        text = original(obj)
        return text + "\nTIE_BREAK = 'later row first'\n" if obj is methods_package else text

    monkeypatch.setattr(_shared.inspect, "getsource", with_shared_code_changed)
    after = _versions(keys)
    assert all(after[key] != before[key] for key in keys), (before, after)


def test_adding_a_method_or_changing_another_ones_entry_leaves_a_methods_versions(monkeypatch):
    keys = ["random/scores", "random/selection", "rds_plus/scores", "rds_plus/selection"]
    before = _versions(keys)
    original_source, original_registry = inspect.getsource, definitions.registry
    line = "    targeted = frozenset({Need.EMBEDDINGS, Need.QUERIES})\n"

    def with_a_new_catalogue_line(obj):
        text = original_source(obj)
        if obj is not methods_package:
            return text
        assert line in text
        return text.replace(line, "    listed_later = 'a new method'\n" + line)

    def with_entries_changed(**rds_plus):
        def registry():
            specs = original_registry()
            specs["rds_plus_mean"] = dataclasses.replace(specs["rds_plus_mean"], space="last_token")
            specs["rds_plus"] = dataclasses.replace(specs["rds_plus"], **rds_plus)
            return specs
        return registry

    monkeypatch.setattr(_shared.inspect, "getsource", with_a_new_catalogue_line)
    monkeypatch.setattr(definitions, "registry", with_entries_changed())
    assert _versions(keys) == before
    # a method's own entry is in its versions
    monkeypatch.setattr(definitions, "registry", with_entries_changed(space="mean"))
    after = _versions(keys)
    assert after["rds_plus/scores"] != before["rds_plus/scores"]
    assert after["rds_plus/selection"] != before["rds_plus/selection"]
    assert after["random/scores"] == before["random/scores"]


# code that decides a step's output without living in a module its version named whole (each was
# once missing): changing it must make the listed assets stale
DECIDING_CODE = [
    (ranking, ["random/selection", "rds_plus/selection"]),
    (TrainResource.settings, ["random/finetuned", "kcenter_diverseevol/scores"]),
    (TrainResource.less_settings, ["less_warmup"]),
    (ComputeResource.resolved_dtype, ["ring_embeddings_position_weighted", "query_embeddings_position_weighted",
                                      "ring_answer_losses", "kcenter_diverseevol/scores"]),
    (embeddings.embedder, ["ring_embeddings_mean", "query_embeddings_encoder", "ring_embeddings_less_features"]),
    (pool_io.read_source_slice, ["ring_records", "less_warmup", "tokenizer"]),
    (models._pool_texts, ["tokenizer"]),
    (scores._deita_scores, ["deita/scores"]),
    (scores.scoring_inputs, ["random/scores", "rds_plus/scores"]),
    (scores._reward_scores, ["instructmining/scores"]),
    (harness._query, ["eval_tasks"]),
    (real_material.pool_source, ["source_pool"]),
    (reports.comparison_markdown, ["comparison_report"]),
    (cost, ["random/eval_report"]),
    (pool_io.pool_frame, ["random/scores", "rds_plus/scores", "instructmining/scores"]),
    (pool_io.embedding_blocks, ["rds_plus/scores", "kcenter/scores"]),
    (pool_io.messages, ["instructmining/scores", "kcenter_diverseevol/scores"]),
    (parallel.ordered_map, ["source_pool", "ring_records", "ring_token_counts"]),
    (partitions.ring_bounds, ["ring_records"]),
    (embed.length_buckets, ["ring_answer_losses", "random/eval_report", "eval_report_base"]),
    (scores.method_selection_cost, ["less/eval_report"]),
]


@pytest.mark.parametrize("code, keys", DECIDING_CODE, ids=lambda item: getattr(item, "__qualname__", None))
def test_a_change_to_code_that_decides_an_output_changes_its_assets_versions(monkeypatch, code, keys):
    before = _versions(keys)
    original = inspect.getsource

    def with_code_changed(obj):
        return textwrap.dedent(original(obj)) + "\nCHANGED_BY_THE_TEST = True\n" if obj is code else original(obj)

    monkeypatch.setattr(_shared.inspect, "getsource", with_code_changed)
    after = _versions(keys)
    assert [key for key in keys if after[key] == before[key]] == []


@pytest.mark.parametrize("resource, field, value, keys", [
    (TrainResource, "learning_rate", 1e-3, ["random/finetuned", "less_warmup"]),
    (TrainResource, "less_projection_dim", 512, ["less_warmup"]),
    (ComputeResource, "embed_dtype", "bfloat16", ["ring_embeddings_position_weighted", "ring_answer_losses"]),
    (ComputeResource, "similarity_dtype", "bfloat16", ["rds_plus/scores", "less/scores"]),
])
def test_a_changed_resource_default_changes_the_versions_of_the_steps_it_decides(monkeypatch, resource, field,
                                                                                  value, keys):
    unrelated = ["random/selection", "source_pool"]
    before = _versions(keys + unrelated)
    monkeypatch.setattr(resource.model_fields[field], "default", value)
    after = _versions(keys + unrelated)
    assert [key for key in keys if after[key] == before[key]] == []
    assert [key for key in unrelated if after[key] != before[key]] == []
