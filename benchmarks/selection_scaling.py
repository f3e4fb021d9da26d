"""RDS+ selection at scale on synthetic unit vectors: streaming similarity + per-task maxima +
round-robin, against a bare GEMM over the same data and the dict-of-dicts reference procedure.

    python -m benchmarks.selection_scaling            # pools 100k, 300k, 1M (d=1024, 1000 queries, 7 tasks)
    python -m benchmarks.selection_scaling --quick    # pools 20k, 50k

Each measurement runs in a fresh process so its peak RSS is its own. Embeddings are float16 on
disk, memory-mapped, as the pipeline stores them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DIM = 1024
# the paper's query-set sizes (MMLU 285, GSM8K 8, BBH 81, TydiQA 9, HumanEval 100, SQuAD 500,
# AlpacaEval 50), scaled to 1000 queries over 7 tasks
TASK_SIZES = [276, 8, 78, 9, 97, 484, 48]
BLOCK_ROWS = 65536
DATA = Path("/tmp/selection_assets_bench")


def make_pool(n: int) -> Path:
    """N float16 unit vectors in a .npy file, written in chunks (never N x d in float32)."""
    path = DATA / f"pool_{n}.npy"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float16, shape=(n, DIM))
    for begin in range(0, n, BLOCK_ROWS):
        block = rng.standard_normal((min(BLOCK_ROWS, n - begin), DIM), dtype=np.float32)
        out[begin : begin + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    path.with_suffix(".tmp.npy").rename(path)
    return path


def queries() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((sum(TASK_SIZES), DIM), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    tasks = np.repeat(np.arange(len(TASK_SIZES)), TASK_SIZES)
    return q, tasks


def blocks(path: Path):
    """The pool's blocks as the pipeline reads its shards: each mapped only while it is read, so pages
    already read do not stay resident (one mapping of the whole file would hold every page touched)."""
    rows = len(np.load(path, mmap_mode="r"))
    for start in range(0, rows, BLOCK_ROWS):
        pool = np.load(path, mmap_mode="r")
        yield pool[start : start + BLOCK_ROWS]
        del pool


def run_ours(path: Path) -> dict:
    from selection_assets.core.ranking import round_robin_select
    from selection_assets.core.similarity import group_max_scores

    q, tasks = queries()
    began = time.perf_counter()
    sims, _ = group_max_scores(blocks(path), q, tasks, block_rows=BLOCK_ROWS)
    similarity_s = time.perf_counter() - began
    chosen = round_robin_select(sims, int(0.4 * len(sims)))
    total = time.perf_counter() - began
    return {"seconds": total, "similarity_seconds": similarity_s, "selected": len(chosen)}


def run_gemm(path: Path) -> dict:
    """The floor: the same float16 -> float32 blocks times the queries, result discarded."""
    q, _ = queries()
    qt = np.ascontiguousarray(q.T)
    began = time.perf_counter()
    for block in blocks(path):
        np.asarray(block, dtype=np.float32) @ qt
    return {"seconds": time.perf_counter() - began}


def run_reference(path: Path) -> dict:
    """The public reference's procedure: per-query {example: score} dicts (what its pickles held),
    merged per task into {example: max score} dicts in Python, then a Python round-robin."""
    q, tasks = queries()
    began = time.perf_counter()
    pool = np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32)
    ids = list(range(len(pool)))
    per_query = []
    for begin in range(0, len(q), 100):
        sims = pool @ q[begin : begin + 100].T
        for column in range(sims.shape[1]):
            per_query.append(dict(zip(ids, sims[:, column].tolist())))
    per_task = []
    for task in range(len(TASK_SIZES)):
        best: dict[int, float] = {}
        for query in np.flatnonzero(tasks == task):
            for example, score in per_query[query].items():
                if score > best.get(example, -2.0):
                    best[example] = score
        per_task.append(sorted(best.items(), key=lambda item: -item[1]))
    budget, taken, chosen, cursor = int(0.4 * len(pool)), set(), [], 0
    while len(chosen) < budget:
        for ranking in per_task:
            example = ranking[cursor][0]
            if example not in taken:
                taken.add(example)
                chosen.append(example)
                if len(chosen) == budget:
                    break
        cursor += 1
    return {"seconds": time.perf_counter() - began, "selected": len(chosen)}


def child(kind: str, n: int) -> None:
    from benchmarks._common import peak_rss_mb

    result = {"ours": run_ours, "gemm": run_gemm, "reference": run_reference}[kind](make_pool(n))
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    from benchmarks._common import median_of, run_isolated, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-at", type=int, default=100_000)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    sizes = [20_000, 50_000] if args.quick else [100_000, 300_000, 1_000_000]
    reference_at = sizes[0] if args.quick else args.reference_at
    rows = []
    for n in sizes:
        make_pool(n)
        ours = [run_isolated("selection_scaling", "--child", "ours", str(n)) for _ in range(args.repeats)]
        gemm = [run_isolated("selection_scaling", "--child", "gemm", str(n)) for _ in range(args.repeats)]
        row = {"pool": n, "budget": int(0.4 * n), "ours_s": median_of(ours, "seconds"),
               "similarity_s": median_of(ours, "similarity_seconds"), "gemm_s": median_of(gemm, "seconds"),
               "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
               "embeddings_mb": n * DIM * 2 / 2**20}
        if n == reference_at:
            reference = run_isolated("selection_scaling", "--child", "reference", str(n))
            row.update(reference_s=reference["seconds"], reference_peak_rss_mb=reference["peak_rss_mb"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    save("selection_scaling", {"dim": DIM, "queries": sum(TASK_SIZES), "tasks": len(TASK_SIZES),
                               "repeats": args.repeats, "rows": rows})
    _plot(rows)


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks._common import RESULTS

    pools = [r["pool"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(pools, [r["ours_s"] for r in rows], marker="o", label="selection (similarity + round-robin)")
    left.plot(pools, [r["gemm_s"] for r in rows], marker="s", label="bare GEMM, same data")
    left.set(xscale="log", yscale="log", xlabel="pool size", ylabel="seconds", title="RDS+ selection time")
    left.legend()
    right.plot(pools, [r["ours_peak_rss_mb"] for r in rows], marker="o", label="peak RSS")
    right.plot(pools, [r["embeddings_mb"] + 1024 for r in rows], linestyle="--", label="embeddings + 1 GiB")
    right.set(xscale="log", yscale="log", xlabel="pool size", ylabel="MiB", title="Memory")
    right.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "selection_scaling.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
