"""Robustness, measured: hostile inputs tried per class with crashes and records lost counted, and
faults injected with whether the pipeline survived each, for the generated table in RESULTS.md.

- Fuzzed inputs (selection_assets_tests/fuzzing.py): valid JSON lines, JSON arrays and Parquet files
  mutated at the byte level, and compressed pools (gzip, zstd) of mutated text, which must read
  exactly as the same text uncompressed; damaged compressed bytes must read or be refused whole.
  A crash is any exception but a documented refusal; a record lost is a byte of the file in no
  record, or records in != kept + quarantined.
- The hostile files of the issues, end to end (reader -> `write_shuffled_source` ->
  `write_ring_records`): records in the file (counted by construction), kept, quarantined.
- Faults: writers SIGKILLed mid-write (the file is always whole), a directory replaced under a
  polling reader (never absent), dead-run reaping (a killed holder reaped; a live one in another pid
  namespace and a re-execution carrying a dead parent's tags left alone), preflight refusals
  (nothing written), and the kill matrix of the test suite (a demo SIGKILLed at six points).

    python -m benchmarks.robustness [--inputs 20000] [--kill-matrix]   # results/robustness.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

from selection_assets import config
from selection_assets.core import ingest, pool, readers, store
from selection_assets.core.keys import Ring
from selection_assets_tests import fuzzing

REPO = Path(__file__).resolve().parents[1]
COMPRESSORS = {".gz": lambda data: gzip.compress(data, mtime=0),
               ".zst": lambda data: pa.compress(data, codec="zstd", asbytes=True)}


def _outcome(check) -> str:
    """'ok', 'refused' (a documented refusal), 'lost' (the invariant broke) or 'crash'."""
    try:
        check()
    except AssertionError:
        return "lost"
    except Exception:  # noqa: BLE001 - every other exception is what this counts
        return "crash"
    return "ok"


def _compressed_check(path: Path, plain: Path) -> None:
    """A compressed pool reads exactly as its text does uncompressed, and every record stores."""
    raw = list(readers.iter_raw_records(str(path), chunk_bytes=97, max_record_bytes=fuzzing.LIMIT))
    assert raw == fuzzing.read_checked(plain), "the compressed stream reads other records than its text"
    fuzzing.validate_and_store(raw)


def _damaged_check(path: Path) -> None:
    """Damaged compressed bytes read (what can be decompressed) or are refused whole, never crash."""
    try:
        raw = list(readers.iter_raw_records(str(path), chunk_bytes=97, max_record_bytes=fuzzing.LIMIT))
    except ValueError as error:
        if "cannot be read to its end" not in str(error):
            raise
        return
    fuzzing.validate_and_store(raw)


def fuzzed_inputs(count: int, seed: int, work: Path) -> list[dict]:
    """Rows per input class: inputs tried, crashes, inputs losing records; a plain input that fails
    is kept in the regression corpus (`fuzzing.keep`), which the test suite replays."""
    rng = random.Random(seed)
    rows = []
    plans = {".jsonl": count, ".json": count, ".parquet": max(1, count // 25)}
    for suffix, n in plans.items():
        counts, kept = {"ok": 0, "lost": 0, "crash": 0}, []
        for index in range(n):
            if suffix == ".parquet":
                data = (fuzzing.mutated(rng, fuzzing.parquet_file(rng), fuzzing.parquet_file(rng)) if rng.random() < 0.8
                        else fuzzing.parquet_file(rng))
            else:
                data = fuzzing.mutated(rng, fuzzing.valid_file(rng, suffix), fuzzing.valid_file(rng, suffix))
            path = work / f"{index}{suffix}"
            path.write_bytes(data)
            outcome = _outcome(lambda: fuzzing.check(path))
            counts[outcome] += 1
            if outcome != "ok":
                kept.append(fuzzing.keep(data, suffix).name)
            path.unlink()
        rows.append({"class": f"fuzzed {suffix}", "inputs": n, **counts, "kept_in_corpus": kept})
    for codec, compress in COMPRESSORS.items():
        for inner in (".jsonl", ".json"):
            counts = {"ok": 0, "lost": 0, "crash": 0}
            damaged = {"ok": 0, "lost": 0, "crash": 0}
            n = max(1, count // 10)
            for index in range(n):
                text = fuzzing.mutated(rng, fuzzing.valid_file(rng, inner), fuzzing.valid_file(rng, inner))
                plain, packed = work / f"{index}{inner}", work / f"{index}{inner}{codec}"
                plain.write_bytes(text)
                packed.write_bytes(compress(text))
                counts[_outcome(lambda: _compressed_check(packed, plain))] += 1
                packed.write_bytes(fuzzing.mutated(rng, compress(text), b""))
                damaged[_outcome(lambda: _damaged_check(packed))] += 1
                plain.unlink()
                packed.unlink()
            rows.append({"class": f"fuzzed {inner}{codec}", "inputs": n, **counts})
            rows.append({"class": f"damaged {inner}{codec} bytes", "inputs": n, **damaged})
    return rows


def _record(index: int, content: str = "hi") -> bytes:
    return json.dumps({"id": f"r{index}", "messages": [{"role": "user", "content": content},
                                                        {"role": "assistant", "content": f"answer {index}"}]}).encode()


def hostile_files() -> dict[str, tuple[str, bytes, int]]:
    """The hostile pool files named by the issues: (file name, bytes, records the file holds)."""
    good = [_record(i) for i in range(6)]
    array = b"[" + b", ".join(good[:3]) + b", {bad, " + b", ".join(good[3:]) + b"]"
    surrogate = b"\n".join([*good[:3], _record(9).replace(b'"hi"', b'"cut \\ud83d emoji"'), *good[3:]]) + b"\n"
    huge_int = b"\n".join([*good[:3], b'{"id": ' + b"9" * 5000 + b', "messages": []}', *good[3:]]) + b"\n"
    oversize = b"\n".join([*good[:3], _record(9, "x" * (1 << 21)), *good[3:]]) + b"\n"
    stray = b"[" + b", ".join(good[:3]) + b", \x00\xffgarbage, " + b", ".join(good[3:]) + b"]"
    lines = b"\n".join(good) + b"\n"
    return {"lone surrogate escape": ("pool.jsonl", surrogate, 7),
            "broken array element": ("pool.json", array, 7),
            "two arrays in one file": ("pool.json", b"[" + b", ".join(good[:3]) + b"]\n[" + b", ".join(good[3:]) + b"]", 6),
            "stray bytes between elements": ("pool.json", stray, 7),
            "integer of 5,000 digits": ("pool.jsonl", huge_int, 7),
            "record over the maximum size": ("pool.jsonl", oversize, 7),
            "gzip JSON lines": ("pool.jsonl.gz", gzip.compress(lines, mtime=0), 6),
            "zstd JSON lines": ("pool.jsonl.zst", COMPRESSORS[".zst"](lines), 6)}


def hostile_end_to_end(work: Path) -> list[dict]:
    """Each hostile file through the reader, the source table and a ring's validation."""
    rows = []
    for name, (file_name, data, held) in hostile_files().items():
        root = work / name.replace(" ", "_").replace(",", "")
        root.mkdir()
        path = root / file_name
        path.write_bytes(data)
        layout = store.Layout(root / "storage")
        row = {"class": name, "records_in_file": held}
        try:
            count = ingest.write_shuffled_source(readers.iter_raw_records(str(path), max_record_bytes=1 << 20),
                                                 layout.source_pool, seed=0)
            ring = pool.write_ring_records(layout, Ring(0, count), workers=1)
            row.update(read=count, kept=ring.kept, quarantined=ring.quarantined, crash=0,
                       lost=held - ring.kept - ring.quarantined)
        except Exception as error:  # noqa: BLE001 - a crash is what this counts
            row.update(crash=1, lost=held, error=f"{type(error).__name__}: {error}"[:200])
        rows.append(row)
    return rows


KILLED_WRITER = """
import sys
from pathlib import Path
from selection_assets.core import store
target, number = Path(sys.argv[1]), 0
print("writing", flush=True)
while True:
    number += 1
    store.write_json({"version": number, "payload": "x" * 100_000}, target / "report.json")
    work = store.temp_dir_beside(target / "dir")
    for part in range(4):
        (work / f"part-{part}").write_text(str(number) * 10_000)
    store.replace_dir(work, target / "dir")
"""


def killed_writers(kills: int, work: Path) -> dict:
    """SIGKILL a process writing a file and a directory in a loop, `kills` times at random moments;
    after each kill the file parses and the directory holds one whole version."""
    rng = random.Random(0)
    survived = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(kills):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(work)], stdout=subprocess.PIPE, env=env)
        writer.stdout.readline()
        time.sleep(rng.uniform(0.05, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        try:
            json.loads((work / "report.json").read_text())
            parts = {(work / "dir" / f"part-{p}").read_text() for p in range(4)}
            survived += len(parts) == 1
        except (FileNotFoundError, ValueError):
            pass
        store.remove_partial_writes(work)
    return {"fault": "writer SIGKILLed mid-write (file and directory)", "injected": kills, "survived": survived}


def polled_replacements(replacements: int, work: Path) -> dict:
    """A reader polling a directory while it is replaced `replacements` times: never absent."""
    final, seen, stop = work / "polled", [], threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append((final / "a").exists())

    work_dir = store.temp_dir_beside(final)
    (work_dir / "a").write_text("0")
    store.replace_dir(work_dir, final)
    reader = threading.Thread(target=poll)
    reader.start()
    for number in range(replacements):
        work_dir = store.temp_dir_beside(final)
        (work_dir / "a").write_text(str(number))
        store.replace_dir(work_dir, final)
    stop.set()
    reader.join()
    return {"fault": "directory replaced under a polling reader", "injected": replacements,
            "survived": replacements if all(seen) else 0, "reads": len(seen), "absent_reads": seen.count(False)}


def reaper_faults() -> list[dict]:
    """The lease tests of the suite, run here as the faults they inject."""
    tests = {"run process SIGKILLed (reaped, slot freed)": "test_the_sensor_fails_a_run_whose_process_died",
             "re-execution carrying a dead parent's tags (left running)": "test_a_reexecuted_killed_run",
             "live run in another pid namespace (left running)": "test_a_live_run_in_another_pid_namespace"}
    rows = []
    for fault, test in tests.items():
        passed = _pytest(f"selection_assets_tests/test_runs.py::{_full_name('selection_assets_tests/test_runs.py', test)}")
        rows.append({"fault": fault, "injected": 1, "survived": int(passed)})
    return rows


def _full_name(path: str, prefix: str) -> str:
    return next(line.split("(")[0].removeprefix("def ") for line in (REPO / path).read_text().splitlines()
                if line.startswith(f"def {prefix}"))


def _pytest(node: str) -> bool:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", node],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode == 0


def preflight_refusals(work: Path) -> dict:
    """Bad settings through `selection-assets demo`: refused with exit 2 and nothing in storage."""
    cases = {"SELECTION_ASSETS_POOL": str(work / "missing.jsonl"),
             "SELECTION_ASSETS_BASE_MODEL": str(work / "no_model"),
             "SELECTION_ASSETS_EVAL_TASKS": str(work / "tasks.json")}
    (work / "tasks.json").write_text('{"tasks": ["x"]}')
    refused = 0
    for variable, value in cases.items():
        home = work / f"home_{variable.lower()}"
        small = work / f"{home.name}.toml"
        small.write_text(config.shipped("world").changed(pool_sizes=[80, 160], budgets=[40]).dumps())
        env = {**os.environ, "DAGSTER_HOME": str(home), variable: value, "PYTHONPATH": str(REPO),
               config.CONFIG_ENV: str(small)}
        env.pop(config.PROFILE_ENV, None)
        done = subprocess.run([sys.executable, "-m", "selection_assets.cli", "demo"], env=env, capture_output=True,
                              text=True, cwd=work)
        refused += done.returncode == 2 and variable in done.stdout and not (home / "storage").exists()
    return {"fault": "bad pool, base model or eval tasks (preflight)", "injected": len(cases), "survived": refused}


def kill_matrix() -> dict:
    """The suite's kill matrix: a demo SIGKILLed at six points, rerun to the uninterrupted bytes."""
    passed = _pytest("selection_assets_tests/test_kill_matrix.py")
    return {"fault": "demo SIGKILLed at 6 points, then rerun (kill matrix)", "injected": 6, "survived": 6 * passed}


def main() -> None:
    from benchmarks._common import save

    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=20_000, help="fuzzed inputs per text format")
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--kill-matrix", action="store_true", help="also run the suite's kill matrix (minutes)")
    args = parser.parse_args()
    seed = random.SystemRandom().randrange(2**32)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for part in ("fuzz", "hostile", "writer", "poll", "preflight"):
            (work / part).mkdir()
        inputs = fuzzed_inputs(args.inputs, seed, work / "fuzz")
        print(json.dumps(inputs), flush=True)
        hostile = hostile_end_to_end(work / "hostile")
        print(json.dumps(hostile), flush=True)
        faults = [killed_writers(args.kills, work / "writer"), polled_replacements(2000, work / "poll"),
                  *reaper_faults(), preflight_refusals(work / "preflight")]
        if args.kill_matrix:
            faults.append(kill_matrix())
        print(json.dumps(faults), flush=True)
    save("robustness", {"seed": seed, "inputs": inputs, "hostile": hostile, "faults": faults})


if __name__ == "__main__":
    main()
