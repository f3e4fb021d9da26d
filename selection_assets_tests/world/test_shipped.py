"""The default world's pre-trained model ships with the package, so the demo starts from the same
model on every machine: the tokenizer this machine trains for the default world must be the one the
shipped model was made with (else every machine but the one that made it would pre-train another
world), the base_model asset must start from the shipped model then, and pre-train for any other."""

from dagster import AssetKey, materialize

from selection_assets.core import store
from selection_assets.definitions import build_assets
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource, WorldResource
from selection_assets.world import models as world_models


def test_the_default_world_starts_from_the_shipped_model_and_another_world_does_not(tmp_path):
    record = store.read_json(world_models.SHIPPED / world_models.SHIPPED_RECORD)
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(), "world": WorldResource(), "training": TrainResource()}
    assets = build_assets(Grid((1000, 4000), (100, 400)))
    materialize(assets, selection=[AssetKey(k) for k in ("source_pool", "tokenizer", "base_model")],
                resources=resources)
    layout = store.Layout(tmp_path / "storage")
    assert store.content_digest(layout.tokenizer_dir) == record["identity"]["tokenizer"]  # trained here, the same
    reference = store.read_json(layout.base_model_ref)
    assert reference["shipped"] == record["made_on"] and reference["pretrain"] == record["pretrain"]
    assert store.content_digest(layout.base_model_dir) == store.content_digest(world_models.SHIPPED / "model")
    # any change to what decides the pre-trained model (here its seed) is another world
    identity = {**record["identity"], "settings": {**record["identity"]["settings"], "seed": 1}}
    assert world_models.shipped_model(identity) is None and world_models.shipped_model(record["identity"]) is not None
