"""Embedding rings across processes (accelerate) and across partitions (single-run backfills)."""

import shutil

import numpy as np
from dagster import AssetKey, materialize

from selection_assets.core import embed
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.resources import ComputeResource, StorageResource
from selection_assets_tests.conftest import TINY_GRID


def test_two_processes_embed_the_same_vectors(lineage, tmp_path):
    _, root, resources, _ = lineage
    copy = tmp_path / "storage"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("checkpoints", "reports", "embeddings"))
    two = {**resources, "storage": StorageResource(root=str(copy)),
           "compute": ComputeResource(device="cpu", processes=2)}
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey("ring_embeddings_position_weighted")], partition_key="0-150",
                         resources=two)
    metadata = result.asset_materializations_for_node("ring_embeddings_position_weighted")[0].metadata
    assert metadata["shards"].value == 3 and metadata["resumed_shards"].value == 0
    multi = np.concatenate(list(embed.iter_shards(Layout(copy).ring_embeddings("0-150"))))
    single = np.concatenate(list(embed.iter_shards(Layout(root).ring_embeddings("0-150"))))
    np.testing.assert_allclose(multi.astype(np.float32), single.astype(np.float32), atol=2e-3)


def test_single_run_backfill_embeds_every_ring_with_one_model_load(lineage, tmp_path):
    _, root, resources, _ = lineage
    copy = tmp_path / "storage"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("checkpoints", "reports", "embeddings"))
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey("ring_embeddings_position_weighted"), AssetKey("ring_answer_losses")],
                         resources={**resources, "storage": StorageResource(root=str(copy))},
                         tags={"dagster/asset_partition_range_start": "0-150",
                               "dagster/asset_partition_range_end": "150-300"})
    assert result.success
    events = [event.materialization for event in result.get_asset_materialization_events()]
    materialized = {(m.asset_key.to_user_string(), m.partition) for m in events}
    assert materialized == {(a, r) for a in ("ring_embeddings_position_weighted", "ring_answer_losses") for r in TINY_GRID.rings()}
    for ring in TINY_GRID.rings():
        assert (Layout(copy).ring_embeddings(ring) / "manifest.json").exists()
        assert Layout(copy).ring_answer_losses(ring).exists()
