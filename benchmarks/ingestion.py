"""Ingestion (raw JSONL -> the shuffled source table -> validated records, streamed) and
tokenisation throughput on a generated pool, with the peak memory of ingestion against the file's
size (streaming keeps it bounded by a chunk, not by the file). Validation and tokenisation go a
slice at a time, as the ring assets do, so the whole run's peak is bounded too.

    python -m benchmarks.ingestion              # 1,000,000 rows
    python -m benchmarks.ingestion --rows 5000000   # writes results/ingestion_<rows>.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from selection_assets.core import ingest, pool, records, tokenize
from selection_assets.core.store import Layout
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer

TOKENIZE_CHUNK = 8192
VALIDATE_SLICE = 100_000


def write_generated_pool(rows: int, path: Path) -> None:
    """The world's pool of `rows` records as a JSON lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(generate.generate_pool(rows, seed=5)) + "\n")


def main() -> None:
    from benchmarks._common import peak_rss_mb, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
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
    validate_s = tokenize_s = 0.0
    kept = quarantined = tokens = 0
    tokenizer = None
    for start in range(0, rows, VALIDATE_SLICE):  # as the ring_records and ring_token_counts assets go, ring by ring
        began = time.perf_counter()
        frame = pool.read_source_slice(layout, start, start + VALIDATE_SLICE)
        result = records.validate_raw(frame["raw"], frame["position"], frame["duplicate_of"])
        kept, quarantined = kept + len(result.kept), quarantined + len(result.quarantined)
        validate_s += time.perf_counter() - began
        conversations = [json.loads(m) for m in result.kept["messages"]]
        if tokenizer is None:  # trained once, on the first slice, outside the timing
            texts = [tokenize.format_conversation(c, "<|endoftext|>") for c in conversations[:20000]]
            tokenizer = train_tokenizer(texts, 1024, "/tmp/selection_assets_bench_tok_ingest")
        began = time.perf_counter()
        for begin in range(0, len(conversations), TOKENIZE_CHUNK):
            chunk = tokenize.encode_conversations(tokenizer, conversations[begin : begin + TOKENIZE_CHUNK])
            tokens += int(np.sum(tokenize.token_counts(chunk)[0]))
        tokenize_s += time.perf_counter() - began
    result = {"rows": rows, "kept": kept, "quarantined": quarantined,
              "file_mb": path.stat().st_size / 2**20, "baseline_rss_mb": baseline_rss_mb,
              "ingest_peak_rss_mb": ingest_rss_mb,
              "read_rows_per_s": rows / read_s, "validate_rows_per_s": rows / validate_s,
              "ingest_rows_per_s": rows / (read_s + validate_s), "tokens": tokens,
              "tokenize_tokens_per_s": tokens / tokenize_s, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result))
    save(f"ingestion_{rows}", result)


if __name__ == "__main__":
    main()
