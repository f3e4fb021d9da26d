"""The tables of benchmarks/RESULTS.md and the summaries of the documents (docs/scale.md, docs/results.md),
rendered from result files between `<!-- results:NAME begin -->` and `<!-- results:NAME end -->` markers, so that their
numbers cannot drift from the runs (a test fails while either differs from a fresh rendering).
Prose around them is written by hand and cites the same files.

    python -m benchmarks.tables        # rewrite every rendered section from benchmarks/results/
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from scipy.stats import binom

from benchmarks import embedding_throughput
from selection_assets.core import embed
from selection_assets.core.report import interval_bounds
from selection_assets.reporting.results_section import document_holding, format_duration, replace_section

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
REPO = HERE.parent
COMMAND = "python -m benchmarks.tables"
RING_ASSETS = ("ring_records", "ring_token_counts", "ring_embeddings_position_weighted")
EMBEDDING_ASSET = "ring_embeddings_position_weighted"
# issue 13's goals, each judged from its results file
GPU_MFU_GOAL = 0.40  # the 1B embedding pass in bf16
MEMORY_GOAL_MIB = 4096  # every lineage step at most 4 GB at 1M
LINEAR_SLACK = 1.2  # "at most linear": a ring stage's seconds per row may grow this much from ring to ring
FLAT_MIB = 128  # "flat in N": a peak that moves less than this from the smallest N to the largest
SELECTION_GEMM_GOAL = 2.0  # RDS+ selection within 2x of a bare GEMM over the same data
REFERENCE_SPEEDUP_GOAL = 20  # and at least 20x the dict-of-dicts reference
PAPER_SCALE_FLOOR_GOAL = 1.2  # selection at 5.8M within 1.2x of the GEMM floor at the fastest precision
PAPER_SCALE_MEMORY_GOAL_MIB = 2048  # and at most 2 GB of peak RSS
PARALLEL_GOAL = 1.8  # ingestion and tokenisation on 2 cores over one process
EMBEDDING_SPEEDUP_GOAL = 3.0  # batched embedding over a batch-1 loop on the CPU
AGREEMENT_GOAL = 0.99  # bfloat16 may be the CPU default if its RDS+ picks overlap float32's this much everywhere
# the assets of the lineage table, in its order (the other methods' rows stay in the results file)
LINEAGE_ASSETS = ["ring_records", "ring_token_counts", "ring_embeddings_position_weighted", "pool_manifest",
                  "rds_plus/scores", "random_balanced/scores", "rds_plus/selection", "rds_plus/finetuned",
                  "rds_plus/eval_report"]


def _pipe_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table: the first column left-aligned, the numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _step_label(asset: str, pool_size: int, previous: int, budget: int) -> str:
    """The lineage step that holds `asset` at `pool_size`: its ring, its pool or its cell."""
    if asset.startswith("ring_"):
        return f"ring {previous}-{pool_size}"
    if asset.endswith(("/selection", "/finetuned", "/eval_report")):
        return f"pool {pool_size} budget {budget}"
    return f"pool {pool_size}"


def lineage_table(result: dict) -> str:
    """Run seconds and peak RSS of each spine asset at every pool size, and the whole run's time."""
    steps = {(row["label"], row["asset"]): row for row in result["steps"]}
    sizes, budget = result["pool_sizes"], result["budgets"][0]
    header = ["asset (ring: its new rows; pool or cell: the pool size)"]
    for size in sizes:
        header += [f"{size:,}: run s", "peak MiB"]
    rows = []
    for asset in LINEAGE_ASSETS:
        row = [asset]
        for previous, size in zip([0, *sizes], sizes):
            step = steps[(_step_label(asset, size, previous, budget), asset)]
            row += [f"{step['step_seconds']:.1f}", f"{step['peak_rss_mib']:,.0f}"]
        rows.append(row)
    inside = sum(row["step_seconds"] for row in result["steps"])
    return (f"**Whole run: {format_duration(result['total_wall_seconds'])}** ({result['total_wall_seconds']:,.0f} s; "
            f"{inside:,.0f} s inside the runs; budget {budget:,}).\n\n"
            + _pipe_table(header, rows) + "\n\nOnce per run, sized by the largest pool or independent of N: "
            + "; ".join(f"{step['asset']} {step['step_seconds']:.1f} s, {step['peak_rss_mib']:,.0f} MiB"
                        for step in result["steps"] if step["label"] == "inputs")
            + ".\n\n" + lineage_goals(result))


def _rings(result: dict, asset: str) -> list[dict]:
    """`asset`'s steps over the rings, smallest ring first, each with its number of new rows."""
    rings = []
    for step in result["steps"]:
        if step["asset"] == asset and step["label"].startswith("ring "):
            first, last = (int(bound) for bound in step["label"].removeprefix("ring ").split("-"))
            rings.append({**step, "rows": last - first})
    return sorted(rings, key=lambda step: step["rows"])


def _ring_moves(result: dict) -> list[float]:
    """Per ring stage, its peak at the largest ring minus its peak at the smallest."""
    return [rings[-1]["peak_rss_mib"] - rings[0]["peak_rss_mib"]
            for rings in (_rings(result, asset) for asset in RING_ASSETS)]


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _goal_line(label: str, met: bool | str, detail: str) -> str:
    """A goal judged: met, not met, or a verdict of its own words (e.g. met for some stages only)."""
    return f"**{label}: {met if isinstance(met, str) else _verdict(met)}** ({detail})"


def _goal(label: str, met: bool | str, detail: str) -> str:
    """A goal's bullet (`_goal_line` in a list)."""
    return "- " + _goal_line(label, met, detail)


def _moves(result: dict, kind: str) -> list[float]:
    """Per asset of one kind of step ("pool" or "cell"), its peak at the largest pool minus its
    peak at the smallest."""
    sizes = result["pool_sizes"]
    steps = [step for step in result["steps"] if step["label"].startswith("pool ")
             and (" budget " in step["label"]) == (kind == "cell")]
    peaks = {(step["asset"], int(step["label"].split()[1])): step["peak_rss_mib"] for step in steps}
    assets = sorted({asset for asset, _ in peaks})
    return [peaks[(asset, sizes[-1])] - peaks[(asset, sizes[0])] for asset in assets
            if (asset, sizes[0]) in peaks and (asset, sizes[-1]) in peaks]


def lineage_goals(result: dict) -> str:
    """Issue 13 item 1's goals, judged from the run: peak RSS under 4 GB, time at most linear in N,
    peaks flat in N."""
    by_peak = sorted(result["steps"], key=lambda step: -step["peak_rss_mib"])
    largest, second = by_peak[0], next(step for step in by_peak if step["asset"] != by_peak[0]["asset"])
    growth = {asset: (rings[-1]["step_seconds"] / rings[-1]["rows"]) / (rings[0]["step_seconds"] / rings[0]["rows"])
              for asset, rings in ((asset, _rings(result, asset)) for asset in RING_ASSETS)}
    ring_moves = _ring_moves(result)
    pool_moves, cell_moves = _moves(result, "pool"), _moves(result, "cell")
    flat = {"ring": max(map(abs, ring_moves)) < FLAT_MIB, "pool": max(map(abs, pool_moves)) < FLAT_MIB,
            "cell": max(map(abs, cell_moves)) < FLAT_MIB}
    flat_kinds = [kind for kind, holds in flat.items() if holds]
    flat_verdict = (all(flat.values()) if len(flat_kinds) in (0, len(flat)) else
                    f"met for {' and '.join(f'{kind} stages' for kind in flat_kinds)}, not for "
                    + " and ".join(f"{kind} stages" for kind, holds in flat.items() if not holds))
    small, large = result["pool_sizes"][0], result["pool_sizes"][-1]
    largest_move = max(pool_moves + cell_moves)  # their N is the pool size

    def span(moves: list[float]) -> str:
        return f"{min(moves):+,.0f} to {max(moves):+,.0f} MiB"

    return "\n".join([
        "Goals (issue 13, item 1), judged from the table and the results file:",
        _goal(f"Peak RSS at most {MEMORY_GOAL_MIB / 1024:.0f} GiB at {large:,}", largest["peak_rss_mib"] <= MEMORY_GOAL_MIB,
              f"the largest step is {largest['asset']} at {largest['peak_rss_mib']:,.0f} MiB, the next "
              f"{second['asset']} at {second['peak_rss_mib']:,.0f} MiB"),
        _goal("Time at most linear in N", all(ratio <= LINEAR_SLACK for ratio in growth.values()),
              "seconds per row at the largest ring over the smallest: "
              + ", ".join(f"{asset} {ratio:.2f}" for asset, ratio in growth.items())
              + f"; at most {LINEAR_SLACK} counts as linear"),
        _goal("Peak RSS flat in N", flat_verdict,
              f"from the smallest N to the largest, peaks move by {span(ring_moves)} in ring stages, "
              f"{span(pool_moves)} in pool stages and {span(cell_moves)} in cell stages ({small:,} to {large:,}); "
              f"a move within {FLAT_MIB} MiB counts as flat; the largest pool or cell move is "
              f"{largest_move * 2**20 / (large - small):,.0f} bytes per added pool example"),
    ])


def _rate(value: float, unit: str) -> str:
    return f"{round(value, -2):,.0f} {unit}"


def _paired(step: dict) -> str:
    low, high = step["speedup_range"]
    return f"{step['speedup']:.2f}x ({low:.2f}-{high:.2f})"


def ingestion_table(result: dict) -> str:
    """Rates of each ingestion step in one process and over the workers, the pairs' speedups and
    what two independent processes reach."""
    steps, rates, ceiling = result["steps"], result["rates"], result["ceiling_of_the_cpus"]
    workers = result["workers"]

    def rated(key: str, unit: str) -> list[str]:
        return [_rate(rates[key]["one_process"], unit), _rate(rates[key]["workers"], unit)]

    rows = [
        ["shuffled source: read, parse ids, write, DuckDB shuffle", *rated("source_rows_per_s", "rows/s"),
         _paired(steps["source"]), f"{ceiling['source']['gain']:.2f}x (ids only)"],
        ["validation: parse, normalise, validate, quarantine, write parts",
         *rated("validate_rows_per_s", "rows/s"), _paired(steps["validate"]),
         f"{ceiling['validate']['gain']:.2f}x"],
        ["ingestion end to end (the two above, medians)", *rated("ingest_rows_per_s", "rows/s"),
         f"{result['ingest_speedup_of_medians']:.2f}x", ""],
        ["tokenisation: read, parse, encode, count", *rated("tokenize_tokens_per_s", "tokens/s"),
         _paired(steps["tokenize"]), f"{ceiling['tokenize']['gain']:.2f}x"],
        [f"peak RSS of the whole run (interpreter and imports: {result['baseline_rss_mb']:,.0f} MiB)",
         f"{result['peak_rss_mb']:,.0f} MiB", "", "", ""],
    ]
    header = ["step", "one process", f"{workers} worker processes",
              f"speedup (median, range of {result['repeats']} pairs)", f"{workers} independent processes (ceiling)"]
    return _pipe_table(header, rows) + "\n\n" + ingestion_goals(result)


def ingestion_goals(result: dict) -> str:
    """Issue 13 item 4's goal per step, read as the speedup over today's code in one process (the
    issue's own code is set beside today's by `ingestion_issue_baseline_table`)."""
    steps, ceiling = result["steps"], result["ceiling_of_the_cpus"]

    def pairs_at_goal(step: str) -> str:
        speedups = steps[step]["speedups"]
        return f", {sum(s >= PARALLEL_GOAL for s in speedups)} of {len(speedups)} pairs at {PARALLEL_GOAL}x or more"

    return "\n".join([
        f"Goals (issue 13, item 4, read as at least {PARALLEL_GOAL}x on {result['workers']} cores over today's "
        "code in one process):",
        _goal("validation", steps["validate"]["speedup"] >= PARALLEL_GOAL,
              f"{steps['validate']['speedup']:.2f}x{pairs_at_goal('validate')}"),
        _goal("tokenisation", steps["tokenize"]["speedup"] >= PARALLEL_GOAL,
              f"{steps['tokenize']['speedup']:.2f}x, where two processes that share nothing reach "
              f"{ceiling['tokenize']['gain']:.2f}x"),
        _goal("writing the shuffled source", steps["source"]["speedup"] >= PARALLEL_GOAL,
              f"{steps['source']['speedup']:.2f}x"),
        _goal("ingestion end to end", result["ingest_speedup_of_medians"] >= PARALLEL_GOAL,
              f"{result['ingest_speedup_of_medians']:.2f}x"),
    ])


def ingestion_issue_baseline_table(result: dict) -> str:
    """Today's steps over the workers against the issue's own one-process code, side by side: each
    side's median rate over the pairs and the pairs' speedups."""
    pairs, rows = result["pairs"], result["rows"]

    def median_rate(rate) -> float:
        return statistics.median(rate(pair) for pair in pairs)

    def today_seconds(pair: dict, *steps: str) -> float:
        return sum(pair["today"][step]["seconds"] for step in steps)

    def paired(step: str) -> str:
        low, high = result["speedup_range"][step]
        return f"{result['speedup'][step]:.2f}x ({low:.2f}-{high:.2f})"

    table = [
        ["validation: parse, normalise, validate, quarantine",
         _rate(median_rate(lambda pair: pair["issue"]["validate_rows_per_s"]), "rows/s"),
         _rate(median_rate(lambda pair: rows / today_seconds(pair, "validate")), "rows/s"), paired("validate")],
        ["shuffled source: read, parse ids, write, DuckDB shuffle (not a step of the issue's benchmark)", "",
         _rate(median_rate(lambda pair: rows / today_seconds(pair, "source")), "rows/s"), ""],
        ["ingestion end to end (issue: read and validate; today: the shuffled source, then validate)",
         _rate(median_rate(lambda pair: pair["issue"]["ingest_rows_per_s"]), "rows/s"),
         _rate(median_rate(lambda pair: rows / today_seconds(pair, "source", "validate")), "rows/s"), paired("ingest")],
        ["tokenisation (each side's own tokenizer and token count)",
         _rate(median_rate(lambda pair: pair["issue"]["tokenize_tokens_per_s"]), "tokens/s"),
         _rate(median_rate(lambda pair: pair["today"]["tokenize"]["tokens"] / today_seconds(pair, "tokenize")),
               "tokens/s"), paired("tokenize")],
    ]
    header = ["step", f"the issue's code ({result['issue_commit']}), one process",
              f"today's code, {result['workers']} worker processes", f"speedup (median, range of {len(pairs)} pairs)"]
    goals = [f"Goals (issue 13, item 4, read as over the issue's own single process: at least {PARALLEL_GOAL}x):"]
    goals += [_goal(label, result["speedup"][step] >= PARALLEL_GOAL, f"{result['speedup'][step]:.2f}x")
              for label, step in (("validation", "validate"), ("tokenisation", "tokenize"),
                                  ("ingestion end to end", "ingest"))]
    return _pipe_table(header, table) + "\n\n" + "\n".join(goals)


DIVERSITY_METHODS = {"kcenter": "k-center (a pass per pick)", "kmeans": "k-means, sqrt(N) clusters, round-robin order",
                     "kmeans_per_budget": "k-means per budget (Xia et al.)", "deita": "DEITA redundancy filter",
                     "knn6": "KNN-6 (exact)"}


def _full_size_runs(result: dict) -> tuple[list[dict], list[dict]]:
    """The diversity runs over every row: with the default memory budget, and with none."""
    full = [run for run in result["runs"] if run["rows"] == result["rows"]]
    return [run for run in full if run["memory_mb"] > 0], [run for run in full if run["memory_mb"] == 0]


def diversity_table(result: dict, knn6_everything: dict) -> str:
    """Seconds and peak RSS of each diversity method with the default memory budget and with none,
    whether both chose the same, and KNN-6's own run over every row."""
    runs = {(run["method"], run["memory_mb"] > 0): run for run in result["runs"]}
    budgeted = next(run["memory_mb"] for run in result["runs"] if run["memory_mb"] > 0)
    rows = []
    for method, name in DIVERSITY_METHODS.items():
        kept, streamed = runs[(method, True)], runs[(method, False)]
        same = "yes" if streamed["same_as_kept"] else "no"
        rows.append([name, f"{kept['rows']:,}", f"{kept['seconds']:,.1f}", f"{kept['peak_rss_mib']:,.0f}",
                     f"{streamed['seconds']:,.1f}", f"{streamed['peak_rss_mib']:,.0f}", same])
    for run in knn6_everything["runs"]:
        rows.append([f"{DIVERSITY_METHODS[run['method']]}, its own run (below)", f"{run['rows']:,}",
                     f"{run['seconds']:,.0f}", f"{run['peak_rss_mib']:,.0f}", "not run", "", ""])
    header = ["method", "rows", f"budget {budgeted:,} MiB: s", "peak MiB", "budget 0: s", "peak MiB", "same result"]
    return _pipe_table(header, rows) + "\n\n" + _diversity_findings(result, knn6_everything)


def _diversity_findings(result: dict, knn6_everything: dict) -> str:
    """What the diversity table shows of issue 13 item 3 (bounded memory at 1M), and KNN-6's own run
    against the quadratic extrapolation of its smaller one."""
    kept, streamed = _full_size_runs(result)
    kept_mib = max(run["kept_mib"] for run in kept)
    same = sum(run["same_as_kept"] for run in result["runs"] if run["memory_mb"] == 0)
    small = next(run for run in result["runs"] if run["method"] == "knn6" and run["memory_mb"] > 0)
    everything = knn6_everything["runs"][0]
    predicted = small["seconds"] * (everything["rows"] / small["rows"]) ** 2
    return (f"With no embeddings kept (budget 0), the methods run over all {result['rows']:,} rows peak at "
            f"{min(run['peak_rss_mib'] for run in streamed):,.0f} to {max(run['peak_rss_mib'] for run in streamed):,.0f} "
            f"MiB, against the {kept_mib:,.0f} MiB that a float32 copy of the pool's embeddings takes on its own; "
            f"{same} of {sum(run['memory_mb'] == 0 for run in result['runs'])} methods choose the same with and "
            f"without a budget. Exact KNN-6 over all {everything['rows']:,} rows took {everything['seconds']:,.0f} s "
            f"({everything['seconds'] / 60:.0f} min), peak {everything['peak_rss_mib']:,.0f} MiB; the quadratic "
            f"extrapolation from its {small['rows']:,}-row run ({small['seconds']:.1f} s) is {predicted:,.0f} s, "
            f"so it took {everything['seconds'] / predicted:.2f}x that.")


def selection_scaling_table(result: dict) -> str:
    """RDS+ selection against the bare GEMM and the dict-of-dicts reference at each pool size."""
    rows = []
    for row in result["rows"]:
        reference = (f"{row['reference_s']:.1f} (peak RSS {row['reference_peak_rss_mb']:,.0f} MiB)"
                     if "reference_s" in row else "")
        rows.append([f"{row['pool']:,}", f"{row['budget']:,}", f"{row['ours_s']:.2f}", f"{row['similarity_s']:.2f}",
                     f"{row['gemm_s']:.2f}", f"{row['ours_s'] / row['gemm_s']:.2f}", f"{row['ours_peak_rss_mb']:,.0f}",
                     f"{row['embeddings_mb'] + 1024:,.0f}", reference])
    header = ["pool", "budget", "selection (s)", "of which similarity (s)", "bare GEMM, same data (s)", "ratio to GEMM",
              "peak RSS (MiB)", "embeddings + 1 GiB (MiB)", "dict-of-dicts reference (s)"]
    return _pipe_table(header, rows) + "\n\n" + selection_scaling_goals(result)


def selection_scaling_goals(result: dict) -> str:
    """The selection benchmark's goals: memory under the embeddings + 1 GiB, time within 2x of the
    bare GEMM, and 20x the dict-of-dicts reference."""
    rows = result["rows"]
    ratios = [row["ours_s"] / row["gemm_s"] for row in rows]
    peaks = [row["ours_peak_rss_mb"] for row in rows]
    reference = next(row for row in rows if "reference_s" in row)
    speedup = reference["reference_s"] / reference["ours_s"]
    return "\n".join([
        "Goals:",
        _goal("Peak RSS at most the embeddings plus 1 GiB", all(row["ours_peak_rss_mb"] <= row["embeddings_mb"] + 1024
                                                               for row in rows),
              "at every pool size: " + ", ".join(f"{row['ours_peak_rss_mb']:,.0f} of {row['embeddings_mb'] + 1024:,.0f} MiB"
                                                 for row in rows)),
        _goal("Peak RSS flat in N", max(peaks) - min(peaks) < FLAT_MIB,
              f"{min(peaks):,.0f} to {max(peaks):,.0f} MiB from {rows[0]['pool']:,} to {rows[-1]['pool']:,} rows; "
              f"a spread within {FLAT_MIB} MiB counts as flat"),
        _goal(f"Wall time within {SELECTION_GEMM_GOAL:g}x of a bare GEMM over the same data",
              all(ratio <= SELECTION_GEMM_GOAL for ratio in ratios), ", ".join(f"{ratio:.2f}x" for ratio in ratios)),
        _goal(f"At least {REFERENCE_SPEEDUP_GOAL}x faster than the dict-of-dicts reference at {reference['pool']:,}",
              speedup >= REFERENCE_SPEEDUP_GOAL,
              f"{speedup:.0f}x: {reference['reference_s']:.1f} s against {reference['ours_s']:.2f} s, with "
              f"{reference['reference_peak_rss_mb'] / reference['ours_peak_rss_mb']:.0f}x less memory"),
    ])


PRECISIONS = {"float32": "float32 (numpy; the default)",
              "bfloat16": "bfloat16 (torch, `ComputeResource.similarity_dtype`)"}


def selection_paper_scale_table(result: dict) -> str:
    """RDS+ selection at the paper's pool in each precision, against the bare GEMM floor."""
    rows = [[PRECISIONS[row["precision"]], f"{row['selection_s']:.1f}", f"{row['similarity_s']:.1f}",
             f"{row['gemm_s']:.1f}", f"{row['ratio_to_gemm']:.2f}", f"{row['selection_peak_rss_mb']:,.0f}"]
            for row in result["rows"]]
    header = ["precision", "selection (s)", "of which similarity (s)", "bare GEMM floor (s)", "ratio to the floor",
              "peak RSS (MiB)"]
    fastest = min(result["rows"], key=lambda row: row["selection_s"])
    others = [row for row in result["rows"] if row is not fastest]
    peaks = [row["selection_peak_rss_mb"] for row in result["rows"]]
    overlaps = result["bfloat16_overlap_with_float32"]
    by_precision = {row["precision"]: row for row in result["rows"]}
    speedup = by_precision["float32"]["selection_s"] / by_precision["bfloat16"]["selection_s"]
    return "\n".join([
        _pipe_table(header, rows), "", "Goals (issue 13):",
        _goal(f"Wall time within {PAPER_SCALE_FLOOR_GOAL}x of the GEMM floor at the fastest precision",
              fastest["ratio_to_gemm"] <= PAPER_SCALE_FLOOR_GOAL,
              f"{fastest['precision']}, the faster here, at {fastest['ratio_to_gemm']:.2f}x; "
              + ", ".join(f"{row['precision']} at {row['ratio_to_gemm']:.2f}x" for row in others)),
        _goal(f"Peak RSS at most {PAPER_SCALE_MEMORY_GOAL_MIB / 1024:.0f} GiB whatever N",
              max(peaks) <= PAPER_SCALE_MEMORY_GOAL_MIB, " / ".join(f"{peak:,.0f}" for peak in peaks) + " MiB"),
        "",
        f"bfloat16 selection is {speedup:.1f}x faster than float32 but not the default: its choices overlap "
        f"float32's by " + ", ".join(f"{100 * overlap:.1f}% at budget {int(budget):,}" for budget, overlap in
                                     sorted(overlaps.items(), key=lambda item: int(item[0]))) + "."])


def _scientific(value: float) -> str:
    """`value` with two significant digits and a plain exponent (3.1e-5)."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def embedding_throughput_table(*results: dict) -> str:
    """Batched against batch-1 embedding throughput per dtype, with the CPU's projection ceiling."""
    rows = [[result["dtype"].removeprefix("torch.") + (", compiled" if result.get("compiled") else ""),
             f"{result['batched_tokens_per_s']:,.0f}",
             f"{result['batch1_tokens_per_s']:,.0f}", _paired(result),
             f"{result['batched_projection_tflops']:.3f} TFLOP/s", f"{result['projection_ceiling_tflops']:.3f} TFLOP/s"]
            for result in results]
    header = ["dtype", "batched (tokens/s)", "batch 1 (tokens/s)",
              f"speedup, median (range of {results[0]['repeats']} pairs)", "batched projections", "ceiling"]
    eager = results[0]
    return (_pipe_table(header, rows) + "\n\n"
            + _goal_line(f"Goal (issue 13, item 5): batched at least {EMBEDDING_SPEEDUP_GOAL:g}x a batch-1 loop in "
                    f"{eager['dtype'].removeprefix('torch.')}, the CPU default", eager["speedup"] >= EMBEDDING_SPEEDUP_GOAL,
                    f"median {eager['speedup']:.2f}x, pairs from {eager['speedup_range'][0]:.2f}x to "
                    f"{eager['speedup_range'][1]:.2f}x"))


def _attention_flops(result: dict) -> float:
    """The run's causal attention FLOPs: stored by runs since they were, recomputed for older ones from
    the run's own seeded lengths (checked against its token count)."""
    if "causal_attention_flops" in result:
        return result["causal_attention_flops"]
    lengths = embedding_throughput.mfu_lengths(result["examples"])
    if int(lengths.sum()) != result["real_tokens"]:
        raise ValueError(f"the --mfu lengths of {result['examples']} examples sum to {int(lengths.sum())} tokens, "
                         f"not the run's {result['real_tokens']}: the run's attention FLOPs cannot be recomputed")
    return embedding_throughput.causal_attention_flops(lengths, result["model_size"])


def _padding_share(run: dict) -> float:
    """Padded tokens over real tokens in the length buckets CUDA embeds the run's sequences in."""
    lengths = embedding_throughput.mfu_lengths(run["examples"])
    batches = embed.length_buckets(lengths, run["batch_tokens"], attention_cells=None)
    return sum(len(batch) * int(lengths[batch].max()) for batch in batches) / int(lengths.sum()) - 1


def gpu_mfu_table(eager: dict, compiled: dict, larger_batches: dict) -> str:
    """Model FLOPs utilisation of the 1B embedding pass: eager with and without the padding mask,
    compiled (CUDA's default), and eager with larger batches; then whether the issue's 40% goal is met
    by the path CUDA takes by default."""
    peak = eager["achieved_tflops"] / eager["mfu"]  # the run's --peak-tflops

    def row(label: str, run: dict, tokens_per_s: float) -> list[str]:
        model_flops = 2 * run["matmul_parameters"] * tokens_per_s
        attention = _attention_flops(run) / run["real_tokens"] * tokens_per_s
        return [label, f"{round(tokens_per_s, -2):,.0f}", f"{model_flops / 1e12:,.0f}",
                f"{100 * model_flops / 1e12 / peak:.1f}%", f"{100 * (model_flops + attention) / 1e12 / peak:.1f}%",
                f"{100 * _padding_share(run):.1f}%", run["machine"].get("commit") or "not recorded"]

    rows = [row("eager, padding mask passed (as on the CPU)", eager, eager["masked_tokens_per_s"]),
            row("eager, right-padded, causal attention only", eager, eager["batched_tokens_per_s"]),
            row("same, compiled (CUDA's default: `embed_compile` unset)", compiled, compiled["batched_tokens_per_s"]),
            row(f"eager, {larger_batches['batch_tokens']:,} tokens per batch", larger_batches,
                larger_batches["batched_tokens_per_s"])]
    header = ["path", "tokens/s", "TFLOP/s", "MFU", "MFU counting causal attention too", "padding", "commit"]
    return (_pipe_table(header, rows) + f"\n\n**Goal (at least {GPU_MFU_GOAL:.0%}): "
            f"{_verdict(compiled['mfu'] >= GPU_MFU_GOAL)}; {100 * compiled['mfu']:.1f}% compiled, as CUDA embeds by "
            f"default** ({100 * eager['mfu']:.1f}% eager; peak taken as {peak:,.0f} TFLOP/s).")


def precision_agreement_table(result: dict) -> str:
    """Per grid cell: how far bfloat16's RDS+ picks overlap float32's, how far it moves scores, and
    how close float32's scores lie around the cut."""
    rows = [[f"{cell['pool_size']:,}", f"{cell['budget']:,}",
             f"{100 * cell['bfloat16']['overlap']:.2f}%", _scientific(cell["bfloat16"]["score_move_median"]),
             f"{100 * cell['bfloat16_products']['overlap']:.2f}%",
             _scientific(cell["bfloat16_products"]["score_move_median"]), _scientific(cell["float32_spacing_at_cut"])]
            for cell in result["cells"]]
    header = ["pool", "budget", "bfloat16: overlap", "score move", "bfloat16 products: overlap", "score move",
              "float32 spacing at the cut"]
    lines = [_pipe_table(header, rows), "",
             f"Goal (issue 13, item 5's other route): bfloat16 picks overlap float32's by at least "
             f"{AGREEMENT_GOAL:.0%} in every cell:"]
    for form, name in (("bfloat16", "bfloat16"), ("bfloat16_products", "bfloat16 products")):
        worst = min(result["cells"], key=lambda cell: cell[form]["overlap"])
        lines.append(_goal(name, result["all_cells_at_least_99_percent"][form],
                           f"lowest {100 * worst[form]['overlap']:.2f}% at pool {worst['pool_size']:,} / budget "
                           f"{worst['budget']:,}"))
    return "\n".join(lines)


def recipe_table(result: dict) -> str:
    """Every fine-tuning recipe tried on the dev split, best dev answer loss first."""
    rows = [[f"{row['epochs']:g}", f"{row['learning_rate']:g}", f"{row['dev_answer_loss']:.3f}",
             f"{row['dev_exact_match']:.3f}"] for row in result["summary"]]
    return _pipe_table(["epochs", "learning rate", "mean dev answer loss", "mean dev exact match"], rows)


ANSWER_LOSS_PASSES = {"full": "full vocabulary", "chunked": "chunked, attention cap"}


def answer_loss_memory_table(result: dict) -> str:
    """Peak memory, time and mean loss of the whole-vocabulary and the chunked answer-loss pass."""
    runs = {run["mode"]: run for run in result["runs"]}
    rows = [[name, f"{runs[mode]['peak_rss_mb']:,.0f} MiB", f"{runs[mode]['model_mb']:,.0f} MiB",
             f"{runs[mode]['peak_minus_model_mb']:,.0f} MiB", f"{runs[mode]['seconds']:.0f}",
             f"{runs[mode]['mean_loss']:.4f}"] for mode, name in ANSWER_LOSS_PASSES.items()]
    return _pipe_table(["pass", "peak RSS", "model (float32)", "peak minus model", "seconds", "mean answer loss"], rows)


# results/gpu_reruns.json's pairs, as the tables name them and their two runs
GPU_PAIRS = {"rerun": ("two GPU runs", ("GPU run 1", "GPU run 2")),
             "device": ("GPU against CPU, seed 0", ("GPU", "CPU")),
             "device_seeds": ("GPU against CPU, seeds 0-2", ("GPU", "CPU")),
             "kernels": ("AVX2 kernels against the default ones", ("AVX2", "default")),
             "threads": ("2 threads against 1", ("2 threads", "1 thread"))}
SAME_BYTES = {"base_model_weights": "base model weights", "pool_embeddings": "pool embeddings", "scores": "scores",
              "selections": "picks", "test_item_results": "per-item results"}


def _pair_label(pair: dict) -> str:
    return GPU_PAIRS[pair["name"]][0] if pair["name"] in GPU_PAIRS else pair["name"]


def _run_labels(pair: dict) -> tuple[str, str]:
    return GPU_PAIRS[pair["name"]][1] if pair["name"] in GPU_PAIRS else ("first run", "second run")


def _largest(pair: dict, key) -> float:
    return max(key(cell) for cell in pair["cells"])


def _stage_cells(pair: dict) -> dict:
    """One pair's column of the stage-by-stage table."""
    column = {label: "same bytes" if pair["same_bytes"][key] else "differ" for key, label in SAME_BYTES.items()}
    if not pair["same_bytes"]["pool_embeddings"]:
        column["pool embeddings"] += f" (largest difference {pair['max_abs_embedding_difference']:.2g})"
    if not pair["same_bytes"]["selections"]:
        lowest = min(pair["cells"], key=lambda cell: cell["pick_overlap"])
        column["picks"] += (f" ({100 * lowest['pick_overlap']:.0f}% overlap at least: {lowest['method']}, pool "
                            f"{lowest['pool_size']:,} / budget {lowest['budget']:,})")
    items = pair["cells"][0]["items"]
    return {**column,
            "base model: pre-training loss / exact match / answer loss": " vs ".join(
                f"{'-' if pretraining is None else f'{pretraining:.3f}'} / {em:.3f} / {loss:.3f}"
                for pretraining, em, loss in zip(
                    pair["base_model"]["pretraining_loss"], pair["base_model"]["exact_match"],
                    pair["base_model"]["answer_loss"])),
            "test answers that differ (most in one cell)":
                f"{_largest(pair, lambda cell: cell['items_whose_prediction_differs']):,} of {items:,}",
            "test answers right in one run only (most in one cell)":
                f"{_largest(pair, lambda cell: cell['items_whose_correctness_differs']):,} of {items:,}",
            "largest difference of one item's answer loss":
                f"{_largest(pair, lambda cell: cell['max_abs_item_loss_difference']):.2g}",
            "largest difference of a cell's exact match":
                f"{_largest(pair, lambda cell: abs(cell['exact_match'][0] - cell['exact_match'][1])):.3f}",
            "cell verdicts against random that differ":
                f"{pair['cell_verdicts_that_differ']} of {pair['cell_verdicts']}",
            "method verdicts against random that differ":
                f"{pair['method_verdicts_that_differ']} of {len(pair['methods'])}"}


def gpu_reruns_table(result: dict) -> str:
    """How far the demo's files and numbers move between two GPU runs and between the GPU and the CPU,
    stage by stage, then each method against random in every run compared."""
    columns = [_stage_cells(pair) for pair in result["pairs"]]
    stages = _pipe_table(["", *(_pair_label(pair) for pair in result["pairs"])],
                         [[stage, *(column[stage] for column in columns)] for stage in columns[0]])
    rows = []
    for pair in result["pairs"]:
        for method in pair["methods"]:
            for side, run in zip(("x", "y"), _run_labels(pair)):
                rows.append([_pair_label(pair), method["method"], run,
                             f"{method[f'em_vs_random_{side}']:+.3f} {method[f'em_vs_random_ci_{side}']}",
                             f"{method[f'em_p_holm_{side}']:.2g}", method[f"verdict_{side}"]])
    methods = _pipe_table(["pair", "method", "run", "exact match minus random [95% CI]", "Holm p", "verdict"], rows)
    differing = [[_pair_label(pair), cell["method"], f"{cell['pool_size']:,} / {cell['budget']:,}", measure,
                  " vs ".join(f"{label}: {cell[f'{key}_{side}']}"
                              for side, label in zip(("x", "y"), _run_labels(pair)))]
                 for pair in result["pairs"] for cell in pair["cells"] if cell["em_verdict_x"] is not None
                 for key, measure in (("em_verdict", "exact match"), ("loss_verdict", "answer loss"))
                 if cell[f"{key}_x"] != cell[f"{key}_y"]]
    if not differing:
        return stages + "\n\n" + methods
    cells = _pipe_table(["pair", "method", "pool / budget", "measure", "cell verdicts against random"], differing)
    return stages + "\n\n" + methods + "\n\nThe cell verdicts that differ:\n\n" + cells


def _spread(variation: dict, precision: str, key: str) -> tuple[float, float]:
    values = [run[key] for run in variation["runs"] if run["precision"] == precision]
    return min(values), max(values)


def base_model_variation_table(result: dict) -> str:
    """The world's base model pre-trained again with other seeds and under bfloat16 autocast: its
    pre-training loss and test scores, with the spread per precision."""
    rows = [[run["precision"], str(run["seed"]), f"{run['pretraining_loss']:.3f}", f"{run['exact_match']:.3f}",
             f"{run['answer_loss']:.3f}"] for run in result["runs"]]
    pipeline = result["storage_base_model"]
    rows.append(["the demo's base model (float32, seed 0)", "", "", f"{pipeline['exact_match']:.3f}",
                 f"{pipeline['answer_loss']:.3f}"])
    seeds = len({run["seed"] for run in result["runs"]})
    lines = []
    for precision in dict.fromkeys(run["precision"] for run in result["runs"]):
        (low, high), (pretraining_low, pretraining_high) = (_spread(result, precision, key)
                                                            for key in ("answer_loss", "pretraining_loss"))
        lines.append(f"- {precision}: test answer loss {low:.3f} to {high:.3f} over {seeds} seeds, while "
                     f"pre-training loss stays within {pretraining_low:.3f} to {pretraining_high:.3f}")
    return (_pipe_table(["precision", "seed", "pre-training loss", "test exact match", "test answer loss"], rows)
            + "\n\n" + "\n".join(lines))


def _verdict_cell(entry: dict, measure: str) -> str:
    """A pooled test's difference, interval, Holm p and verdict in one table cell."""
    low, high = entry[f"{measure}_vs_random_ci"]
    p = entry[f"{measure}_p_holm"]
    return (f"{entry[f'{measure}_vs_random']:+.3f} [{low:.3f}, {high:.3f}], "
            f"{'<' if entry.get(f'{measure}_p_at_floor') else ''}{p:.2g}, {entry[f'{measure}_verdict']}")


def _between_cell(between: dict) -> str:
    low, high = between["ci"]
    return (f"{between['estimate']:+.3f} [{low:.3f}, {high:.3f}], {between['p_holm']:.2g}, {between['verdict']} "
            f"(worlds: {', '.join(f'{v:+.3f}' for v in between['per_world'])})")


def world_seeds_table(result: dict) -> str:
    """Every method against random in each world (data seed), beside the world's base model; then
    over every world at once: the worlds as strata (the headline), per pool size, the worlds as units."""
    rows = [[str(world["data_seed"]),
             f"{world['base_model']['exact_match']:.3f} / {world['base_model']['answer_loss']:.3f}", method["method"],
             f"{method['em_vs_random']:+.3f} {method['em_vs_random_ci']}",
             f"{method['em_p_holm']:.2g}", method["verdict"],
             f"{method['cells_better']} / {method['cells_worse']} of {method['cells']}",
             f"{method['loss_cells_better']} / {method['loss_cells_worse']} of {method['cells']}"]
            for world in result["worlds"] for method in world["methods"]]
    per_world = _pipe_table(["world (data seed)", "base model: exact match / answer loss", "method",
                             "exact match minus random [95% CI]", "Holm p", "verdict",
                             "cells better / worse (exact match)", "cells better / worse (answer loss)"], rows)
    pooled = [[method["method"], f"{method['worlds']}, {method['items_per_cell']:,}",
               _verdict_cell(method, "em"), _verdict_cell(method, "loss")] for method in result["pooled"]]
    by_pool = [[method["method"], f"{part['pool_size']:,}", _verdict_cell(part, "em"), _verdict_cell(part, "loss")]
               for method in result["pooled"] for part in method["by_pool"]]
    between = [[method["method"], _between_cell(method["em_between_worlds"]),
                _between_cell(method["loss_between_worlds"])] for method in result["pooled"]]
    measures = ["exact match minus random [95% CI], Holm p, verdict",
                "answer loss minus random [95% CI], Holm p, verdict"]
    return (per_world + f"\n\nOver every world at once, the worlds as strata (the headline, for {result['headline']}):\n\n"
            + _pipe_table(["method", "worlds, test items a cell", *measures], pooled)
            + "\n\nThe same per pool size:\n\n" + _pipe_table(["method", "pool size", *measures], by_pool)
            + "\n\nThe worlds as units (each world's difference one value; 2 / 2^worlds is the smallest p):\n\n"
            + _pipe_table(["method", *measures], between))


def _curve_value(row: dict, measure: str) -> str:
    low, high = row[f"{measure}_ci"]
    return f"{row[measure]:.3f} [{low:.3f}, {high:.3f}]"


def _curve_test(row: dict) -> str:
    return f"{row['difference']:+.3f} [{row['low']:.3f}, {row['high']:.3f}], {row['p_holm']:.2g}, {row['verdict']}"


def _peak_line(method: str, measure: str, found: dict) -> str:
    """Whether `method`'s `measure` curve shows double descent: its most peak-like interior size (worse
    than the best smaller and the best larger size), or that no interior size is worse than both."""
    candidates = [peak for peak in found["peaks"] if peak["worse_than_before"] > 0 and peak["worse_than_after"] > 0]
    label = f"{method}, {measure.replace('_', ' ')}"
    if not candidates:
        return f"{label}: no interior size is worse than both the best smaller and the best larger size"
    best = min(candidates, key=lambda peak: peak["p_holm"])
    return (f"{label}: {'double descent' if found['found'] else 'no double descent shown'}; the most peak-like "
            f"size is {best['size']:,} (worse than size {best['best_before']:,} by {best['worse_than_before']:.3f} "
            f"and than size {best['best_after']:,} by {best['worse_than_after']:.3f}, Holm p {best['p_holm']:.2g})")


def size_curve_table(result: dict) -> str:
    """The searched method and random at each subset size, with intervals and the paired test of
    their difference (Holm over the sizes per measure), then the double-descent tests and the
    balance point."""
    method = result["method"]
    by = {(row["method"], row["size"]): row for row in result["curve"]}
    tests = {(row["measure"], row["size"]): row for row in result["against_random"]}
    rows = [[f"{size:,}", _curve_value(by[(method, size)], "exact_match"), _curve_value(by[("random", size)], "exact_match"),
             _curve_test(tests[("exact_match", size)]), _curve_value(by[(method, size)], "answer_loss"),
             _curve_value(by[("random", size)], "answer_loss"), _curve_test(tests[("answer_loss", size)])]
            for size in result["sizes"]]
    header = ["subset size", f"{method}: exact match", "random: exact match",
              "difference [95% CI], Holm p, verdict", f"{method}: answer loss", "random: answer loss",
              "difference [95% CI], Holm p, verdict"]
    seeds = result["seeds"]
    setting = (f"{method} and random at {len(result['sizes'])} log-spaced sizes of pool {result['pool_size']:,}, "
               f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} checkpoints a side per size):")
    descent = [_peak_line(name, measure, found) for name, by_measure in result["double_descent"].items()
               for measure, found in by_measure.items()]
    balance = [f"{measure.replace('_', ' ')}: " + (f"{size:,}" if size is not None else "none (never better, or "
                                                   "still better at the largest size)")
               for measure, size in result["balance_point"].items()]
    return "\n".join([setting, "", _pipe_table(header, rows), "",
                      "Double descent (an interior size worse than the best smaller and the best larger size, both "
                      "by the paired test; Holm over the interior sizes):", "",
                      *(f"- {line}" for line in descent), "",
                      f"Balance point (the first size from which {method} is never again better than random):", "",
                      *(f"- {line}" for line in balance)])


def size_curve_summary(result: dict) -> str:
    """The results page's line on the subset-size curve: how often the searched method differs from
    random over the sizes, whether either curve shows double descent, and the balance point."""
    method, seeds = result["method"], result["seeds"]
    verdicts = {}
    for row in result["against_random"]:
        verdicts.setdefault(row["measure"], []).append(row["verdict"])
    counts = "; ".join(f"{measure.replace('_', ' ')}: " + ", ".join(
        f"{verdict} at {found.count(verdict)}" for verdict in dict.fromkeys(found)) for measure, found in verdicts.items())
    descent = [f"{name} ({measure.replace('_', ' ')})" for name, by_measure in result["double_descent"].items()
               for measure, found in by_measure.items() if found["found"]]
    balance = ", ".join(f"{measure.replace('_', ' ')} {'at ' + format(size, ',') if size is not None else 'none'}"
                        for measure, size in result["balance_point"].items())
    return (f"- {method} against random at {len(result['sizes'])} subset sizes from {result['sizes'][0]:,} to "
            f"{result['sizes'][-1]:,} of pool {result['pool_size']:,}, seeds {seeds[0]}-{seeds[-1]} "
            f"(`benchmarks/size_curve.py`; per size, the paired test, Holm over the sizes): {counts} sizes. "
            f"Double descent shown by: {', '.join(descent) if descent else 'neither curve, on either measure'}. "
            f"Balance point: {balance}.")


def _null_bound(alpha: float, replications: int) -> float:
    """alpha + 2 Monte-Carlo standard errors of a rejection rate that is exactly alpha."""
    return alpha + 2 * math.sqrt(alpha * (1 - alpha) / replications)


def calibration_table(result: dict) -> str:
    """The paired test's measured error rates: per design (seeds a side, cells pooled, test items,
    per-seed spread), the largest rejection rate under a true null over base rates and item
    correlation (with how many null cells exceed alpha by more than two Monte-Carlo standard
    errors), and the power at each true effect, averaged over them."""
    groups: dict[tuple, list[dict]] = {}
    for row in result["rows"]:
        regime = row["regime"]
        key = (regime["seeds"], regime["cells"], regime["items"], regime["seed_sd"])
        groups.setdefault(key, []).append(row)
    alpha = result["alpha"]
    lines = []
    for key in sorted(groups):
        rows = groups[key]
        nulls = [r for r in rows if r["effect"] == 0]
        over = sum(r["rejection_rate"] > _null_bound(alpha, r["replications"]) for r in nulls)
        power = [statistics.mean(r["rejection_rate"] for r in rows if r["effect"] == effect)
                 for effect in (0.01, 0.02, 0.05)]
        lines.append([str(key[0]), str(key[1]), f"{key[2]:,}", f"{key[3]:.2f}",
                      f"{max(r['rejection_rate'] for r in nulls):.3f} ({over} over)",
                      *(f"{value:.2f}" for value in power)])
    replications = result["rows"][0]["replications"]
    rates = sorted({row["regime"]["base_rate"] for row in result["rows"]})
    decidable = [r for r in result["rows"] if r["effect"] == 0 and r["undecidable_share"] < 1]
    never = sorted({(r["regime"]["seeds"], r["regime"]["cells"]) for r in result["rows"]
                    if r["effect"] == 0 and r["undecidable_share"] == 1})
    cannot = "; ".join(f"{seeds} seed{'s' if seeds > 1 else ''} a side in {cells} cell{'s' if cells > 1 else ''}"
                       for seeds, cells in never)
    pooled = statistics.mean(r["rejection_rate"] for r in decidable)
    pooled_se = math.sqrt(alpha * (1 - alpha) / (len(decidable) * replications))
    over = sum(r["rejection_rate"] > _null_bound(alpha, replications) for r in decidable)
    # how many designs would exceed the bound by chance alone if every one rejected exactly alpha
    expected = len(decidable) * binom.sf(math.floor(replications * _null_bound(alpha, replications) + 1e-9),
                                         replications, alpha)
    return (_pipe_table(["seeds a side", "cells pooled", "test items", "per-seed SD", "type I: worst null (designs over 0.05 + 2 SE)",
                         "power at +0.01", "+0.02", "+0.05"], lines)
            + f"\n\n{replications} simulated comparisons per design, effect and base rate "
              f"({', '.join(f'{rate:g}' for rate in rates)}), items independent or correlated in blocks of ten; "
              f"power is the mean over those {2 * len(rates)}. Over the {len(decidable)} null designs where the test "
              f"can reach {alpha} (it never can with {cannot}: too few arrangements of the models), it rejected {pooled:.3f} of the time (Monte-Carlo SE "
              f"{pooled_se:.3f}); {over} of them exceed {alpha} + 2 SE, where a test rejecting exactly {alpha} in "
              f"every design would exceed it in {expected:.1f} by chance.")


def robustness_table(result: dict) -> str:
    """Hostile inputs per class (crashes, inputs that lost records), the issues' hostile files end to
    end (records in the file, kept, quarantined, lost), and faults injected with those survived."""
    inputs = _pipe_table(["input class", "inputs tried", "crashes", "inputs losing records"],
                         [[row["class"], f"{row['inputs']:,}", str(row["crash"]), str(row["lost"])]
                          for row in result["inputs"]])
    hostile = _pipe_table(["hostile file", "records in the file", "kept", "quarantined", "lost", "crashes"],
                          [[row["class"], str(row["records_in_file"]), str(row.get("kept", "-")),
                            str(row.get("quarantined", "-")), str(row["lost"]), str(row["crash"])]
                           for row in result["hostile"]])
    faults = _pipe_table(["fault injected", "times", "survived"],
                         [[row["fault"], f"{row['injected']:,}", f"{row['survived']:,}"] for row in result["faults"]])
    total = sum(row["inputs"] for row in result["inputs"])
    return (f"{inputs}\n\n{total:,} fuzzed inputs (seed {result['seed']}); a damaged compressed file counts as "
            f"survived when it reads or is refused whole.\n\n{hostile}\n\n{faults}")


def packing_table(result: dict) -> str:
    """Padded against packed training batches per configuration: the real share of the computed
    token positions, trained tokens per second (the faster of two runs each) and the loss, then
    what packing changed."""
    rows, lines = [], []
    for config in result["configurations"]:
        where = (f"{config['name']} ({config['examples']} examples, batch {config['batch_size']}, "
                 f"max length {config['max_length']})")
        for kind in ("padded", "packed"):
            run = config[kind]
            rows.append([where if kind == "padded" else "", kind, f"{run['useful_share']:.1%}",
                         f"{run['tokens_per_second']:,.0f}", f"{run['train_loss']:.4f}"])
        speed = config["packed"]["tokens_per_second"] / config["padded"]["tokens_per_second"]
        lines.append(f"- {config['name']}: padding was {1 - config['padded']['useful_share']:.1%} of the padded "
                     f"batches' positions; packed trains {speed:.2f}x the padded tokens per second, with the "
                     f"same one-epoch loss within {abs(config['packed']['train_loss'] - config['padded']['train_loss']):.1e}.")
    machine = result["machine"]
    return (_pipe_table(["configuration", "batches", "real tokens", "tokens/s", "train loss"], rows)
            + f"\n\nOn {machine['cores']} CPU cores ({machine['cpu']}, torch {machine['torch']}), "
            + f"{machine['date']}:\n\n" + "\n".join(lines))


TABLES = {"lineage_scale": (["lineage_scale.json"], lineage_table),
          "recipe": (["recipe.json"], recipe_table),
          "answer_loss_memory": (["answer_loss_memory.json"], answer_loss_memory_table),
          "embedding_throughput_tiny_cpu": (["embedding_throughput_tiny_cpu_float32.json",
                                             "embedding_throughput_tiny_cpu_float32_compiled.json",
                                             "embedding_throughput_tiny_cpu_bfloat16.json"], embedding_throughput_table),
          "embedding_mfu_1b_cuda": (["embedding_throughput_1b_cuda_bfloat16_16384.json",
                                     "embedding_throughput_1b_cuda_bfloat16_16384_compiled.json",
                                     "embedding_throughput_1b_cuda_bfloat16_65536.json"], gpu_mfu_table),
          "embedding_precision_agreement": (["embedding_precision_agreement.json"], precision_agreement_table),
          "selection_scaling": (["selection_scaling.json"], selection_scaling_table),
          "selection_paper_scale_5800000": (["selection_paper_scale_5800000.json"], selection_paper_scale_table),
          "diversity_scale_1000000": (["diversity_scale_1000000.json", "diversity_scale_1000000_knn6.json"],
                                      diversity_table),
          "ingestion_1000000": (["ingestion_1000000.json"], ingestion_table),
          "ingestion_issue_baseline_1000000": (["ingestion_issue_baseline_1000000.json"],
                                               ingestion_issue_baseline_table),
          "gpu_reruns": (["gpu_reruns.json"], gpu_reruns_table),
          "base_model_variation": (["base_model_variation.json"], base_model_variation_table),
          "calibration": (["calibration.json"], calibration_table),
          "robustness": (["robustness.json"], robustness_table),
          "isa_spread": (["isa_spread.json"], gpu_reruns_table),
          "world_seeds": (["world_seeds.json"], world_seeds_table),
          "size_curve": (["size_curve.json"], size_curve_table),
          "packing": (["packing.json"], packing_table)}


def _lineage_summary(result: dict) -> str:
    sizes = ", ".join(f"{size:,}" for size in result["pool_sizes"])
    largest = max(result["steps"], key=lambda step: step["peak_rss_mib"])
    ring_moves = _ring_moves(result)
    embedding = _rings(result, EMBEDDING_ASSET)
    per_row = " / ".join(f"{1000 * step['step_seconds'] / step['rows']:.2f}" for step in embedding)
    inside = sum(step["step_seconds"] for step in result["steps"])
    share = sum(step["step_seconds"] for step in result["steps"] if step["asset"] == EMBEDDING_ASSET) / inside
    return (f"The spine lineage on the world at pool sizes {sizes} (nested rings, budget "
            f"{result['budgets'][0]:,}) runs on this {result['machine']['cores']}-core machine in "
            f"{format_duration(result['total_wall_seconds'])}, every step in its own process; the largest peak RSS "
            f"is {_gib(largest['peak_rss_mib'])} ({largest['asset']}), the ring stages' peaks move by "
            f"{min(ring_moves):+,.0f} to {max(ring_moves):+,.0f} MiB from the smallest ring to the largest, and "
            f"embedding takes {per_row} ms a row over the rings ({share:.0%} of the time inside the runs); "
            f"results/lineage_scale.png plots time and memory against N per asset.")


def _selection_summary(paper_scale: dict, scaling: dict) -> str:
    rows = {row["precision"]: row for row in paper_scale["rows"]}
    single, half = rows["float32"], rows["bfloat16"]
    overlaps = paper_scale["bfloat16_overlap_with_float32"]
    deepest = max(int(budget) for budget in overlaps)
    reference = next(row for row in scaling["rows"] if "reference_s" in row)
    return (f"RDS+ selection at the paper's pool, {single['pool'] / 1e6:.1f}M examples (d = {single['dim']:,}, "
            f"{single['queries']:,} queries, round-robin to {deepest:,}), takes {single['selection_s']:.1f} s in "
            f"float32 (the default) and {half['selection_s']:.1f} s in bfloat16 ({half['ratio_to_gemm']:.2f}x a bare "
            f"bfloat16 GEMM over the same shards; its choices overlap float32's by "
            f"{100 * min(overlaps.values()):.1f}-{100 * max(overlaps.values()):.1f}%, so it is opt-in), peak RSS "
            f"{single['selection_peak_rss_mb']:,.0f} / {half['selection_peak_rss_mb']:,.0f} MiB; at "
            f"{reference['pool']:,} rows it is {reference['reference_s'] / reference['ours_s']:.0f}x faster than the "
            f"dict-of-dicts reference.")


def _diversity_summary(result: dict, knn6_everything: dict) -> str:
    kept, streamed = _full_size_runs(result)
    names = [DIVERSITY_METHODS[run["method"]].split(" (")[0].split(",")[0] for run in kept]
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    same = all(run["same_as_kept"] for run in streamed)
    knn6 = knn6_everything["runs"][0]
    return (f"At {result['rows']:,} rows {listed} run in at most "
            f"{_gib(max(run['peak_rss_mib'] for run in kept))} ({_gib(max(run['peak_rss_mib'] for run in streamed))} "
            f"with no embeddings kept in RAM, {'the same choices' if same else 'NOT the same choices'}), and exact "
            f"KNN-6 over all {knn6['rows']:,} rows in {knn6['seconds'] / 60:.0f} min and {_gib(knn6['peak_rss_mib'])}.")


def _ingestion_summary(result: dict, against_issue: dict) -> str:
    steps, ceiling, speedup = result["steps"], result["ceiling_of_the_cpus"], against_issue["speedup"]
    return (f"Ingestion and tokenisation use both cores ({result['workers']} worker processes against one; medians "
            f"of {result['repeats']} alternated pairs): validation {steps['validate']['speedup']:.2f}x, writing the "
            f"shuffled source {steps['source']['speedup']:.2f}x, ingestion end to end "
            f"{result['ingest_speedup_of_medians']:.2f}x, tokenisation {steps['tokenize']['speedup']:.2f}x, where "
            f"two processes that share nothing reach {ceiling['tokenize']['gain']:.2f}x (one process already runs "
            f"the Rust tokenizer on threads). Against the earlier ingestion code the goals were set on, run "
            f"beside today's "
            f"({against_issue['issue_commit']}, one process): validation {speedup['validate']:.2f}x, tokenisation "
            f"{speedup['tokenize']:.2f}x, and ingestion end to end {speedup['ingest']:.2f}x, since today's also writes "
            f"the streamed, shuffled source.")


def _embedding_summary(single: dict, compiled: dict, half: dict, agreement: dict, mfu_eager: dict,
                       mfu: dict) -> str:
    worst = min(agreement["cells"], key=lambda cell: cell["bfloat16"]["overlap"])
    default = ("bfloat16's RDS+ picks overlap float32's by at least 99% in every cell, so it could be the CPU default"
               if agreement["all_cells_at_least_99_percent"]["bfloat16"] else
               f"bfloat16 is not the CPU default because its RDS+ picks overlap float32's by only "
               f"{100 * worst['bfloat16']['overlap']:.0f}% at pool {worst['pool_size']:,} / budget {worst['budget']:,}")
    return (f"Bucketed embedding is {single['speedup']:.1f}x a batch-size-1 loop in float32 "
            f"({compiled['speedup']:.1f}x with `embed_compile`, whose batched path is "
            f"{compiled['batched_tokens_per_s'] / single['batched_tokens_per_s']:.2f}x the eager one; "
            f"{half['speedup']:.1f}x in bfloat16; medians of {single['repeats']} interleaved pairs, a noisy ratio "
            f"whose credit RESULTS.md weighs); {default}. On one {mfu['machine']['gpu']}, embedding with a "
            f"{mfu['parameters'] / 1e9:.1f}B Llama in bfloat16 reaches {100 * mfu['mfu']:.1f}% MFU compiled, CUDA's "
            f"default (goal {GPU_MFU_GOAL:.0%}, {_verdict(mfu['mfu'] >= GPU_MFU_GOAL)}; {100 * mfu_eager['mfu']:.1f}% "
            f"eager).")


def scale_summary(lineage: dict, paper_scale: dict, scaling: dict, diversity: dict, knn6_everything: dict,
                  ingestion: dict, ingestion_against_issue: dict, single: dict, compiled: dict, half: dict,
                  agreement: dict, mfu_eager: dict, mfu: dict) -> str:
    """The Scale page (docs/scale.md): one line per benchmark, each number from its results file."""
    return "\n".join("- " + line for line in (
        _lineage_summary(lineage), _selection_summary(paper_scale, scaling), _diversity_summary(diversity, knn6_everything),
        _ingestion_summary(ingestion, ingestion_against_issue),
        _embedding_summary(single, compiled, half, agreement, mfu_eager, mfu)))


def _pair(result: dict, name: str) -> dict:
    return next(pair for pair in result["pairs"] if pair["name"] == name)


def _method_comparison(pair: dict, method: str) -> str:
    """One method against random in both runs of a device pair, and whether the two agree."""
    entry = next(m for m in pair["methods"] if m["method"] == method)
    gpu, cpu = entry["em_vs_random_x"], entry["em_vs_random_y"]
    gpu_ci, cpu_ci = entry["em_vs_random_ci_x"], entry["em_vs_random_ci_y"]
    line = (f"{gpu:+.3f} {gpu_ci} on the GPU ({entry['verdict_x']}, Holm p {entry['em_p_holm_x']:.2g}) and "
            f"{cpu:+.3f} {cpu_ci} on the CPU ({entry['verdict_y']}, Holm p {entry['em_p_holm_y']:.2g})")
    (gpu_low, gpu_high), (cpu_low, cpu_high) = interval_bounds(gpu_ci), interval_bounds(cpu_ci)
    within = cpu_low <= gpu <= cpu_high and gpu_low <= cpu <= gpu_high
    if entry["verdict_x"] != entry["verdict_y"]:
        line += (": each estimate lies inside the other's interval, yet only one clears the threshold, so a verdict "
                 "that close to it does not survive a change of device; read the intervals" if within else
                 ": the verdicts differ")
    return line


def _base_model_spread(variation: dict, gpu_answer_loss: float) -> str:
    """The base model's spread over pre-training seeds and precisions, against the GPU's base model."""
    seeds = sorted({run["seed"] for run in variation["runs"]})
    answer = {precision: _spread(variation, precision, "answer_loss") for precision in ("float32", "bfloat16")}
    pretraining = [run["pretraining_loss"] for run in variation["runs"]]
    low, high = min(low for low, _ in answer.values()), max(high for _, high in answer.values())
    inside = "inside" if low <= gpu_answer_loss <= high else "outside"
    return (f"On this CPU, pre-training the base model again with seeds {seeds[0]}-{seeds[-1]} "
            f"(`benchmarks/base_model_variation.py`) ends at pre-training losses {min(pretraining):.3f} to "
            f"{max(pretraining):.3f} but gives test answer losses of {answer['float32'][0]:.3f} to "
            f"{answer['float32'][1]:.3f} in float32 and {answer['bfloat16'][0]:.3f} to {answer['bfloat16'][1]:.3f} "
            f"under bfloat16 autocast; the GPU's {gpu_answer_loss:.3f} lies {inside} that spread. The replicate "
            f"seeds vary the fine-tuning only, so every verdict here is conditional on one pre-trained base model.")


def gpu_reruns_summary(result: dict, variation: dict) -> str:
    """The results page's account of GPU reruns: two GPU runs against each other, then the GPU against the
    CPU, then the base model's spread over pre-training seeds (base_model_variation.py)."""
    rerun, device, seeds = _pair(result, "rerun"), _pair(result, "device"), _pair(result, "device_seeds")
    same = [label for key, label in SAME_BYTES.items() if rerun["same_bytes"][key]]
    items = rerun["cells"][0]["items"]
    answers_same = all(cell["items_whose_prediction_differs"] == 0 for cell in rerun["cells"])
    lowest = min(device["cells"], key=lambda cell: cell["pick_overlap"])
    base = device["base_model"]
    return "\n".join("- " + line for line in (
        f"Two runs of the spine demo on one {result['device']} wrote the same {', '.join(same[:-1])} and "
        f"{same[-1]}, byte for byte, and "
        + (f"gave every one of the {items:,} test items the same answer in every cell" if answers_same else
           f"gave up to {_largest(rerun, lambda c: c['items_whose_prediction_differs']):,} of the {items:,} test "
           f"items a different answer in a cell")
        + f"; answer losses moved by at most {_largest(rerun, lambda c: c['max_abs_item_loss_difference']):.1e} an "
          f"item, and {rerun['cell_verdicts_that_differ']} of {rerun['cell_verdicts']} cell verdicts changed.",
        f"Against the CPU, the GPU run is another world from its first stage, since CUDA trains under bfloat16 "
        f"autocast and embeds in bfloat16: the base model's pre-training ends at nearly the CPU's loss "
        f"({base['pretraining_loss'][0]:.3f} against {base['pretraining_loss'][1]:.3f}), yet its answer "
        f"loss on the test items is {base['answer_loss'][0]:.3f} against {base['answer_loss'][1]:.3f}, picks overlap "
        f"as little as "
        f"{100 * lowest['pick_overlap']:.0f}% ({lowest['method']}, pool {lowest['pool_size']:,} / budget "
        f"{lowest['budget']:,}), up to "
        f"{_largest(device, lambda c: c['items_whose_correctness_differs']):,} of {items:,} test items are right in "
        f"one run only, and {device['cell_verdicts_that_differ']} of {device['cell_verdicts']} seed-0 cell verdicts "
        f"differ ({seeds['cell_verdicts_that_differ']} of {seeds['cell_verdicts']} with seeds 0-2).",
        f"RDS+ minus random in exact match over all cells, seed 0: {_method_comparison(device, 'rds_plus')}. "
        f"Seeds 0-2: {_method_comparison(seeds, 'rds_plus')}.",
        _base_model_spread(variation, base["answer_loss"][0])))


def world_seeds_summary(result: dict) -> str:
    """The results page's line on RDS+ against random across worlds: the headline test, for these worlds,
    and what the worlds as units can say."""
    worlds = result["worlds"]
    seeds = worlds[0]["run"]["seeds"]
    pooled = next(method for method in result["pooled"] if method["method"] == "rds_plus")
    between = pooled["em_between_worlds"]
    per_world = ", ".join(f"{value:+.3f}" for value in between["per_world"])
    parts = "; ".join(f"pool {part['pool_size']:,}: {_verdict_cell(part, 'em')}" for part in pooled["by_pool"])
    return (f"- RDS+ minus random in exact match over all cells, seeds {seeds[0]}-{seeds[-1]}, for these "
            f"{len(worlds)} worlds (`[data] seed = N` in the world's config, each its own pool, eval items and base "
            f"model; `benchmarks/world_seeds.py`, the worlds as strata; difference [95% CI], Holm p, verdict): "
            f"{_verdict_cell(pooled, 'em')}; per pool "
            f"size, {parts}. Each world's own: {per_world}; with the worlds as units, "
            f"{between['verdict']} (p {between['p']:.2g}, and {2 ** (1 - len(worlds)):.2g} is the smallest "
            f"{len(worlds)} worlds can give), so it says nothing of other worlds.")


def isa_spread_summary(result: dict) -> str:
    """The results page's account of one CPU's runs under other torch kernels and thread counts: which
    files stay the same bytes, how many test answers and verdicts move."""
    lines = []
    for pair in result["pairs"]:
        same = [label for key, label in SAME_BYTES.items() if pair["same_bytes"][key]]
        overlap = min(cell["pick_overlap"] for cell in pair["cells"])
        picks = " (the same examples in every cell)" if overlap == 1 else f" (the same examples, {100 * overlap:.0f}% at least)"
        differ = [label + (picks if key == "selections" else "") for key, label in SAME_BYTES.items()
                  if not pair["same_bytes"][key]]
        items = pair["cells"][0]["items"]
        lines.append(
            f"{_pair_label(pair)} ({pair['runs'][0]['machine']}): "
            + (f"the same {', '.join(same)}, byte for byte" if same else "no file the same") + "; "
            + (f"{', '.join(differ)} differ, " if differ else "")
            + f"up to {_largest(pair, lambda c: c['items_whose_correctness_differs']):,} of {items:,} test items "
              f"right in one run only, exact match of a cell moved by at most "
              f"{_largest(pair, lambda c: abs(c['exact_match'][0] - c['exact_match'][1])):.3f}, and "
              f"{pair['cell_verdicts_that_differ']} of {pair['cell_verdicts']} cell verdicts differ.")
    return "\n".join("- " + line for line in lines)


DOCS_SECTIONS = {"scale": (["lineage_scale.json", "selection_paper_scale_5800000.json", "selection_scaling.json",
                              "diversity_scale_1000000.json", "diversity_scale_1000000_knn6.json",
                              "ingestion_1000000.json", "ingestion_issue_baseline_1000000.json",
                              "embedding_throughput_tiny_cpu_float32.json",
                              "embedding_throughput_tiny_cpu_float32_compiled.json",
                              "embedding_throughput_tiny_cpu_bfloat16.json", "embedding_precision_agreement.json",
                              "embedding_throughput_1b_cuda_bfloat16_16384.json",
                              "embedding_throughput_1b_cuda_bfloat16_16384_compiled.json"], scale_summary),
                   "gpu_reruns": (["gpu_reruns.json", "base_model_variation.json"], gpu_reruns_summary),
                   "isa_spread": (["isa_spread.json"], isa_spread_summary),
                   "world_seeds": (["world_seeds.json"], world_seeds_summary),
                   "size_curve": (["size_curve.json"], size_curve_summary)}


def render(document: str, results_dir: Path = HERE / "results", sections: dict = TABLES) -> str:
    """`document` with every rendered section of `sections` replaced by a rendering of its result files."""
    for name, (file_names, table) in sections.items():
        body = table(*(json.loads((results_dir / file_name).read_text()) for file_name in file_names))
        document = replace_section(document, name, body, COMMAND)
    return document


def render_documents(results_dir: Path = HERE / "results") -> dict[Path, str]:
    """Each document (README.md, docs/*.md) that holds a section of DOCS_SECTIONS, with those
    sections rendered from `results_dir`."""
    holding: dict[Path, dict] = {}
    for name, section in DOCS_SECTIONS.items():
        holding.setdefault(document_holding(REPO, name), {})[name] = section
    return {path: render(path.read_text(), results_dir, sections) for path, sections in holding.items()}


def main() -> None:
    RESULTS_MD.write_text(render(RESULTS_MD.read_text()))
    for path, text in render_documents().items():
        path.write_text(text)
    print(f"rendered {', '.join(TABLES)} in {RESULTS_MD} and {', '.join(DOCS_SECTIONS)} in their documents")


if __name__ == "__main__":
    main()
