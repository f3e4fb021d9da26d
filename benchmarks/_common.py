"""Shared helpers of the benchmarks: timing in a fresh subprocess (for an honest peak RSS), the
machine description, and result files under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module: str, *args: str) -> dict:
    """Run `python -m benchmarks.<module> <args>` in a fresh process; its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(RESULTS.parents[1])}
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], capture_output=True, text=True,
                         env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def commit() -> str | None:
    """The checkout's commit, with "+changes" when tracked files outside benchmarks/results differ from it;
    None outside git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=RESULTS.parents[1], capture_output=True, text=True)

    try:
        head = git("rev-parse", "--short", "HEAD")
    except FileNotFoundError:  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    # results files are what benchmarks write, not what they run: one run's output must not mark the next as changed
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results").stdout.strip()
    return head.stdout.strip() + ("+changes" if changed else "")


def machine() -> dict:
    import torch
    import transformers

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d"), "commit": commit()}


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
