"""Streaming ingestion of a pool source into the shuffled source table every pool size reads from.

Two passes with memory bounded by a chunk of records, not by the source: the raw records are
written in arrival order to a temporary Parquet file (with each record's declared id); then a seeded
permutation assigns pool positions (8 bytes a record: the only thing held that grows with the pool),
and DuckDB resolves duplicate ids in position order and writes the table sorted by position
(spilling to disk past its memory limit). Raw records stay
bytes, exactly as they came, so a record that cannot be decoded or parsed is still carried to the
quarantine with its reason.
"""

from __future__ import annotations

import itertools
import shutil
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selection_assets.core import parallel, records, store

CHUNK_RECORDS = 10_000
DUCKDB_MEMORY_LIMIT = "512MB"
RAW_SCHEMA = pa.schema([("file_index", pa.int64()), ("raw", pa.binary()), ("declared_id", pa.binary())])


def write_shuffled_source(raw_records: Iterable[bytes], out_path: Path, seed: int, *, minimum: int = 0,
                          chunk_records: int = CHUNK_RECORDS, workers: int = 1) -> int:
    """Write `raw_records` as the source table (position, file_index, raw, duplicate_of), in a seeded
    shuffle; returns how many records came in. Each chunk's declared ids are parsed over `workers`
    processes (`parallel.ordered_map`; the same table whatever their number). Raises ValueError when
    fewer than `minimum` arrive (nothing is written then)."""
    out_path = Path(out_path)
    work = store.temp_dir_beside(out_path)
    try:
        arrival = work / "arrival.parquet"
        count = 0
        in_flight: deque[list[bytes]] = deque()  # chunks sent for their ids, in order, until written

        def chunks() -> Iterator[list[bytes]]:
            arriving = iter(raw_records)
            while chunk := list(itertools.islice(arriving, chunk_records)):
                in_flight.append(chunk)
                yield chunk

        with pq.ParquetWriter(arrival, RAW_SCHEMA) as writer:
            for ids in parallel.ordered_map(declared_id_bytes, chunks(), workers):
                count = _write_chunk(writer, in_flight.popleft(), ids, count)
        if count < minimum:
            raise ValueError(f"the source has {count} records, fewer than the largest pool size {minimum}")
        order = np.random.default_rng(seed).permutation(count)  # position p holds arrival record order[p]
        positions = pa.table({"position": np.arange(count, dtype=np.int64), "file_index": order.astype(np.int64)})
        del order
        sorted_path = work / "source.parquet"
        # paths travel as parameters and settings, never pasted into SQL: a root may hold any character
        with duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT,
                                    "temp_directory": str(work / "spill")}) as con:
            con.register("positions", positions)
            # a record whose id an earlier position declared points at the first such position
            con.sql("""
                WITH placed AS (SELECT p.position, a.declared_id FROM positions p
                                JOIN read_parquet($arrival) a USING (file_index)),
                     duplicates AS (SELECT position, min(position) OVER (PARTITION BY declared_id) AS first
                                    FROM placed WHERE declared_id IS NOT NULL)
                SELECT p.position, p.file_index, a.raw,
                       CASE WHEN d.first < p.position THEN d.first ELSE -1 END::BIGINT AS duplicate_of
                FROM positions p JOIN read_parquet($arrival) a USING (file_index)
                LEFT JOIN duplicates d USING (position)
                ORDER BY p.position""", params={"arrival": str(arrival)}
                    ).write_parquet(str(sorted_path), row_group_size=chunk_records)
        store.fsync_file(sorted_path)
        store.move_into_place(sorted_path, out_path)
        return count
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_chunk(writer: pq.ParquetWriter, chunk: list[bytes], ids: list[bytes | None], start: int) -> int:
    """Append `chunk` (arrival indices from `start`) with each record's declared id; the next index."""
    writer.write_table(pa.table({"file_index": np.arange(start, start + len(chunk), dtype=np.int64),
                                 "raw": pa.array(chunk, type=pa.binary()),
                                 "declared_id": pa.array(ids, type=pa.binary())}, schema=RAW_SCHEMA))
    return start + len(chunk)


def declared_id_bytes(chunk: list[bytes]) -> list[bytes | None]:
    """The id each raw record of `chunk` declares as UTF-8 bytes (None: unparseable or none); a lone
    surrogate (a JSON "\\ud800" escape) is kept, not refused."""
    return [None if value is None else value.encode("utf-8", "surrogatepass")
            for value in records.declared_ids(chunk)]
