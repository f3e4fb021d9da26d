"""Ingestion (raw JSONL -> validated records) and tokenisation throughput on a generated pool.

    python -m benchmarks.ingestion              # 1,000,000 rows
    python -m benchmarks.ingestion --rows 100000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from selection_assets.core import records, tokenize
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer

TOKENIZE_CHUNK = 8192


def main() -> None:
    from benchmarks._common import peak_rss_mb, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    path = Path(f"/tmp/selection_assets_bench/pool_{args.rows}.jsonl")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(generate.generate_pool(args.rows, seed=5)) + "\n")
    began = time.perf_counter()
    raw = records.read_raw_source(str(path))
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    validated = records.validate_raw(raw, range(len(raw)), records.first_occurrence(records.declared_ids(raw)))
    validate_s = time.perf_counter() - began
    conversations = [json.loads(m) for m in validated.kept["messages"]]
    texts = [tokenize.format_conversation(c, "<|endoftext|>") for c in conversations[:20000]]
    tokenizer = train_tokenizer(texts, 1024, "/tmp/selection_assets_bench_tok_ingest")
    began = time.perf_counter()
    tokens = 0
    for begin in range(0, len(conversations), TOKENIZE_CHUNK):
        total, _ = tokenize.token_counts(tokenize.encode_conversations(tokenizer, conversations[begin : begin + TOKENIZE_CHUNK]))
        tokens += int(np.sum(total))
    tokenize_s = time.perf_counter() - began
    result = {"rows": len(raw), "kept": len(validated.kept), "quarantined": len(validated.quarantined),
              "read_rows_per_s": len(raw) / read_s, "validate_rows_per_s": len(raw) / validate_s,
              "ingest_rows_per_s": len(raw) / (read_s + validate_s), "tokens": tokens,
              "tokenize_tokens_per_s": tokens / tokenize_s, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result))
    save("ingestion", result)


if __name__ == "__main__":
    main()
