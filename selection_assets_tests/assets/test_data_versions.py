"""Content data versions (`data_versions.content_version`): what a step wrote, measured seconds left out."""

from selection_assets.assets.data_versions import content_version
from selection_assets.core import store


def test_a_content_version_follows_the_bytes_and_the_record_but_not_its_seconds(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01\x02")
    record = {"parameters": 2, "pretrain": {"train_loss": 1.5, "seconds": 3.0}}
    version = content_version(model, record=record)
    assert content_version(model).value == store.content_digest(model)  # one path alone: its digest
    assert content_version(model, record={**record, "pretrain": {"train_loss": 1.5, "seconds": 9.0}}) == version
    assert content_version(model, record={**record, "pretrain": {"train_loss": 1.25, "seconds": 3.0}}) != version
    assert content_version(record=record) not in (version, content_version(model))
    (model / "weights.bin").write_bytes(b"\x01\x03")
    assert content_version(model, record=record) != version
