"""Embedding rings across processes (accelerate) and across partitions (single-run backfills)."""

import shutil

import numpy as np
from dagster import AssetKey, materialize

from selection_assets.assets.embeddings import SPACES, _conversations
from selection_assets.core import embed, store
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.resources import ComputeResource, StorageResource
from selection_assets_tests.conftest import TINY_GRID

SPACE = SPACES["position_weighted"]


def _embedded(resources, root, compute: ComputeResource, ring: Ring = Ring(0, 150)) -> tuple[np.ndarray, dict]:
    """Embed `ring` of a copy of the lineage's storage `root` with `compute`: (vectors, asset metadata)."""
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey(SPACE.pool_asset)], partition_key=ring.key,
                         resources={**resources, "storage": StorageResource(root=str(root)), "compute": compute})
    metadata = result.asset_materializations_for_node(SPACE.pool_asset)[0].metadata
    return np.concatenate(list(embed.iter_shards(Layout(root).ring_embeddings(ring)))), metadata


def test_two_processes_embed_the_same_vectors_in_the_asked_precision(lineage, tmp_path):
    _, root, resources, _ = lineage
    copy = tmp_path / "storage"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("checkpoints", "reports", "embeddings"))
    multi, metadata = _embedded(resources, copy, ComputeResource(device="cpu", processes=2, embed_dtype="bfloat16"))
    assert metadata["shards"].value == 3 and metadata["resumed_shards"].value == 0
    # one process, the same precision, the same shards: the same bytes
    layout, bfloat16 = Layout(copy), ComputeResource(device="cpu", embed_dtype="bfloat16")
    run = SPACE.embedder(layout, bfloat16, resources["data"])[0]
    messages = store.ParquetRows(layout.ring_records(Ring(0, 150)), ["messages"])
    plan = embed.ShardPlan(len(messages), resources["data"].shard_size)
    single = np.concatenate([run(_conversations(messages, start, end)).astype(np.float16)
                             for _, start, end in plan.shards()])
    np.testing.assert_array_equal(multi, single)
    float32 = np.concatenate(list(embed.iter_shards(Layout(root).ring_embeddings(Ring(0, 150)))))
    assert (multi != float32).mean() > 0.1  # the workers did embed in bfloat16, not the default float32
    np.testing.assert_allclose(multi.astype(np.float32), float32.astype(np.float32), atol=3e-2)


def test_shards_of_another_precision_or_a_compiled_model_are_not_resumed(lineage, tmp_path):
    _, root, resources, _ = lineage
    copy = tmp_path / "storage"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("checkpoints", "reports"))
    float32 = np.concatenate(list(embed.iter_shards(Layout(root).ring_embeddings(Ring(0, 150)))))
    again, metadata = _embedded(resources, copy, ComputeResource(device="cpu"))
    assert metadata["resumed_shards"].value == 3 and np.array_equal(again, float32)
    compiled, metadata = _embedded(resources, copy, ComputeResource(device="cpu", embed_compile=True))
    assert metadata["resumed_shards"].value == 0  # re-embedded, not the eager shards kept
    np.testing.assert_allclose(compiled.astype(np.float32), float32.astype(np.float32), atol=1e-3)
    fingerprint = store.read_json(Layout(copy).ring_embeddings(Ring(0, 150)) / "fingerprint.json")
    assert fingerprint["numerics"] == {"dtype": "float32", "compiled": True}


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
    assert materialized == {(a, r.key) for a in ("ring_embeddings_position_weighted", "ring_answer_losses")
                            for r in TINY_GRID.rings()}
    for ring in TINY_GRID.rings():
        assert (Layout(copy).ring_embeddings(ring) / "manifest.json").exists()
        assert Layout(copy).ring_answer_losses(ring).exists()
