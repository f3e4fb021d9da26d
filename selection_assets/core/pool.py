"""A pool (the union of its rings) in the storage layout: validating and counting a ring's records
from the shuffled source, and reading back examples with their labels and token counts, their
embeddings in row order, and the records of a selection."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from selection_assets.core import embed, parallel, records, store, tokenize
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout

# what a method may read about each example: no label (`clean`, `noise`), which only evaluation reads
POOL_COLUMNS = ["example_id", "source", "total_tokens", "answer_tokens"]
RING_CHUNK = 32768  # source rows validated and written at a time: a ring's memory is one chunk's, and
# two workers finish within half a chunk of each other (two workers at 1M, in probes: 1.78-1.89x over one
# process with 65,536 a chunk, 1.86-2.0x with 32,768)
TOKENIZE_CHUNK = 8192  # conversations tokenised at a time
# a filtered scan decodes this many rows a batch, one part at a time and a batch ahead: Arrow's
# default read-ahead (4 parts, 16 batches of 131,072 rows) decodes more of a large ring's messages the
# more parts it has
FILTERED_SCAN = {"batch_size": 8192, "batch_readahead": 1, "fragment_readahead": 1}
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


@dataclass
class RingRecords:
    """What validating a ring (or one chunk of it) wrote: source rows read, records kept and
    quarantined, the kept ones per source, the quarantine reasons (quoted values left out, so alike
    reasons count together) and the first quarantined record."""

    read: int = 0
    kept: int = 0
    quarantined: int = 0
    per_source: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    first_quarantined: dict | None = None

    @classmethod
    def of_chunk(cls, read: int, kept: pa.Table, quarantined: pa.Table) -> "RingRecords":
        """The summary of one validated chunk."""
        return cls(read, kept.num_rows, quarantined.num_rows, Counter(kept.column("source").to_pylist()),
                   Counter(QUOTED.sub("'…'", reason) for reason in quarantined.column("reason").to_pylist()),
                   quarantined.slice(0, 1).to_pylist()[0] if quarantined.num_rows else None)

    def add(self, later: "RingRecords") -> None:
        """Count in the summary of the chunk that follows."""
        self.read, self.kept, self.quarantined = (self.read + later.read, self.kept + later.kept,
                                                  self.quarantined + later.quarantined)
        self.per_source.update(later.per_source)
        self.reasons.update(later.reasons)
        self.first_quarantined = self.first_quarantined or later.first_quarantined


@dataclass(frozen=True)
class ChunkPartWriter:
    """Validates one chunk of source positions and writes its kept and quarantined records as part
    `index` of the ring's (temporary) records and quarantine directories. It reads its own slice,
    writes its own parts and pickles as three paths, so a worker process does all of a chunk's work
    and only the chunk's `RingRecords` travels back."""

    layout: Layout
    records_dir: Path
    quarantine_dir: Path

    def __call__(self, chunk: tuple[int, tuple[int, int]]) -> RingRecords:
        index, bounds = chunk
        source = read_source_slice(self.layout, *bounds)
        result = records.validate_source_slice(source)
        kept = store.arrow_table(result.kept, records.KEPT_SCHEMA)
        quarantined = store.arrow_table(result.quarantined, records.QUARANTINE_SCHEMA)
        store.write_part(self.records_dir, index, kept)
        store.write_part(self.quarantine_dir, index, quarantined)
        return RingRecords.of_chunk(len(source), kept, quarantined)


def write_ring_records(layout: Layout, ring: Ring, workers: int, chunk_rows: int = RING_CHUNK) -> RingRecords:
    """Validate the ring's source positions [start, end) `chunk_rows` at a time over `workers` processes
    (`parallel.ordered_map`), each chunk written by its worker as a part of the ring's records and
    quarantine (an empty ring gets one empty part of each). Both directories are moved into place
    only when kept + quarantined == rows read == end - start; otherwise ValueError, and neither."""
    start, end = ring.start, ring.end
    chunks = list(enumerate((begin, min(begin + chunk_rows, end)) for begin in range(start, end, chunk_rows)))
    records_dir, quarantine_dir = (store.temp_dir_beside(path)
                                   for path in (layout.ring_records(ring), layout.ring_quarantine(ring)))
    try:
        summary = RingRecords()
        writer = ChunkPartWriter(layout, records_dir, quarantine_dir)
        for chunk in parallel.ordered_map(writer, chunks or [(0, (start, end))], workers):
            summary.add(chunk)
        if not summary.kept + summary.quarantined == summary.read == end - start:
            raise ValueError(f"ring {ring.key}: {end - start} positions, {summary.read} read, "
                             f"{summary.kept} kept + {summary.quarantined} quarantined")
        store.replace_dir(records_dir, layout.ring_records(ring))
        store.replace_dir(quarantine_dir, layout.ring_quarantine(ring))
    finally:
        for leftover in (records_dir, quarantine_dir):
            shutil.rmtree(leftover, ignore_errors=True)
    return summary


@dataclass(frozen=True)
class PartTokenCounter:
    """Total and answer tokens of the records in one part of a ring's records, counted `batch_rows`
    conversations at a time. It reads its own part and pickles as two paths, so a worker process
    does the reading and the parsing, and only the counts travel back."""

    tokenizer_dir: str
    batch_rows: int = TOKENIZE_CHUNK

    def __call__(self, part: Path) -> tuple[np.ndarray, np.ndarray]:
        table = pq.read_table(part, columns=["messages"])
        counter = tokenize.TokenCounter(self.tokenizer_dir)
        return joined_counts([counter(batch.column("messages").to_pylist())
                              for batch in table.to_batches(self.batch_rows)])


def count_ring_tokens(layout: Layout, ring: Ring, workers: int,
                      batch_rows: int = TOKENIZE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Total and answer tokens of every kept record of the ring under the storage's tokenizer, a part
    of the records (one validation chunk) a task over `workers` processes."""
    counter = PartTokenCounter(str(layout.tokenizer_dir), batch_rows)
    return joined_counts(list(parallel.ordered_map(counter, store.part_paths(layout.ring_records(ring)), workers)))


def joined_counts(counts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(total, answer) count arrays of consecutive pieces joined in order (empty arrays for none)."""
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([t for t, _ in counts]), np.concatenate([a for _, a in counts])


def ring_ids_digest(layout: Layout, ring: Ring, batch_rows: int = 65536) -> str:
    """SHA-256 of the ring's example ids joined by newlines, read a batch at a time."""
    digest, first = hashlib.sha256(), True
    for batch in store.iter_part_batches(layout.ring_records(ring), batch_rows, ["id"]):
        ids = batch.column("id").to_pylist()
        if ids:
            digest.update(("" if first else "\n").encode() + "\n".join(ids).encode())
            first = False
    return digest.hexdigest()


def _check_token_rows(ring: Ring, records: int, token_rows: int) -> None:
    """A ring's token counts must have a row per kept record."""
    if token_rows != records:
        raise ValueError(f"ring {ring.key}: {records} records but {token_rows} token rows")


def write_pool_manifest(layout: Layout, pool_size: int, rings: Sequence[Ring]) -> dict:
    """Write the view of the pool of `pool_size` made of `rings`: the rings, and its counts."""
    summary = pool_summary(layout, rings)
    manifest = {"pool_size": pool_size, "rings": [ring.key for ring in rings], "examples": summary.examples,
                "quarantined": sum(store.parts_rows(layout.ring_quarantine(r)) for r in rings),
                "mean_tokens": summary.mean_tokens}
    store.write_json(manifest, layout.pool_manifest(pool_size))
    return {**manifest, "per_source": summary.per_source, "clean_share": summary.clean_share}


def pool_rings(layout: Layout, pool_size: int) -> list[Ring]:
    """The rings the pool of `pool_size` is made of, as its view (the pool_manifest asset) recorded them."""
    return [Ring.parse(key) for key in store.read_json(layout.pool_manifest(pool_size))["rings"]]


def pool_frame(layout: Layout, rings: Sequence[Ring]) -> pd.DataFrame:
    """One row per kept example of the pool, in pool order: id, source and token counts (`POOL_COLUMNS`),
    turned into pandas once rather than ring by ring and then concatenated."""
    records, tokens = [], []
    for ring in rings:
        records.append(store.read_parts(layout.ring_records(ring), ["id", "source"]))
        tokens.append(pq.read_table(layout.ring_tokens(ring), columns=["total_tokens", "answer_tokens"]))
        _check_token_rows(ring, len(records[-1]), len(tokens[-1]))
    if not records:
        return pd.DataFrame(columns=POOL_COLUMNS)
    frame = pa.concat_tables(records).to_pandas().rename(columns={"id": "example_id"})
    counts = pa.concat_tables(tokens)
    for column in ("total_tokens", "answer_tokens"):
        frame[column] = counts.column(column).to_numpy()
    return frame[POOL_COLUMNS]


@dataclass
class PoolSummary:
    """Counts over a pool, read a part at a time: examples, their tokens, examples per source, and
    how many carry a `clean` label and how many of those are clean."""

    examples: int = 0
    total_tokens: int = 0
    per_source: Counter = field(default_factory=Counter)
    labelled: int = 0
    clean: int = 0

    @property
    def mean_tokens(self) -> float:
        return self.total_tokens / self.examples if self.examples else float("nan")

    @property
    def clean_share(self) -> float | None:
        return self.clean / self.labelled if self.labelled else None


def pool_summary(layout: Layout, rings: Sequence[Ring]) -> PoolSummary:
    """`PoolSummary` of the pool made of `rings`; memory is one batch whatever the pool's size."""
    summary = PoolSummary()
    for ring in rings:
        ring_examples = 0
        for batch in store.iter_part_batches(layout.ring_records(ring), RING_CHUNK, ["source", "clean"]):
            summary.per_source.update(batch.column("source").to_pylist())
            clean = batch.column("clean")
            summary.labelled += len(clean) - clean.null_count
            summary.clean += pc.sum(clean).as_py() or 0
            ring_examples += len(batch)
        tokens = pq.ParquetFile(layout.ring_tokens(ring))
        _check_token_rows(ring, ring_examples, tokens.metadata.num_rows)
        for batch in tokens.iter_batches(RING_CHUNK, columns=["total_tokens"]):
            summary.total_tokens += pc.sum(batch.column("total_tokens")).as_py() or 0
        summary.examples += ring_examples
    return summary


def embedding_blocks(layout: Layout, rings: Sequence[Ring], space: str = "position_weighted") -> Iterator[np.ndarray]:
    """Memory-mapped float16 embedding shards of the pool in one embedding space, in pool order."""
    for ring in rings:
        yield from embed.iter_shards(layout.ring_embeddings(ring, space))


def messages(layout: Layout, rings: Sequence[Ring]) -> list[list[dict]]:
    """Every conversation of the pool, in pool order."""
    return [json.loads(m) for ring in rings
            for m in store.read_parts(layout.ring_records(ring), ["messages"]).column("messages").to_pylist()]


def pool_rows(layout: Layout, rings: Sequence[Ring], example_ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """`columns` of the ring records of `example_ids`, a row per id in the given order (a repeated id
    repeated), indexed by id. Found by a filtered scan: memory is a scan batch and the matches,
    whatever the pool's size. Raises KeyError naming the ids the pool does not hold."""
    unique = list(dict.fromkeys(example_ids))
    wanted = pa.array(unique, pa.string())
    found = pa.concat_tables([ds.dataset(layout.ring_records(ring), format="parquet").to_table(
        columns=["id", *columns], filter=ds.field("id").isin(wanted), **FILTERED_SCAN) for ring in rings])
    frame = found.to_pandas().set_index("id")
    missing = [i for i in unique if i not in frame.index]
    if missing:
        raise KeyError(f"{len(missing)} selected ids are not in the pool, e.g. {missing[:3]}")
    return frame.loc[list(example_ids)]


def records_for(layout: Layout, rings: Sequence[Ring], example_ids: Sequence[str]) -> list[list[dict]]:
    """The conversations (messages) of `example_ids`, in the given order."""
    return [json.loads(m) for m in pool_rows(layout, rings, example_ids, ["messages"])["messages"]]
