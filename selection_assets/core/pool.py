"""A pool (the union of its rings) in the storage layout: validating and counting a ring's records
from the shuffled source, and reading back examples with their labels and token counts, their
embeddings in row order, and the records of a selection."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from selection_assets.core import embed, parallel, records, store, tokenize
from selection_assets.core.store import Layout

POOL_COLUMNS = ["example_id", "source", "clean", "noise", "total_tokens", "answer_tokens", "ring"]
RING_CHUNK = 65536  # source rows validated and written at a time: a ring's memory is one chunk's
TOKENIZE_CHUNK = 8192  # conversations tokenised at a time
QUOTED = re.compile(r"'[^']*'")  # quoted values in quarantine reasons, left out when reasons are counted


def read_source_slice(layout: Layout, start: int, end: int) -> pd.DataFrame:
    """Rows of the shuffled source with pool positions in [start, end), in position order."""
    dataset = ds.dataset(layout.source_pool, format="parquet")
    position = ds.field("position")
    table = dataset.to_table(filter=(position >= start) & (position < end))
    return table.to_pandas().sort_values("position", kind="stable").reset_index(drop=True)


def iter_valid_source_messages(layout: Layout, end: int | None = None, rows: int = RING_CHUNK) -> Iterator[str]:
    """The messages (JSON text) of the valid records among the first `end` positions of the
    shuffled source (all of them without `end`), in position order, validated `rows` source rows at
    a time (memory stays at one chunk; repeats of an id are quarantined through the source's
    `duplicate_of`, whichever chunk the first one is in; the ring_records asset counts them)."""
    total = pq.ParquetFile(layout.source_pool).metadata.num_rows if end is None else end
    for begin in range(0, total, rows):
        yield from records.validate_source_slice(read_source_slice(layout, begin, min(begin + rows, total))).kept["messages"]


@dataclass(frozen=True)
class SliceValidator:
    """Validates source positions [start, end) of the storage at `layout`: rows read, then the kept
    and quarantined records as Arrow tables of the ring files' schemas. It reads its own slice and
    pickles as its layout, so a worker process does the reading, the validation and the conversion."""

    layout: Layout

    def __call__(self, bounds: tuple[int, int]) -> tuple[int, pa.Table, pa.Table]:
        source = read_source_slice(self.layout, *bounds)
        result = records.validate_source_slice(source)
        return (len(source), store.arrow_table(result.kept, records.KEPT_SCHEMA),
                store.arrow_table(result.quarantined, records.QUARANTINE_SCHEMA))


@dataclass
class RingRecords:
    """What validating a ring wrote: source rows read, records kept and quarantined, the kept ones
    per source, the quarantine reasons (quoted values left out, so alike reasons count together) and
    the first quarantined record."""

    read: int = 0
    kept: int = 0
    quarantined: int = 0
    per_source: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    first_quarantined: dict | None = None


def write_ring_records(layout: Layout, ring: str, start: int, end: int, workers: int,
                       chunk_rows: int = RING_CHUNK) -> RingRecords:
    """Validate source positions [start, end) `chunk_rows` at a time over `workers` processes
    (`parallel.ordered_map`) and write the ring's records and quarantine, each a row group per chunk.
    ValueError, and neither file, when kept + quarantined != rows read != end - start."""
    slices = [(begin, min(begin + chunk_rows, end)) for begin in range(start, end, chunk_rows)]
    summary = RingRecords()
    with store.ParquetAppender(layout.ring_records(ring), records.KEPT_SCHEMA) as kept, \
            store.ParquetAppender(layout.ring_quarantine(ring), records.QUARANTINE_SCHEMA) as quarantine:
        for rows, kept_rows, quarantined_rows in parallel.ordered_map(SliceValidator(layout), slices, workers):
            kept.write(kept_rows)
            quarantine.write(quarantined_rows)
            summary.read += rows
            summary.per_source.update(kept_rows.column("source").to_pylist())
            summary.reasons.update(QUOTED.sub("'…'", r) for r in quarantined_rows.column("reason").to_pylist())
            if summary.first_quarantined is None and quarantined_rows.num_rows:
                summary.first_quarantined = quarantined_rows.slice(0, 1).to_pylist()[0]
        summary.kept, summary.quarantined = kept.rows, quarantine.rows
        if not summary.kept + summary.quarantined == summary.read == end - start:
            raise ValueError(f"ring {ring}: {end - start} positions, {summary.read} read, "
                             f"{summary.kept} kept + {summary.quarantined} quarantined")
    return summary


@dataclass(frozen=True)
class RowGroupTokenCounter:
    """Total and answer tokens of the records in one row group of a ring's records file, counted
    `batch_rows` conversations at a time. It reads its own row group and pickles as two paths, so a
    worker process does the reading and the parsing, and only the counts travel back."""

    records_path: str
    tokenizer_dir: str
    batch_rows: int = TOKENIZE_CHUNK

    def __call__(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        table = pq.ParquetFile(self.records_path).read_row_group(group, columns=["messages"])
        counter = tokenize.TokenCounter(self.tokenizer_dir)
        return joined_counts([counter(batch.column("messages").to_pylist())
                              for batch in table.to_batches(self.batch_rows)])


def count_ring_tokens(layout: Layout, ring: str, workers: int,
                      batch_rows: int = TOKENIZE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Total and answer tokens of every kept record of the ring under the storage's tokenizer, a row
    group of the records file (one validation chunk) a task over `workers` processes."""
    path = layout.ring_records(ring)
    counter = RowGroupTokenCounter(str(path), str(layout.tokenizer_dir), batch_rows)
    return joined_counts(list(parallel.ordered_map(counter, range(pq.ParquetFile(path).num_row_groups), workers)))


def joined_counts(counts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(total, answer) count arrays of consecutive pieces joined in order (empty arrays for none)."""
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([t for t, _ in counts]), np.concatenate([a for _, a in counts])


def ring_ids_digest(layout: Layout, ring: str, batch_rows: int = 65536) -> str:
    """SHA-256 of the ring's example ids joined by newlines, read a batch at a time."""
    digest, first = hashlib.sha256(), True
    for batch in pq.ParquetFile(layout.ring_records(ring)).iter_batches(batch_rows, columns=["id"]):
        ids = batch.column("id").to_pylist()
        if ids:
            digest.update(("" if first else "\n").encode() + "\n".join(ids).encode())
            first = False
    return digest.hexdigest()


def pool_frame(layout: Layout, rings: Sequence[str]) -> pd.DataFrame:
    """One row per kept example of the pool, in pool order, with labels and token counts."""
    frames = []
    for ring in rings:
        records = pd.read_parquet(layout.ring_records(ring), columns=["id", "source", "clean", "noise"])
        tokens = pd.read_parquet(layout.ring_tokens(ring), columns=["total_tokens", "answer_tokens"])
        if len(tokens) != len(records):
            raise ValueError(f"ring {ring}: {len(records)} records but {len(tokens)} token rows")
        frame = records.rename(columns={"id": "example_id"})
        frame[["total_tokens", "answer_tokens"]] = tokens.to_numpy()
        frame["ring"] = ring
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=POOL_COLUMNS)
    return pd.concat(frames, ignore_index=True)[POOL_COLUMNS]


def embedding_blocks(layout: Layout, rings: Sequence[str], space: str = "position_weighted") -> Iterator[np.ndarray]:
    """Memory-mapped float16 embedding shards of the pool in one embedding space, in pool order."""
    for ring in rings:
        yield from embed.iter_shards(layout.ring_embeddings(ring, space))


def messages(layout: Layout, rings: Sequence[str]) -> list[list[dict]]:
    """Every conversation of the pool, in pool order."""
    return [json.loads(m) for ring in rings
            for m in pd.read_parquet(layout.ring_records(ring), columns=["messages"])["messages"]]


def records_for(layout: Layout, rings: Sequence[str], example_ids: Sequence[str]) -> list[list[dict]]:
    """The conversations (messages) of `example_ids`, in the given order."""
    wanted = pd.Index(example_ids)
    found: dict[str, str] = {}
    for ring in rings:
        table = ds.dataset(layout.ring_records(ring), format="parquet").to_table(
            columns=["id", "messages"], filter=ds.field("id").isin(list(wanted)))
        found.update(zip(table.column("id").to_pylist(), table.column("messages").to_pylist()))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise KeyError(f"{len(missing)} selected ids are not in the pool, e.g. {missing[:3]}")
    return [json.loads(found[i]) for i in example_ids]
