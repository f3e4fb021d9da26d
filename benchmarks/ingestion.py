"""Ingestion (raw JSONL -> the shuffled source table -> validated records, streamed) and
tokenisation throughput on a generated pool, with the peak memory of ingestion against the file's
size (streaming keeps it bounded by a chunk, not by the file). Each step runs through the assets' own
functions (`ingest.write_shuffled_source`, `pool.write_ring_records`, `pool.count_ring_tokens`), in
one process (as the assets run under 100,000 rows; the Rust tokenizer still runs its own threads)
and over --workers forked processes (default: every CPU), alternated --repeats times so each pair
is compared on the same minute of this VM; every run must count the same.
It also measures what the machine's CPUs allow: one small piece of each step (8,192 raw records'
ids parsed; 8,192 source rows validated and written as a part; 8,192 conversations counted) repeated
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
import statistics
import time
from pathlib import Path
from typing import Callable

from selection_assets.core import ingest, parallel, pool, readers, store, tokenize
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer


def write_generated_pool(rows: int, path: Path) -> None:
    """The world's pool of `rows` records as a JSON lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(generate.generate_pool(rows, seed=5)) + "\n")


def whole_ring(rows: int) -> Ring:
    """The ring the whole source is validated into (by any number of processes: the same bytes)."""
    return Ring(0, rows)


def paired_runs(step: Callable[[int], dict], workers: int, repeats: int) -> dict:
    """`step(1)` and `step(workers)` alternated `repeats` times (the VM's speed drifts by tens of
    percent within minutes, so each pair is compared, not two blocks): every run's seconds and what
    it counted, the pairs' speedups (one process's seconds over the workers'), their median and range.
    Every run must count the same."""
    runs = [step(w) for _ in range(repeats) for w in (1, workers)]
    counted = {json.dumps({k: v for k, v in run.items() if k != "seconds"}, sort_keys=True) for run in runs}
    if len(counted) != 1:
        raise AssertionError(f"runs with 1 and {workers} processes counted differently: {sorted(counted)}")
    speedups = [one["seconds"] / many["seconds"] for one, many in zip(runs[::2], runs[1::2])]
    return {"counted": json.loads(counted.pop()), "one_process_s": [r["seconds"] for r in runs[::2]],
            "workers_s": [r["seconds"] for r in runs[1::2]], "speedups": speedups,
            "speedup": statistics.median(speedups), "speedup_range": [min(speedups), max(speedups)]}


def timed(work: Callable[[], dict]) -> dict:
    """What `work()` counted, with its seconds."""
    began = time.perf_counter()
    counted = work()
    return {**counted, "seconds": time.perf_counter() - began}


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


def generated_file(rows: int) -> Path:
    """The generated pool file of `rows` records, written once (in a child process, so its memory is
    not counted as ingestion's)."""
    path = Path(f"/tmp/selection_assets_bench/pool_{rows}.jsonl")
    if not path.exists():
        child = multiprocessing.get_context("spawn").Process(target=write_generated_pool, args=(rows, path))
        child.start()
        child.join()
    return path


def train_pool_tokenizer(layout: Layout) -> None:
    """The world tokenizer trained on the source's first 20,000 valid conversations (outside any timing)."""
    first = pool.iter_valid_source_messages(layout, 20000)
    train_tokenizer((tokenize.format_conversation(json.loads(m), "<|endoftext|>") for m in first), 1024,
                    layout.tokenizer_dir)


def step_runs(path: Path, layout: Layout, rows: int) -> dict[str, Callable[[int], dict]]:
    """Each timed step over `workers` processes, as the assets run it: writing the shuffled source
    (replacing it with the same table), validating it into a ring, counting that ring's tokens (the
    same records whichever run wrote them)."""
    def write_source(workers: int) -> dict:
        return timed(lambda: {"rows": ingest.write_shuffled_source(readers.iter_raw_records(str(path)),
                                                                   layout.source_pool, seed=5, workers=workers)})

    def validate(workers: int) -> dict:
        written = timed(lambda: vars(pool.write_ring_records(layout, whole_ring(rows), workers)))
        return {"kept": written["kept"], "quarantined": written["quarantined"], "seconds": written["seconds"]}

    def count_tokens(workers: int) -> dict:
        return timed(lambda: {"tokens": int(pool.count_ring_tokens(layout, whole_ring(rows), workers)[0].sum())})

    return {"source": write_source, "validate": validate, "tokenize": count_tokens}


def main() -> None:
    from benchmarks._common import peak_rss_mb, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=parallel.available_cpus())
    parser.add_argument("--repeats", type=int, default=5, help="pairs of one-process and worker runs per step")
    args = parser.parse_args()
    path = generated_file(args.rows)
    baseline_rss_mb = peak_rss_mb()  # the interpreter and its imports, before any record is read
    layout = Layout(path.parent / f"storage_{args.rows}")
    rows = ingest.write_shuffled_source(readers.iter_raw_records(str(path)), layout.source_pool, seed=5)
    ingest_rss_mb = peak_rss_mb()  # what ingestion holds in one process
    train_pool_tokenizer(layout)
    runs = step_runs(path, layout, rows)
    steps = {name: paired_runs(run, args.workers, args.repeats) for name, run in runs.items()}
    arriving = readers.iter_raw_records(str(path))
    scratch = [store.temp_dir_beside(layout.root / "ceiling" / name) for name in ("records", "quarantine")]
    messages = store.ParquetRows(layout.ring_records(whole_ring(rows)), ["messages"]).read(0, CEILING_PIECE)
    ceiling = {"source": concurrent_gain(ingest.declared_id_bytes, [next(arriving) for _ in range(CEILING_PIECE)],
                                         args.workers),
               "validate": concurrent_gain(pool.ChunkPartWriter(layout, *scratch), (0, (0, CEILING_PIECE)),
                                           args.workers),
               "tokenize": concurrent_gain(tokenize.TokenCounter(str(layout.tokenizer_dir)),
                                           messages.column("messages").to_pylist(), args.workers)}
    shutil.rmtree(layout.root / "ceiling")
    median = {name: {kind: statistics.median(step[f"{kind}_s"]) for kind in ("one_process", "workers")}
              for name, step in steps.items()}
    ingest_s = {kind: median["source"][kind] + median["validate"][kind] for kind in ("one_process", "workers")}
    result = {"rows": rows, **steps["validate"]["counted"], **steps["tokenize"]["counted"],
              "file_mb": path.stat().st_size / 2**20, "baseline_rss_mb": baseline_rss_mb,
              "ingest_peak_rss_mb": ingest_rss_mb, "workers": args.workers, "repeats": args.repeats,
              "steps": steps, "median_seconds": median,
              "rates": {"source_rows_per_s": {k: rows / v for k, v in median["source"].items()},
                        "validate_rows_per_s": {k: rows / v for k, v in median["validate"].items()},
                        "ingest_rows_per_s": {k: rows / v for k, v in ingest_s.items()},
                        "tokenize_tokens_per_s": {k: steps["tokenize"]["counted"]["tokens"] / v
                                                  for k, v in median["tokenize"].items()}},
              "ingest_speedup_of_medians": ingest_s["one_process"] / ingest_s["workers"],
              "ceiling_of_the_cpus": ceiling, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(result, indent=1))
    save(f"ingestion_{rows}", result)


if __name__ == "__main__":
    main()
