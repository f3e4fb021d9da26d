"""The byte-level fuzzer of the pool readers, shared by the fuzz test (core/test_reader_fuzz.py) and
the robustness benchmark (benchmarks/robustness.py): valid JSON lines, JSON arrays and Parquet files
mutated at the byte level (truncated, bytes inserted, deleted, flipped, duplicated, two files
spliced, re-encoded, hostile values written in), and the invariant checked on each input: nothing
crashes (a text file always reads; a Parquet file reads or is refused as unreadable), nothing is
lost (records in = kept + quarantined, and for text every byte of the file belongs to exactly one
record, in order, but whitespace, line breaks, array brackets and the commas between elements), and
every kept and quarantined row can be stored."""

import io
import json
import random
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from selection_assets.core import readers, records, store

CORPUS = Path(__file__).parent / "core" / "fuzz_corpus"  # every failing input found, replayed first
INPUTS = {".jsonl": 5000, ".json": 5000, ".parquet": 200}  # 10,200 a run (a Parquet read opens DuckDB: 50 ms)
LIMIT = 4096  # a small maximum record size, so that oversize records are common
SEPARATORS = {".jsonl": set(b" \t\r\n"), ".json": set(b" \t\r\n[],")}
HOSTILE = [b'"\\ud83d"', b"9" * 5000, b"[" * 3000, b"\x00", b"\xff\xfe", b'"\\', b"\xef\xbb\xbf", b"\r\n",
           b'{"id": 1e999}', b"x" * (LIMIT + 10), b"]", b"}", b"[", b"{", b",", b'"']


def record(rng: random.Random, index: int) -> dict:
    return {"id": rng.choice([f"r{index}", index, f"r{index % 5}"]), "source": rng.choice(["a", "b"]),
            "messages": [{"role": "user", "content": "question " + "é" * rng.randrange(3) + "x" * rng.randrange(40)},
                         {"role": "assistant", "content": f"answer {index}"}]}


def valid_file(rng: random.Random, suffix: str) -> bytes:
    rows = [record(rng, i) for i in range(rng.randrange(1, 12))]
    if suffix == ".jsonl":
        return b"".join(json.dumps(r, ensure_ascii=rng.random() < 0.5).encode() + rng.choice([b"\n", b"\r\n"])
                        for r in rows)
    indent = rng.choice([None, 1, 2])
    return json.dumps(rows, indent=indent, ensure_ascii=rng.random() < 0.5).encode()


def mutated(rng: random.Random, data: bytes, other: bytes) -> bytes:
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(9)
        at = rng.randrange(len(data) + 1)
        if kind == 0:
            data = data[:at]
        elif kind == 1:
            data = data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6))) + data[at:]
        elif kind == 2:
            data = data[:at] + data[at + rng.randrange(1, 40):]
        elif kind == 3 and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif kind == 4:
            span = data[at:at + rng.randrange(1, 60)]
            data = data[:at] + span + span + data[at + len(span):]
        elif kind == 5:
            data = data[:at] + other[rng.randrange(len(other) + 1):]
        elif kind == 6:
            data = rng.choice([b"\xef\xbb\xbf" + data, data.decode("utf-8", "replace").encode("utf-16"),
                               data.decode("utf-8", "replace").encode("latin-1", "replace")])
        else:
            data = data[:at] + rng.choice(HOSTILE) + data[at:]
    return data


def parquet_file(rng: random.Random) -> bytes:
    rows = [record(rng, i) for i in range(rng.randrange(1, 12))]
    table = pa.table({"id": [str(r["id"]) for r in rows], "messages": [json.dumps(r["messages"]) for r in rows]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_checked(path: Path) -> list[bytes]:
    """The raw records of one input file, after checking that reading it keeps the invariant."""
    suffix = path.suffix
    try:
        raw = list(readers.iter_raw_records(str(path), chunk_bytes=97, max_record_bytes=LIMIT))
    except ValueError as error:
        assert suffix == ".parquet" and "not a readable Parquet file" in str(error), error
        return []
    if suffix in SEPARATORS:
        data, position = path.read_bytes(), 0
        if suffix == ".json" and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            data = data.removeprefix(b"\xef\xbb\xbf")  # an array's byte-order mark opens the file, in no record
        for record in raw:
            found = readers.read_oversize(record)
            piece = found[2] if found else record
            at = data.find(piece, position)
            assert at >= 0, f"record {record[:60]!r} is not in the file after byte {position}"
            assert set(data[position:at]) <= SEPARATORS[suffix], f"bytes {data[position:at][:60]!r} are in no record"
            position = at + (found[0] if found else len(record))
        assert set(data[position:]) <= SEPARATORS[suffix], f"bytes {data[position:][:60]!r} are in no record"
    return raw


def validate_and_store(raw: list[bytes]) -> None:
    """Validation of the records of many inputs at once: each is kept or quarantined, and both
    tables can be stored as a ring stores them."""
    result = records.validate_raw(raw, range(len(raw)), [-1] * len(raw))
    assert sorted([*result.kept["source_index"], *result.quarantined["source_index"]]) == list(range(len(raw)))
    store.arrow_table(result.kept, records.KEPT_SCHEMA)
    store.arrow_table(result.quarantined, records.QUARANTINE_SCHEMA)


def check(path: Path) -> None:
    """The invariant, on one input file."""
    validate_and_store(read_checked(path))


def inputs(seed: int):
    rng = random.Random(seed)
    for suffix, count in INPUTS.items():
        for index in range(count):
            if suffix == ".parquet":
                data = mutated(rng, parquet_file(rng), parquet_file(rng)) if rng.random() < 0.8 else parquet_file(rng)
            else:
                data = mutated(rng, valid_file(rng, suffix), valid_file(rng, suffix))
            yield f"{index}{suffix}", data


def keep(data: bytes, suffix: str) -> Path:
    """Add a failing input to the regression corpus, named by its checksum; its path."""
    CORPUS.mkdir(exist_ok=True)
    kept = CORPUS / f"{zlib.crc32(data):08x}{suffix}"
    kept.write_bytes(data)
    return kept
