"""Chunked Parquet writing and row-range reading (core/store.py), which keep a ring's memory at one
chunk whatever its length."""

import hashlib

import pandas as pd
import pytest

from selection_assets.core import pool as pool_io
from selection_assets.core import records, store


def _kept(ids: list[str], clean) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "source": "s", "messages": "[]", "clean": pd.array(clean, dtype="boolean"),
                         "noise": None, "source_index": range(len(ids))})


def test_appender_writes_every_chunk_with_one_schema_and_keeps_nullable_labels(tmp_path):
    path = tmp_path / "kept.parquet"
    with store.ParquetAppender(path, records.KEPT_SCHEMA) as kept:
        kept.write(_kept(["a", "b"], [None, None]))  # a chunk without a label would type `clean` null alone
        kept.write(_kept([], []))
        kept.write(_kept(["c"], [True]).assign(noise="junk"))
    back = pd.read_parquet(path)
    assert kept.rows == 3
    assert back["id"].tolist() == ["a", "b", "c"]
    assert str(back["clean"].dtype) == "boolean" and back["clean"].isna().tolist() == [True, True, False]
    assert back["noise"].tolist()[2] == "junk"


def test_appender_leaves_no_file_when_its_block_fails(tmp_path):
    path = tmp_path / "kept.parquet"
    with pytest.raises(RuntimeError):
        with store.ParquetAppender(path, records.KEPT_SCHEMA) as kept:
            kept.write(_kept(["a"], [True]))
            raise RuntimeError("killed mid-ring")
    assert list(tmp_path.iterdir()) == []


def test_row_ranges_across_row_groups_equal_slices_of_the_whole(tmp_path):
    path = tmp_path / "kept.parquet"
    ids = [f"ex-{i}" for i in range(23)]
    with store.ParquetAppender(path, records.KEPT_SCHEMA) as kept:
        for begin in range(0, 23, 5):  # row groups of 5, 5, 5, 5, 3
            kept.write(_kept(ids[begin:begin + 5], [True] * len(ids[begin:begin + 5])))
    rows = store.ParquetRows(path, ["id"])
    assert len(rows) == 23
    for start, end in [(0, 23), (3, 12), (5, 10), (22, 23), (7, 7), (0, 4), (9, 6 + 9)]:
        assert rows.read(start, end).column("id").to_pylist() == ids[start:end]
    with pytest.raises(IndexError):
        rows.read(20, 24)


def test_ring_ids_digest_is_the_digest_of_every_id_joined(tmp_path):
    layout = store.Layout(tmp_path)
    ids = [f"ex-{i}" for i in range(10)]
    layout.ring_records("0-10").parent.mkdir(parents=True, exist_ok=True)
    with store.ParquetAppender(layout.ring_records("0-10"), records.KEPT_SCHEMA) as kept:
        kept.write(_kept(ids, [True] * 10))
    assert pool_io.ring_ids_digest(layout, "0-10", batch_rows=3) == hashlib.sha256("\n".join(ids).encode()).hexdigest()
