"""Streaming ingestion of a pool source into the shuffled source table every pool size reads from.

Two passes with memory bounded by a chunk of records, not by the source: the raw records are
written in arrival order to a temporary Parquet file (with each record's declared id); then a seeded
permutation assigns pool positions, duplicate ids are resolved in position order, and DuckDB
writes the table sorted by position (spilling to disk past its memory limit). Raw records stay
bytes, exactly as they came, so a record that cannot be decoded or parsed is still carried to the
quarantine with its reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selection_assets.core import records, store

CHUNK_RECORDS = 10_000
DUCKDB_MEMORY_LIMIT = "512MB"
RAW_SCHEMA = pa.schema([("file_index", pa.int64()), ("raw", pa.binary())])


def write_shuffled_source(raw_records: Iterable[bytes], out_path: Path, seed: int, *, minimum: int = 0,
                          chunk_records: int = CHUNK_RECORDS) -> int:
    """Write `raw_records` as the source table (position, file_index, raw, duplicate_of), in a seeded
    shuffle; returns how many records came in. Raises ValueError when fewer than `minimum` arrive
    (nothing is written then)."""
    out_path = Path(out_path)
    work = store.temp_dir_beside(out_path)
    try:
        arrival = work / "arrival.parquet"
        declared: list[str | None] = []
        count = 0
        with pq.ParquetWriter(arrival, RAW_SCHEMA) as writer:
            chunk: list[bytes] = []
            for raw in raw_records:
                chunk.append(raw)
                if len(chunk) >= chunk_records:
                    count = _write_chunk(writer, chunk, count, declared)
                    chunk = []
            count = _write_chunk(writer, chunk, count, declared)
        if count < minimum:
            raise ValueError(f"the source has {count} records, fewer than the largest pool size {minimum}")
        order = np.random.default_rng(seed).permutation(count)  # position p holds arrival record order[p]
        duplicate_of = records.first_occurrence([declared[i] for i in order])
        del declared
        positions = pa.table({"position": np.arange(count, dtype=np.int64), "file_index": order.astype(np.int64),
                              "duplicate_of": np.asarray(duplicate_of, dtype=np.int64)})
        sorted_path = work / "source.parquet"
        with duckdb.connect() as con:
            con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory = '{work / 'spill'}'")
            con.register("positions", positions)
            con.execute(f"COPY (SELECT p.position, p.file_index, a.raw, p.duplicate_of FROM positions p "
                        f"JOIN read_parquet('{arrival}') a USING (file_index) ORDER BY p.position) "
                        f"TO '{sorted_path}' (FORMAT parquet, ROW_GROUP_SIZE {chunk_records})")
        sorted_path.replace(out_path)
        return count
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_chunk(writer: pq.ParquetWriter, chunk: list[bytes], start: int, declared: list[str | None]) -> int:
    if chunk:
        writer.write_table(pa.table({"file_index": np.arange(start, start + len(chunk), dtype=np.int64),
                                     "raw": pa.array(chunk, type=pa.binary())}, schema=RAW_SCHEMA))
        declared.extend(records.declared_ids(chunk))
    return start + len(chunk)
