"""Ingestion fuzz: a seeded generator writes over 10,000 malformed records (invalid UTF-8, cut-off
records, NUL bytes, deep nesting, a huge line, wrong types, unknown roles, empty conversations,
duplicate ids, BOMs and CRLF endings) among valid ones, as JSON lines and as a JSON array; every
record that comes in is kept or quarantined with a reason and its exact bytes."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from selection_assets.core import ingest, readers, records, store
from selection_assets_tests.conftest import first_occurrence

N_MALFORMED = 10_500


def _valid(rng: random.Random, index: int) -> dict:
    turns = [{"role": "user", "content": f"question {index} " + "x" * rng.randrange(20)},
             {"role": "assistant", "content": f"answer {index}"}]
    return {"id": f"ok-{index}", "source": rng.choice(["a", "b"]), "messages": turns, "extra_field": index}


def _malformed(rng: random.Random, index: int) -> tuple[bytes, str]:
    """One malformed record's bytes and the words its quarantine reason must contain."""
    good = json.dumps(_valid(rng, index)).encode()
    kind = rng.randrange(12)
    if kind == 0:
        cut = rng.randrange(1, len(good) - 1)
        return good[:cut] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE])]) + good[cut:], "invalid UTF-8"
    if kind == 1:
        return good[: rng.randrange(1, len(good) - 1)], "not valid JSON"
    if kind == 2:
        return good.replace(b"question", b"ques\x00tion", 1), "not valid JSON"
    if kind == 3:
        depth = rng.choice([2_000, 20_000, 100_000])
        return b"[" * depth + b"]" * depth, "nested too deeply"
    if kind == 4:
        record = _valid(rng, index)
        record["messages"][0]["content"] = rng.choice([7, None, ["list"], {"a": 1}, 2.5, True])
        return json.dumps(record).encode(), "not text"
    if kind == 5:
        record = _valid(rng, index)
        record["messages"][0]["role"] = rng.choice(["robot", "", "USER!", 3])
        return json.dumps(record).encode(), "unknown role"
    if kind == 6:
        return json.dumps({"id": f"e-{index}", "messages": []}).encode(), "no turns"
    if kind == 7:
        return json.dumps(rng.choice([[1, 2], "text", 42, None, True])).encode(), "not an object"
    if kind == 8:
        record = _valid(rng, index)
        record["messages"] = rng.choice(["oops", {"role": "user"}, 5])
        return json.dumps(record).encode(), "not a list"
    if kind == 9:
        record = _valid(rng, index)
        record[rng.choice(["clean", "noise"])] = {"nested": [1, 2]}
        return json.dumps(record).encode(), "is not"
    if kind == 10:
        record = _valid(rng, index)
        record["messages"] = record["messages"][:1]
        return json.dumps(record).encode(), "last turn is not from the assistant"
    garbage = bytes(rng.choice(range(33, 256)) for _ in range(rng.randrange(1, 40)))  # no blank, CR or LF
    return garbage, ""


def _corpus(seed: int):
    """Lines of the fuzz file: (bytes, expected reason or None for a kept record)."""
    rng = random.Random(seed)
    lines = []
    for index in range(N_MALFORMED + 2_000):
        if index % 6 == 0:
            good = json.dumps(_valid(rng, index)).encode()
            variant = rng.randrange(3)
            lines.append(((b"\xef\xbb\xbf" + good) if variant == 0 else good, None))
        else:
            lines.append(_malformed(rng, index))
    duplicate = json.dumps(_valid(rng, 0)).encode()  # id ok-0 again
    lines.append((duplicate, "duplicate id"))
    huge = _valid(rng, 10**6)
    huge["messages"][1]["content"] = "y" * 30_000_000  # a 30 MB line
    lines.append((json.dumps(huge).encode(), None))
    return lines


def _ingest(path, tmp_path):
    out = tmp_path / "source.parquet"
    count = ingest.write_shuffled_source(readers.iter_raw_records(str(path)), out, seed=3)
    source = pd.read_parquet(out)
    result = records.validate_raw(source["raw"], source["position"], source["duplicate_of"])
    return count, source, result


def test_every_fuzzed_jsonl_record_is_kept_or_quarantined_with_its_bytes(tmp_path):
    lines = _corpus(seed=11)
    malformed = sum(reason is not None for _, reason in lines)
    assert malformed >= 10_000
    path = tmp_path / "pool.jsonl"
    with open(path, "wb") as handle:
        for index, (raw, _) in enumerate(lines):
            handle.write(raw + (b"\r\n" if index % 5 == 0 else b"\n"))
        handle.write(b'{"id": "cut-at-the-end", "messages": [{"role": "us')  # a file cut off mid-record
    count, source, result = _ingest(path, tmp_path)
    assert count == len(lines) + 1 == result.n_in == len(result.kept) + len(result.quarantined)
    by_bytes = {raw: reason for raw, reason in lines}
    for raw, reason in zip(result.quarantined["raw"], result.quarantined["reason"]):
        assert reason, "every quarantined record says why"
        if "duplicate id 'ok-0'" in reason:  # whichever of the two comes later in the shuffle
            continue
        expected = by_bytes.get(raw, "not valid JSON")  # the cut-off last record is not in `lines`
        assert expected is not None and expected in reason, (raw[:80], reason)
    assert result.quarantined["reason"].str.contains("duplicate id 'ok-0'").sum() == 1
    kept_ids = set(result.kept["id"])
    assert kept_ids == {json.loads(raw.removeprefix(b"\xef\xbb\xbf"))["id"] for raw, reason in lines
                        if reason is None}
    assert len(result.kept.loc[result.kept["id"] == "ok-1000000", "messages"].iloc[0]) > 30_000_000


def test_a_json_array_with_bad_elements_and_a_cut_off_end_loses_nothing(tmp_path):
    rng = random.Random(5)
    elements = [json.dumps(_valid(rng, i)).encode() if i % 3 else _malformed(rng, i)[0] for i in range(3000)]
    path = tmp_path / "pool.json"
    path.write_bytes(b"\xef\xbb\xbf[\r\n" + b",\r\n".join(elements) + b',\n{"id": "cut", "messa')
    count, _, result = _ingest(path, tmp_path)
    assert count == len(result.kept) + len(result.quarantined) >= len(elements) // 2
    assert b'{"id": "cut", "messa' in set(result.quarantined["raw"])  # the cut-off end is a record


def _records_of(tmp_path, content: bytes, name: str = "pool.json") -> tuple[list[str], int]:
    """The ids kept from a JSON file of `content`, and how many records were quarantined."""
    path = tmp_path / name
    path.write_bytes(content)
    count, _, result = _ingest(path, tmp_path)
    assert count == len(result.kept) + len(result.quarantined)
    return sorted(result.kept["id"]), len(result.quarantined)


def _element(name: str) -> bytes:
    return json.dumps({"id": name, "messages": [{"role": "user", "content": f"q {name}"},
                                                {"role": "assistant", "content": f"a {name}"}]}).encode()


def test_a_bad_element_a_stray_byte_or_a_second_array_loses_no_element_after_it(tmp_path):
    a, b, c, d, e, f = (_element(name) for name in "abcdef")
    # one element with bad syntax is one quarantined record; the elements after it are read
    assert _records_of(tmp_path, b"[" + b", ".join([a, b, c, b"{bad", d, e, f]) + b"]") == (list("abcdef"), 1)
    # a second array after the first is read on
    assert _records_of(tmp_path, b"[" + b", ".join([a, b, c]) + b"]\n[" + b", ".join([d, e, f]) + b"]") == (
        list("abcdef"), 0)
    # a stray byte between elements is a record of its own, quarantined
    assert _records_of(tmp_path, b"[" + a + b", " + b + b" x, " + c + b"]") == (list("abc"), 1)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json.bz2", ".jsonl.zst"])
def test_a_compressed_pool_is_read_as_a_stream(tmp_path, suffix):
    import pyarrow as pa

    lines = [_element(name) for name in "abcdef"]
    content = b"\n".join(lines) if suffix.startswith(".jsonl") else b"[" + b",".join(lines) + b"]"
    with pa.output_stream(str(tmp_path / f"pool{suffix}"), compression=readers.COMPRESSED[Path(suffix).suffix]) as out:
        out.write(content)
    assert list(readers.iter_raw_records(str(tmp_path / f"pool{suffix}"))) == lines


def test_hostile_values_are_quarantined_naming_the_record_and_the_reason(tmp_path):
    big = b'{"id": ' + b"9" * 5000 + b', "messages": []}'
    surrogate = _element("s").replace(b"q s", b"q \\ud83d")
    huge = _element("h").replace(b"q h", b"q " + b"h" * 8000)
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\n".join([_element("a"), big, surrogate, huge]))
    raw = list(readers.iter_raw_records(str(path), max_record_bytes=6000))
    result = records.validate_raw(raw, range(4), [-1] * 4)
    assert list(result.kept["id"]) == ["a"]
    reasons = dict(zip(result.quarantined["source_index"], result.quarantined["reason"]))
    assert "a value cannot be read (Exceeds the limit (4300 digits)" in reasons[1]
    assert reasons[2] == "message 0 content holds a lone surrogate (U+D83D) at character 2"
    assert reasons[3].startswith("record of 8,1") and "over the maximum record size (6,000 bytes" in reasons[3]
    store.arrow_table(result.quarantined, records.QUARANTINE_SCHEMA)  # and the quarantine can be stored


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_source_has_no_records(tmp_path, content):
    path = tmp_path / "pool.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="0 records, fewer than the largest pool size 5"):
        ingest.write_shuffled_source(readers.iter_raw_records(str(path)), tmp_path / "s.parquet", 0, minimum=5)
    assert not list(tmp_path.glob(".s.parquet.*")) and not (tmp_path / "s.parquet").exists()


def test_duplicate_ids_point_at_their_first_position_across_chunks(tmp_path):
    """DuckDB's resolution of repeated ids equals a plain pass over the shuffled order: ids repeated
    across chunk boundaries, numbers and strings, a lone surrogate, and records without an id."""
    rng = random.Random(5)
    ids = [rng.choice(["a", "b", "\ud800", 7, "7", "", None, f"u{index}"]) for index in range(600)]
    lines = [json.dumps({"id": value, "messages": [{"role": "user", "content": "q"},
                                                   {"role": "assistant", "content": "a"}]}).encode()
             for value in ids]
    out = tmp_path / "source.parquet"
    assert ingest.write_shuffled_source(iter(lines), out, seed=9, chunk_records=64) == len(lines)
    source = pd.read_parquet(out)
    spread = tmp_path / "spread.parquet"  # ids parsed by two worker processes: the same table
    assert ingest.write_shuffled_source(iter(lines), spread, seed=9, chunk_records=64, workers=2) == len(lines)
    pd.testing.assert_frame_equal(pd.read_parquet(spread), source)
    assert source["position"].tolist() == list(range(len(lines)))
    expected = first_occurrence(records.declared_ids(list(source["raw"])))
    assert source["duplicate_of"].tolist() == expected
    assert sum(d >= 0 for d in expected) > 300  # most records repeat an id
