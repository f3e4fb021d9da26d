"""Reading a pool (the union of its rings) from the storage layout: examples with their labels and
token counts, their embeddings in row order, and the records of a selection."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from selection_assets.core import embed, records, store
from selection_assets.core.store import Layout

POOL_COLUMNS = ["example_id", "source", "clean", "noise", "total_tokens", "answer_tokens", "ring"]


def read_source_slice(layout: Layout, start: int, end: int) -> pd.DataFrame:
    """Rows of the shuffled source with pool positions in [start, end), in position order."""
    dataset = ds.dataset(layout.source_pool, format="parquet")
    position = ds.field("position")
    table = dataset.to_table(filter=(position >= start) & (position < end))
    return table.to_pandas().sort_values("position", kind="stable").reset_index(drop=True)


def iter_source_slices(layout: Layout, start: int, end: int, rows: int) -> Iterator[pd.DataFrame]:
    """Positions [start, end) of the shuffled source, `rows` at a time, in position order (the
    source is sorted by position in row groups, so each read decodes only the groups it needs)."""
    for begin in range(start, end, rows):
        yield read_source_slice(layout, begin, min(begin + rows, end))


def iter_valid_source_messages(layout: Layout, rows: int = 65536) -> Iterator[str]:
    """The messages (JSON text) of every valid record of the shuffled source, in position order,
    validated `rows` source rows at a time (memory stays at one chunk; repeats of an id are
    quarantined through the source's `duplicate_of`, whichever chunk the first one is in)."""
    total = pq.ParquetFile(layout.source_pool).metadata.num_rows
    for source in iter_source_slices(layout, 0, total, rows):
        yield from records.validate_source_slice(source).kept["messages"]


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


def valid_source_messages(layout: Layout, end: int | None = None) -> pd.Series:
    """The messages (JSON text) of the valid records among the first `end` pool positions of the
    shuffled source (all of them without `end`), in position order; the ring_records asset quarantines
    and counts the others."""
    source = (read_source_slice(layout, 0, end) if end is not None
              else pd.read_parquet(layout.source_pool, columns=["raw", "position", "duplicate_of"]))
    return records.validate_source_slice(source).kept["messages"]


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
