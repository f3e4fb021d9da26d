"""Ingestion and tokenisation today against the single process issue 13 measured: the code of the
commit its figures came from (validation 82,100 rows/s, tokenisation 189,000 tokens/s, one core of
two), taken with `git archive` and run by its own benchmark script, alternated with today's steps
over every CPU (`benchmarks/ingestion.py`'s runs, as the assets run them) on the same generated
file, so each pair is compared on the same minutes of this VM.

The issue's code read the whole file into memory and validated it in one pass, before the streamed,
shuffled source existed; today's ingestion also writes that shuffled source, so its end-to-end time
is set against the issue's read-and-validate. Token counts differ a little (each side trains its
own tokenizer), so tokenisation is compared by tokens a second.

    python -m benchmarks.ingestion_issue_baseline          # 1,000,000 rows, 3 pairs, ~15 min

Writes results/ingestion_issue_baseline_<rows>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._common import save
from benchmarks.ingestion import generated_file, step_runs, train_pool_tokenizer, whole_ring
from selection_assets.core import ingest, parallel, pool, readers
from selection_assets.core.store import Layout

ISSUE_COMMIT = "d09819f"  # where issue 13's ingestion figures were measured (benchmarks/RESULTS.md then)
REPOSITORY = Path(__file__).resolve().parents[1]


def issue_code(into: Path, commit: str = ISSUE_COMMIT) -> Path:
    """The package and benchmarks of `commit`, unpacked under `into`."""
    archive = subprocess.run(["git", "archive", commit, "selection_assets", "benchmarks"], cwd=REPOSITORY,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def issue_run(code: Path, rows: int) -> dict:
    """One run of the issue's own benchmark script (one process) on the generated file of `rows`
    records; its rates, as it measured them inside the process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.ingestion", "--rows", str(rows)], cwd=code,
                         env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pair_speedups(issue: dict, today: dict) -> dict:
    """Today's runs over the issue's, per step: validation, ingestion end to end, tokenisation."""
    today_ingest_s = today["source"]["seconds"] + today["validate"]["seconds"]
    return {"validate": issue["rows"] / issue["validate_rows_per_s"] / today["validate"]["seconds"],
            "ingest": issue["rows"] / issue["ingest_rows_per_s"] / today_ingest_s,
            "tokenize": today["tokenize"]["tokens"] / today["tokenize"]["seconds"] / issue["tokenize_tokens_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=parallel.available_cpus())
    parser.add_argument("--repeats", type=int, default=3, help="pairs of an issue-code run and a run of today's")
    args = parser.parse_args()
    path = generated_file(args.rows)
    layout = Layout(path.parent / f"storage_{args.rows}")
    rows = ingest.write_shuffled_source(readers.iter_raw_records(str(path)), layout.source_pool, seed=5)
    train_pool_tokenizer(layout)
    pool.write_ring_records(layout, whole_ring(rows), 1)  # the ring whose tokens are counted
    runs = step_runs(path, layout, rows)
    pairs = []
    with tempfile.TemporaryDirectory() as scratch:
        code = issue_code(Path(scratch))
        for _ in range(args.repeats):
            issue = issue_run(code, rows)
            today = {name: run(args.workers) for name, run in runs.items()}
            pairs.append({"issue": issue, "today": today, "speedups": pair_speedups(issue, today)})
    speedups = {step: [pair["speedups"][step] for pair in pairs] for step in ("validate", "ingest", "tokenize")}
    result = {"rows": rows, "issue_commit": ISSUE_COMMIT, "workers": args.workers, "pairs": pairs,
              "speedup": {step: statistics.median(values) for step, values in speedups.items()},
              "speedup_range": {step: [min(values), max(values)] for step, values in speedups.items()}}
    print(json.dumps(result["speedup"]))
    print(f"wrote {save(f'ingestion_issue_baseline_{rows}', result)}")


if __name__ == "__main__":
    main()
