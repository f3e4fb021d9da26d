"""A ring embedded by two accelerate processes equals the single-process embedding."""

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
    result = materialize(build_assets(TINY_GRID), selection=[AssetKey("pool_embeddings")], partition_key="150",
                         resources=two)
    metadata = result.asset_materializations_for_node("pool_embeddings")[0].metadata
    assert metadata["shards"].value == 3 and metadata["resumed_shards"].value == 0
    multi = np.concatenate(list(embed.iter_shards(Layout(copy).ring_embeddings("150"))))
    single = np.concatenate(list(embed.iter_shards(Layout(root).ring_embeddings("150"))))
    np.testing.assert_allclose(multi.astype(np.float32), single.astype(np.float32), atol=2e-3)
