"""Partition keys never change meaning: a pool size added to a materialised grid brings new rings
under new keys, only the missing partitions are materialised, and every pool holds each example of
its source positions exactly once."""

import json

import pandas as pd
from dagster import AssetKey, AssetSelection, DagsterInstance, materialize

from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.core.keys import Ring
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource
from selection_assets_tests.conftest import TINY_WORLD

RING_ASSETS, POOL_ASSETS = ["ring_records", "ring_token_counts"], ["pool_manifest"]


def _materialise_missing(grid: Grid, resources: dict, instance: DagsterInstance) -> dict[str, set[str]]:
    """Materialise the unmaterialised partitions of the pool views and the rings under them, as a
    backfill of missing partitions does; what was materialised, per asset."""
    assets = build_assets(grid)
    done: dict[str, set[str]] = {}
    upstream = AssetSelection.assets("pool_manifest").upstream().resolve(assets)
    unpartitioned = [k for k in upstream if k.to_user_string() not in RING_ASSETS + POOL_ASSETS]
    if not instance.get_latest_materialization_event(AssetKey("source_pool")):
        materialize(assets, selection=unpartitioned, instance=instance, resources=resources)
    for keys, partitions in ((RING_ASSETS, [r.key for r in grid.rings()]), (POOL_ASSETS, [str(p) for p in grid.pool_sizes])):
        for partition in partitions:
            missing = [k for k in keys if partition not in instance.get_materialized_partitions(AssetKey(k))]
            if missing:
                materialize(assets, selection=missing, partition_key=partition, instance=instance, resources=resources)
                for key in missing:
                    done.setdefault(key, set()).add(partition)
    return done


def test_a_pool_size_added_between_two_brings_new_rings_and_each_pool_holds_each_example_once(tmp_path):
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "data": DataResource(max_length=128),
                 "world": TINY_WORLD, "compute": ComputeResource(device="cpu"), "training": TrainResource()}
    instance = DagsterInstance.ephemeral()
    first = _materialise_missing(Grid((80, 160), (40,)), resources, instance)
    assert first == {"ring_records": {"0-80", "80-160"}, "ring_token_counts": {"0-80", "80-160"}, "pool_manifest": {"80", "160"}}

    second = _materialise_missing(Grid((80, 120, 160), (40,)), resources, instance)
    # only what the new size brings; ring "80-160" keeps its meaning and its files
    assert second == {"ring_records": {"80-120", "120-160"}, "ring_token_counts": {"80-120", "120-160"}, "pool_manifest": {"120"}}

    layout = Layout(tmp_path / "storage")
    for pool_size in (80, 120, 160):
        view = json.loads(layout.pool_manifest(pool_size).read_text())
        rings = [Ring.parse(key) for key in view["rings"]]
        assert rings[0].start == 0 and rings[-1].end == pool_size
        assert all(ring.end == after.start for ring, after in zip(rings, rings[1:])), rings
        kept = pd.concat([pd.read_parquet(layout.ring_records(r), columns=["id", "source_index"]) for r in rings])
        quarantined = sum(len(pd.read_parquet(layout.ring_quarantine(r))) for r in rings)
        assert kept["id"].is_unique and kept["source_index"].is_unique
        assert len(kept) + quarantined == pool_size == view["examples"] + view["quarantined"]
