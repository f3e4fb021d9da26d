"""Parted Parquet tables (core/store.py): parts written in any order by any process, read back in
part order whole, in batches or by row range, so a ring's memory stays at one chunk whatever its
length."""

import hashlib

import pandas as pd
import pytest

from selection_assets.core import pool as pool_io
from selection_assets.core import records, store
from selection_assets.core.keys import Ring


def _kept(ids: list[str], clean) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "source": "s", "messages": "[]", "clean": pd.array(clean, dtype="boolean"),
                         "noise": None, "source_index": range(len(ids))})


def _parts(directory, frames) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, frame in frames:
        store.write_part(directory, index, store.arrow_table(frame, records.KEPT_SCHEMA))


def test_parts_written_in_any_order_read_back_in_part_order_with_nullable_labels(tmp_path):
    _parts(tmp_path / "kept", [(2, _kept(["c"], [True]).assign(noise="junk")),  # workers finish in any order
                               (0, _kept(["a", "b"], [None, None])),  # a part without a label types `clean` null alone
                               (1, _kept([], []))])
    back = store.read_parts(tmp_path / "kept").to_pandas()
    assert back["id"].tolist() == ["a", "b", "c"] and store.parts_rows(tmp_path / "kept") == 3
    assert str(back["clean"].dtype) == "boolean" and back["clean"].isna().tolist() == [True, True, False]
    assert back["noise"].tolist()[2] == "junk"
    assert [b.num_rows for b in store.iter_part_batches(tmp_path / "kept", 1, ["id"])] == [1, 1, 1]
    with pytest.raises(FileNotFoundError, match="no Parquet parts"):
        store.read_parts(tmp_path / "never-written")


def test_row_ranges_across_parts_equal_slices_of_the_whole(tmp_path):
    ids = [f"ex-{i}" for i in range(23)]
    # parts of 5, 5, 0, 5, 5, 3 rows
    pieces = [ids[0:5], ids[5:10], [], ids[10:15], ids[15:20], ids[20:23]]
    _parts(tmp_path / "kept", [(i, _kept(p, [True] * len(p))) for i, p in enumerate(pieces)])
    rows = store.ParquetRows(tmp_path / "kept", ["id"])
    assert len(rows) == 23
    for start, end in [(0, 23), (3, 12), (5, 10), (10, 15), (22, 23), (7, 7), (0, 4), (9, 6 + 9)]:
        assert rows.read(start, end).column("id").to_pylist() == ids[start:end]
    with pytest.raises(IndexError):
        rows.read(20, 24)


def test_ring_ids_digest_is_the_digest_of_every_id_joined(tmp_path):
    layout = store.Layout(tmp_path)
    ids = [f"ex-{i}" for i in range(10)]
    _parts(layout.ring_records(Ring(0, 10)), [(0, _kept(ids[:4], [True] * 4)), (1, _kept(ids[4:], [True] * 6))])
    assert pool_io.ring_ids_digest(layout, Ring(0, 10), batch_rows=3) == hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _tree(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_content_digest_moves_with_any_byte_or_name_and_only_with_them(tmp_path):
    files = {"a.json": b"{}", "nested/b.bin": bytes(range(256)) * 5000}
    digest = store.content_digest(_tree(tmp_path / "one", files))
    assert store.content_digest(_tree(tmp_path / "two", files)) == digest  # where it lies does not count
    restated = hashlib.sha256()  # the plain restatement: names in sorted order, each with its bytes' hash
    for name in sorted(files):
        restated.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    assert digest == restated.hexdigest()
    flipped = {**files, "nested/b.bin": files["nested/b.bin"][:-1] + b"\x00"}
    renamed = {"a.json": files["a.json"], "nested/c.bin": files["nested/b.bin"]}
    more = {**files, "empty": b""}
    others = {store.content_digest(_tree(tmp_path / name, tree))
              for name, tree in (("flipped", flipped), ("renamed", renamed), ("more", more))}
    assert len(others) == 3 and digest not in others
    # a file alone is digested under the empty name
    assert store.content_digest(tmp_path / "one" / "a.json") == hashlib.sha256(
        f"\0{hashlib.sha256(b'{}').hexdigest()}\n".encode()).hexdigest()
    with pytest.raises(FileNotFoundError, match="nothing written"):
        store.content_digest(tmp_path / "missing")


def test_replacing_a_directory_never_leaves_it_absent_or_mixed(tmp_path):
    """A reader polling while a directory is replaced over and over finds one whole version each time
    (the old replace removed the old version before renaming the new one: a window with nothing)."""
    import threading

    final = tmp_path / "asset"
    seen, stop = [], threading.Event()

    def write_version(number: int) -> None:
        work = store.temp_dir_beside(final)
        for name in ("a", "b"):
            (work / name).write_text(str(number))
        store.replace_dir(work, final)

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(((final / "a").read_text(), (final / "b").read_text()))
            except FileNotFoundError:
                seen.append(None)

    write_version(0)
    reader = threading.Thread(target=poll)
    reader.start()
    for number in range(1, 300):
        write_version(number)
    stop.set()
    reader.join()
    assert seen and None not in seen
    assert all(a == b or int(b) > int(a) for a, b in seen)  # b read after a: same or newer version
    assert (final / "a").read_text() == "299"
    assert [p.name for p in tmp_path.iterdir()] == ["asset"]  # old versions removed


def test_writes_flush_the_file_and_its_directory_before_and_after_the_rename(tmp_path, monkeypatch):
    import os

    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                  real_fsync(fd)))
    path = store.write_json({"x": 1}, tmp_path / "out" / "report.json")
    assert flushed[0].startswith(str(path.parent / ".report.json."))  # the temporary file, whole
    assert flushed[1] == str(path.parent)  # the directory holding the new name
    flushed.clear()
    work = store.temp_dir_beside(tmp_path / "dir")
    (work / "sub").mkdir()
    (work / "sub" / "f").write_text("x")
    final = store.replace_dir(work, tmp_path / "dir")
    assert flushed[0] == str(work / "sub" / "f")
    assert {str(work), str(work / "sub")} <= set(flushed[1:-1]) and flushed[-1] == str(final.parent)


def test_storage_roots_holding_quotes_reach_duckdb_as_text_not_sql(tmp_path):
    import duckdb

    from selection_assets.core import ingest

    root = tmp_path / "it's; DROP VIEW x; --"
    lines = [b'{"id": "%d", "messages": []}' % i for i in range(40)]
    assert ingest.write_shuffled_source(iter(lines), root / "source.parquet", seed=1) == 40
    layout = store.Layout(root)
    store.write_parquet(pd.DataFrame({"example_id": ["1", "2"], "source": "s", "score": [0.5, 0.25]}),
                        layout.scores("o'brien", 2))
    store.refresh_scores_views(layout)
    with duckdb.connect(str(layout.scores_db), read_only=True) as con:
        assert con.execute("SELECT method, score FROM scores_long ORDER BY score").fetchall() == [
            ("o'brien", 0.25), ("o'brien", 0.5)]
