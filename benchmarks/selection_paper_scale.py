"""RDS+ selection measured at the paper's pool size: 5.8M float16 unit vectors (d = 1,024) stored as
the pipeline stores embeddings (shards of 4,096 rows with a manifest, read by `embed.iter_shards`),
1,000 queries over 7 tasks, the budget the paper selects (10,000) and beyond. Each precision's
selection runs against a bare GEMM over the same shards in the same precision, each measurement in
a fresh process with its own peak RSS; the float32 and bfloat16 selections are compared (overlap
of the chosen sets at every budget).

    python -m benchmarks.selection_paper_scale                 # 5.8M rows: ~12 GB of shards in /tmp, ~15 min
    python -m benchmarks.selection_paper_scale --rows 200000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.selection_scaling import DIM, queries

SHARD_ROWS = 4096  # DataResource.shard_size's default
DATA = Path("/tmp/selection_assets_bench")
BUDGETS = (1_000, 10_000, 100_000, 1_000_000)


def make_shards(n: int) -> Path:
    """N float16 unit vectors as the pipeline stores them: shard-XXXXX.npy files and a manifest."""
    directory = DATA / f"shards_{n}"
    if (directory / "manifest.json").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    shards = []
    for index, begin in enumerate(range(0, n, SHARD_ROWS)):
        block = rng.standard_normal((min(SHARD_ROWS, n - begin), DIM), dtype=np.float32)
        name = f"shard-{index:05d}.npy"
        np.save(directory / name, (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float16))
        shards.append({"file": name, "rows": len(block)})
    (directory / "manifest.json").write_text(json.dumps({"shards": shards}))
    return directory


def run_selection(directory: Path, precision: str, out: Path) -> dict:
    """Similarity (per-task maxima) and round-robin, as rds.score and rds.select run them; the
    selection order (every budget's choice is a prefix of it) is written to `out`."""
    from selection_assets.core.embed import iter_shards
    from selection_assets.core.ranking import round_robin_select
    from selection_assets.core.similarity import group_max_scores

    q, tasks = queries()
    began = time.perf_counter()
    sims, _ = group_max_scores(iter_shards(directory), q, tasks, precision=precision)
    similarity_s = time.perf_counter() - began
    order = round_robin_select(sims, max(BUDGETS))
    total = time.perf_counter() - began
    np.save(out, order)
    return {"seconds": total, "similarity_seconds": similarity_s, "selected": len(order)}


def run_gemm(directory: Path, precision: str) -> dict:
    """The floor: the same shards times the queries in `precision`, the products discarded."""
    import torch

    from selection_assets.core.embed import iter_shards

    q, _ = queries()
    began = time.perf_counter()
    if precision == "float32":
        qt = np.ascontiguousarray(q.T)
        for shard in iter_shards(directory):
            np.asarray(shard, dtype=np.float32) @ qt
    else:
        qt = torch.from_numpy(q).to(torch.bfloat16).T.contiguous()
        for shard in iter_shards(directory):
            torch.from_numpy(np.asarray(shard)).to(torch.bfloat16) @ qt
    return {"seconds": time.perf_counter() - began}


def child(kind: str, n: int, precision: str) -> None:
    from benchmarks._common import peak_rss_mb

    directory = make_shards(n)
    if kind == "selection":
        result = run_selection(directory, precision, DATA / f"order_{n}_{precision}.npy")
    else:
        result = run_gemm(directory, precision)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def overlap(n: int) -> dict[str, float]:
    """Share of the float32 selection that the bfloat16 selection also chose, per budget."""
    exact = np.load(DATA / f"order_{n}_float32.npy")
    fast = np.load(DATA / f"order_{n}_bfloat16.npy")
    return {str(b): len(np.intersect1d(exact[:b], fast[:b])) / b for b in BUDGETS if b <= len(exact)}


def main() -> None:
    from benchmarks._common import median_of, run_isolated, save

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_800_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    began = time.perf_counter()
    make_shards(args.rows)
    print(f"shards ready in {time.perf_counter() - began:.0f}s", flush=True)
    rows = []
    for precision in ("float32", "bfloat16"):
        runs: dict[str, list[dict]] = {"selection": [], "gemm": []}
        for _ in range(args.repeats):  # interleaved, so drift in the shared machine's speed hits both alike
            for kind in runs:
                runs[kind].append(run_isolated("selection_paper_scale", "--child", kind, str(args.rows), precision))
        row = {"precision": precision, "pool": args.rows, "queries": 1000, "dim": DIM,
               "selection_s": median_of(runs["selection"], "seconds"),
               "similarity_s": median_of(runs["selection"], "similarity_seconds"),
               "gemm_s": median_of(runs["gemm"], "seconds"),
               "selection_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["selection"]),
               "gemm_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["gemm"])}
        row["ratio_to_gemm"] = row["selection_s"] / row["gemm_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    agreement = overlap(args.rows)
    print("bfloat16 / float32 overlap:", json.dumps(agreement))
    path = save(f"selection_paper_scale_{args.rows}", {
        "command": f"python -m benchmarks.selection_paper_scale --rows {args.rows}", "rows": rows,
        "bfloat16_overlap_with_float32": agreement, "budgets": list(BUDGETS), "shard_rows": SHARD_ROWS})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
