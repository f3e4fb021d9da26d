"""Ingestion (raw JSONL -> the shuffled source table -> validated records, streamed) and
tokenisation throughput on a generated pool, with the peak memory of ingestion against the file's
size (streaming keeps it bounded by a chunk, not by the file). Validation and tokenisation go a
chunk at a time through the ring assets' own functions, in one process (as the assets run a ring
under 100,000 rows; the Rust tokenizer still runs its own threads), then over --workers forked
processes (default: every CPU); both must count the same records and tokens.
The shuffled source is written in one process, then with its ids parsed over the workers. It
also measures what the machine's CPUs allow: one small piece of each step (8,192 raw records' ids
parsed; 8,192 source rows validated and written as a part; 8,192 conversations counted) repeated
for ten seconds in one process, then in as many processes at once, nothing shared; the ratio of
pieces done is the most any split of that step over those processes could gain here.

    python -m benchmarks.ingestion              # 1,000,000 rows
    python -m benchmarks.ingestion --rows 5000000   # writes results/ingestion_<rows>.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Callable

from selection_assets.core import ingest, parallel, pool, records, store, tokenize
from selection_assets.core.store import Layout
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer


def write_generated_pool(rows: int, path: Path) -> None:
    """The world's pool of `rows` records as a JSON lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(generate.generate_pool(rows, seed=5)) + "\n")


def ring_name(rows: int, workers: int) -> str:
    """The ring the whole source is validated into by `workers` processes."""
    return f"0-{rows}-workers-{workers}"


def validate_and_tokenize(layout: Layout, rows: int, workers: int) -> dict:
    """The ring_records and ring_token_counts assets' work over the whole source as one ring, with
    `workers` processes: seconds of each, and what they counted."""
    ring = ring_name(rows, workers)
    began = time.perf_counter()
    written = pool.write_ring_records(layout, ring, 0, rows, workers)
    validate_s = time.perf_counter() - began
    began = time.perf_counter()
    tokens = int(pool.count_ring_tokens(layout, ring, workers)[0].sum())
    tokenize_s = time.perf_counter() - began
    return {"workers": workers, "kept": written.kept, "quarantined": written.quarantined, "tokens": tokens,
            "validate_s": validate_s, "tokenize_s": tokenize_s,
            "validate_rows_per_s": rows / validate_s, "tokenize_tokens_per_s": tokens / tokenize_s}


CEILING_PIECE = 8192  # rows of the pieces that measure what the CPUs allow


def _repeat_for(function: Callable, item, seconds: float) -> int:
    """How many times `function(item)` completes in `seconds`."""
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        function(item)
        done += 1
    return done


def concurrent_gain(function: Callable, item, processes: int, seconds: float = 10.0) -> dict:
    """Pieces done by `processes` independent processes running `function(item)` at once, against
    one process alone, in the same `seconds` (started as the ring's workers are; nothing is shared or
    sent back but the counts)."""
    alone = _repeat_for(function, item, seconds)
    with multiprocessing.get_context(parallel.START_METHOD).Pool(processes) as workers:
        together = workers.starmap(_repeat_for, [(function, item, seconds)] * processes)
    return {"alone": alone, "together": together, "gain": sum(together) / alone}


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
    layout = Layout(path.parent / f"storage_{args.rows}")
    read_s = {}
    for workers in (1, args.workers):  # the later source replaces the earlier: the same table either way
        began = time.perf_counter()
        rows = ingest.write_shuffled_source(records.iter_raw_records(str(path)), layout.source_pool, seed=5,
                                            workers=workers)
        read_s[workers] = time.perf_counter() - began
        if workers == 1:
            ingest_rss_mb = peak_rss_mb()  # what ingestion holds in one process
    arriving = records.iter_raw_records(str(path))
    ceiling = {"ids": concurrent_gain(ingest.declared_id_bytes, [next(arriving) for _ in range(CEILING_PIECE)],
                                      args.workers)}
    first = pool.iter_valid_source_messages(layout, 20000)  # the tokenizer is trained once, outside the timing
    train_tokenizer((tokenize.format_conversation(json.loads(m), "<|endoftext|>") for m in first), 1024,
                    layout.tokenizer_dir)
    scratch = [store.temp_dir_beside(layout.root / "ceiling" / name) for name in ("records", "quarantine")]
    ceiling["validate"] = concurrent_gain(pool.ChunkPartWriter(layout, *map(str, scratch)), (0, (0, CEILING_PIECE)),
                                          args.workers)
    shutil.rmtree(layout.root / "ceiling")
    one, many = (validate_and_tokenize(layout, rows, w) for w in (1, args.workers))
    messages = store.ParquetRows(layout.ring_records(ring_name(rows, 1)), ["messages"]).read(0, CEILING_PIECE)
    ceiling["tokenize"] = concurrent_gain(tokenize.TokenCounter(str(layout.tokenizer_dir)),
                                          messages.column("messages").to_pylist(), args.workers)
    if (one["kept"], one["quarantined"], one["tokens"]) != (many["kept"], many["quarantined"], many["tokens"]):
        raise AssertionError(f"{args.workers} workers counted otherwise than one: {many} vs {one}")
    result = {"rows": rows, "kept": one["kept"], "quarantined": one["quarantined"], "tokens": one["tokens"],
              "file_mb": path.stat().st_size / 2**20, "baseline_rss_mb": baseline_rss_mb,
              "ingest_peak_rss_mb": ingest_rss_mb, "read_rows_per_s": rows / read_s[1],
              "read_rows_per_s_workers": rows / read_s[args.workers], "read_speedup": read_s[1] / read_s[args.workers],
              "one_process": one, "workers": many,
              "validate_speedup": one["validate_s"] / many["validate_s"],
              "tokenize_speedup": one["tokenize_s"] / many["tokenize_s"],
              "ceiling_of_the_cpus": ceiling,
              "ingest_rows_per_s_one_process": rows / (read_s[1] + one["validate_s"]),
              "ingest_rows_per_s_workers": rows / (read_s[args.workers] + many["validate_s"]),
              "ingest_speedup": (read_s[1] + one["validate_s"]) / (read_s[args.workers] + many["validate_s"]),
              "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result, indent=1))
    save(f"ingestion_{rows}", result)


if __name__ == "__main__":
    main()
