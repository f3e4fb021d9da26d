"""Ingestion (raw JSONL -> the shuffled source table -> validated records, streamed) and
tokenisation throughput on a generated pool, with the peak memory of ingestion against the file's
size (streaming keeps it bounded by a chunk, not by the file). Validation and tokenisation go a
chunk at a time through the ring assets' own functions three times: in one process held to one
CPU (the work's one-core time: the Rust tokenizer's and Arrow's threads share that core), in one
process as the assets run it on a ring under 100,000 rows (those threads on every CPU), and over
--workers forked processes (default: every CPU). All three must count the same records and tokens.

    python -m benchmarks.ingestion              # 1,000,000 rows
    python -m benchmarks.ingestion --rows 5000000   # writes results/ingestion_<rows>.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

from selection_assets.core import ingest, parallel, pool, records, tokenize
from selection_assets.core.store import Layout
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer


def write_generated_pool(rows: int, path: Path) -> None:
    """The world's pool of `rows` records as a JSON lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(generate.generate_pool(rows, seed=5)) + "\n")


def validate_and_tokenize(layout: Layout, rows: int, workers: int, one_cpu: bool = False) -> dict:
    """The ring_records and ring_token_counts assets' work over the whole source as one ring, with
    `workers` processes (held to one CPU with `one_cpu`): seconds of each, and what they counted."""
    ring = f"0-{rows}-workers-{workers}" + ("-one-cpu" if one_cpu else "")
    cpus = os.sched_getaffinity(0)
    if one_cpu:
        os.sched_setaffinity(0, {min(cpus)})
    try:
        began = time.perf_counter()
        written = pool.write_ring_records(layout, ring, 0, rows, workers)
        validate_s = time.perf_counter() - began
        began = time.perf_counter()
        tokens = int(pool.count_ring_tokens(layout, ring, workers)[0].sum())
        tokenize_s = time.perf_counter() - began
    finally:
        os.sched_setaffinity(0, cpus)
    return {"workers": workers, "cpus": 1 if one_cpu else len(cpus), "kept": written.kept,
            "quarantined": written.quarantined, "tokens": tokens, "validate_s": validate_s, "tokenize_s": tokenize_s,
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
    first = pool.iter_valid_source_messages(layout, 20000)  # the tokenizer is trained once, outside the timing
    train_tokenizer((tokenize.format_conversation(json.loads(m), "<|endoftext|>") for m in first), 1024,
                    layout.tokenizer_dir)
    one_cpu = validate_and_tokenize(layout, rows, 1, one_cpu=True)
    one, many = (validate_and_tokenize(layout, rows, w) for w in (1, args.workers))
    for other in (one, many):
        if (one_cpu["kept"], one_cpu["quarantined"], one_cpu["tokens"]) != (
                other["kept"], other["quarantined"], other["tokens"]):
            raise AssertionError(f"{other['workers']} workers counted otherwise than one on one CPU: {other} vs {one_cpu}")
    result = {"rows": rows, "kept": one["kept"], "quarantined": one["quarantined"], "tokens": one["tokens"],
              "file_mb": path.stat().st_size / 2**20, "baseline_rss_mb": baseline_rss_mb,
              "ingest_peak_rss_mb": ingest_rss_mb, "read_rows_per_s": rows / read_s,
              "one_process_one_cpu": one_cpu, "one_process": one, "workers": many,
              "validate_speedup": one["validate_s"] / many["validate_s"],
              "tokenize_speedup": one["tokenize_s"] / many["tokenize_s"],
              "validate_speedup_over_one_cpu": one_cpu["validate_s"] / many["validate_s"],
              "tokenize_speedup_over_one_cpu": one_cpu["tokenize_s"] / many["tokenize_s"],
              "one_process_threads_gain": {"validate": one_cpu["validate_s"] / one["validate_s"],
                                           "tokenize": one_cpu["tokenize_s"] / one["tokenize_s"]},
              "ingest_rows_per_s_one_process": rows / (read_s + one["validate_s"]),
              "ingest_rows_per_s_workers": rows / (read_s + many["validate_s"]),
              "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result, indent=1))
    save(f"ingestion_{rows}", result)


if __name__ == "__main__":
    main()
