"""The diversity methods at a million rows, through the bounded-memory embedding matrix: k-center,
k-means (sqrt(N) clusters, round-robin), k-means per budget (Xia et al.), DEITA's redundancy filter
and InstructMining's KNN-6, each in a fresh process (its own peak RSS), each twice: with the
default memory budget (ComputeResource.embedding_memory_mb) and with none, every pass re-reading
the float16 shards. The two must choose the same rows (a digest of each result is compared).

    python -m benchmarks.diversity_scale                      # 1M x 192, budget 1,000; KNN-6 on 100k rows
    python -m benchmarks.diversity_scale --rows 100000 --knn-rows 20000   # a quick look
    python -m benchmarks.diversity_scale --kinds knn6 --knn-rows 1000000 --budgeted-only knn6   # ~50 min

The vectors are a seeded mixture of 2,000 Gaussian clusters, L2-normalised, stored as float16
shards of 4,096 rows with a manifest (as the pipeline stores embeddings); d = 192 is the world
LM's width. KNN-6 is exact, so its time grows as N^2: it is measured on the first --knn-rows rows
(whole shards, rounded up). Kinds named in --budgeted-only run with the default budget alone, for
when their twin without one has already been compared at a smaller N.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from benchmarks._common import peak_rss_mb, run_isolated, save

SHARD_ROWS = 4096
DATA = Path("/tmp/selection_assets_bench")
KINDS = ("kcenter", "kmeans", "kmeans_per_budget", "deita", "knn6")


def make_shards(n: int, dim: int) -> Path:
    """N clustered float16 unit vectors as the pipeline stores them (shards and a manifest)."""
    directory = DATA / f"clustered_{n}_{dim}"
    if (directory / "manifest.json").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n + dim)
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    shards = []
    for index, begin in enumerate(range(0, n, SHARD_ROWS)):
        rows = min(SHARD_ROWS, n - begin)
        block = centres[rng.integers(len(centres), size=rows)] + 0.6 * rng.standard_normal((rows, dim), dtype=np.float32)
        name = f"shard-{index:05d}.npy"
        np.save(directory / name, (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float16))
        shards.append({"file": name, "rows": rows})
    (directory / "manifest.json").write_text(json.dumps({"shards": shards}))
    return directory


def child(kind: str, directory: Path, memory_mb: int, budget: int, limit: int | None) -> None:
    """Run one method over the shards; print seconds, peak RSS and a digest of its result."""
    from itertools import islice
    from math import ceil

    from selection_assets.core.embed import iter_shards
    from selection_assets.core.embedding_matrix import EmbeddingMatrix
    from selection_assets.core.methods import deita, diversity, instructmining

    began = time.perf_counter()
    shards = iter_shards(directory)
    matrix = EmbeddingMatrix(islice(shards, ceil(limit / SHARD_ROWS)) if limit else shards, memory_mb * 2**20)
    if kind == "kcenter":
        result = diversity.kcenter_order(matrix, budget, seed=0)
    elif kind == "kmeans":
        result = diversity.kmeans_order(matrix, diversity.default_clusters(len(matrix)), seed=0)
    elif kind == "kmeans_per_budget":
        result = diversity.kmeans_nearest_to_centroids(matrix, budget, seed=0)
    elif kind == "deita":
        ranking = np.random.default_rng(0).permutation(len(matrix))  # any quality ranking walks the same way
        result = deita.redundancy_filter(matrix, ranking, budget, threshold=0.9)
    else:
        result = instructmining.knn_distance(matrix)
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mb(), "rows": len(matrix),
                      "kept_mib": matrix.kept_bytes / 2**20,
                      "digest": hashlib.sha256(np.ascontiguousarray(result).tobytes()).hexdigest()[:16]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--budget", type=int, default=1_000)
    parser.add_argument("--knn-rows", type=int, default=100_000)
    parser.add_argument("--memory-mb", type=int, default=2048, help="the default budget (ComputeResource)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--budgeted-only", default="", help="kinds run with the default memory budget only")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "DIR", "MEMORY_MB", "LIMIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, directory, memory_mb, limit = args.child
        child(kind, Path(directory), int(memory_mb), args.budget, int(limit) or None)
        return
    directory = make_shards(args.rows, args.dim)
    rows, kinds, budgeted_only = [], args.kinds.split(","), set(filter(None, args.budgeted_only.split(",")))
    for kind in kinds:
        limit = args.knn_rows if kind == "knn6" else 0
        for memory_mb in (args.memory_mb,) if kind in budgeted_only else (args.memory_mb, 0):
            result = run_isolated("diversity_scale", "--budget", str(args.budget),
                                  "--child", kind, str(directory), str(memory_mb), str(limit))
            rows.append({"method": kind, "memory_mb": memory_mb, **result})
            print(f"{kind:>18} memory {memory_mb:>5} MiB  rows {result['rows']:>9,}  {result['seconds']:8.1f}s  "
                  f"peak {result['peak_rss_mib']:6.0f} MiB  kept {result['kept_mib']:5.0f} MiB  {result['digest']}",
                  flush=True)
        if kind not in budgeted_only:
            same = rows[-1]["digest"] == rows[-2]["digest"]
            rows[-1]["same_as_kept"] = rows[-2]["same_as_kept"] = same
    name = f"diversity_scale_{args.rows}" + ("" if kinds == list(KINDS) else "_" + "_".join(kinds))
    path = save(name, {
        "command": f"python -m benchmarks.diversity_scale --rows {args.rows} --dim {args.dim} --budget {args.budget} "
                   f"--knn-rows {args.knn_rows} --kinds {args.kinds}"
                   + (f" --budgeted-only {args.budgeted_only}" if budgeted_only else ""),
        "rows": args.rows, "dim": args.dim, "budget": args.budget, "runs": rows})
    print(path)


if __name__ == "__main__":
    main()
