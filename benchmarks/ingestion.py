"""Ingestion (raw JSONL -> the shuffled source table -> validated records, streamed) and
tokenisation throughput on a generated pool, with the peak memory of ingestion against the file's
size (streaming keeps it bounded by a chunk, not by the file). Validation and tokenisation go a
chunk at a time through the ring assets' own functions, first in one process, then over --workers
spawned processes (default: every CPU), which must count the same records and tokens.

    python -m benchmarks.ingestion              # 1,000,000 rows
    python -m benchmarks.ingestion --rows 5000000   # writes results/ingestion_<rows>.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import pyarrow.parquet as pq

from selection_assets.assets.pools import RING_CHUNK, TOKENIZE_CHUNK
from selection_assets.core import ingest, parallel, pool, records, store, tokenize
from selection_assets.core.store import Layout
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer



def write_generated_pool(rows: int, path: Path) -> None:
    """The world's pool of `rows` records as a JSON lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(generate.generate_pool(rows, seed=5)) + "\n")


def validate_and_tokenize(layout: Layout, rows: int, tokenizer_dir: Path, workers: int) -> dict:
    """The ring_records and ring_token_counts assets' work over the whole source as one ring, with
    `workers` processes: seconds of each, and what they counted."""
    began = time.perf_counter()
    ring = layout.ring_records(f"0-{rows}-workers-{workers}")
    ring.parent.mkdir(parents=True, exist_ok=True)
    with store.ParquetAppender(ring, records.KEPT_SCHEMA) as kept, \
            store.ParquetAppender(ring.with_suffix(".quarantine.parquet"), records.QUARANTINE_SCHEMA) as quarantined:
        slices = [(begin, min(begin + RING_CHUNK, rows)) for begin in range(0, rows, RING_CHUNK)]
        for _, kept_rows, quarantined_rows in parallel.ordered_map(pool.SliceValidator(layout), slices, workers):
            kept.write(kept_rows)
            quarantined.write(quarantined_rows)
    validate_s = time.perf_counter() - began
    began = time.perf_counter()
    batches = (b.column("messages").to_pylist()
               for b in pq.ParquetFile(ring).iter_batches(TOKENIZE_CHUNK, columns=["messages"]))
    tokens = sum(int(total.sum()) for total, _ in
                 parallel.ordered_map(tokenize.TokenCounter(str(tokenizer_dir)), batches, workers))
    tokenize_s = time.perf_counter() - began
    return {"workers": workers, "kept": kept.rows, "quarantined": quarantined.rows, "tokens": tokens,
            "validate_s": validate_s, "tokenize_s": tokenize_s,
            "validate_rows_per_s": rows / validate_s, "tokenize_tokens_per_s": tokens / tokenize_s}


def main() -> None:
    from benchmarks._common import peak_rss_mb, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=parallel.available_cpus())
    args = parser.parse_args()
    path = Path(f"/tmp/selection_assets_bench/pool_{args.rows}.jsonl")
    if not path.exists():  # generated in a child process, so its memory is not counted as ingestion's
        child = multiprocessing.get_context("spawn").Process(target=write_generated_pool, args=(args.rows, path))
        child.start()
        child.join()
    baseline_rss_mb = peak_rss_mb()  # the interpreter and its imports, before any record is read
    began = time.perf_counter()
    layout = Layout(path.parent / f"storage_{args.rows}")
    rows = ingest.write_shuffled_source(records.iter_raw_records(str(path)), layout.source_pool, seed=5)
    read_s = time.perf_counter() - began
    ingest_rss_mb = peak_rss_mb()
    tokenizer_dir = path.parent / "tokenizer_ingest"  # trained once, outside the timing
    first = records.validate_source_slice(pool.read_source_slice(layout, 0, 20000)).kept["messages"]
    train_tokenizer((tokenize.format_conversation(json.loads(m), "<|endoftext|>") for m in first), 1024, tokenizer_dir)
    one, many = (validate_and_tokenize(layout, rows, tokenizer_dir, w) for w in (1, args.workers))
    if (one["kept"], one["quarantined"], one["tokens"]) != (many["kept"], many["quarantined"], many["tokens"]):
        raise AssertionError(f"{args.workers} workers counted otherwise than one: {many} vs {one}")
    result = {"rows": rows, "kept": one["kept"], "quarantined": one["quarantined"], "tokens": one["tokens"],
              "file_mb": path.stat().st_size / 2**20, "baseline_rss_mb": baseline_rss_mb,
              "ingest_peak_rss_mb": ingest_rss_mb, "read_rows_per_s": rows / read_s,
              "one_process": one, "workers": many,
              "validate_speedup": one["validate_s"] / many["validate_s"],
              "tokenize_speedup": one["tokenize_s"] / many["tokenize_s"],
              "ingest_rows_per_s_one_process": rows / (read_s + one["validate_s"]),
              "ingest_rows_per_s_workers": rows / (read_s + many["validate_s"]),
              "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result, indent=1))
    save(f"ingestion_{rows}", result)


if __name__ == "__main__":
    main()
