"""The tables of benchmarks/RESULTS.md that are rendered from result files, between
`<!-- results:NAME begin -->` and `<!-- results:NAME end -->` markers, so that their numbers cannot
drift from the runs (a test fails while RESULTS.md differs from a fresh rendering). Prose around
them is written by hand and cites the same files.

    python -m benchmarks.tables        # rewrite every rendered table from benchmarks/results/
"""

from __future__ import annotations

import json
from pathlib import Path

from selection_assets.core.results_section import format_duration, replace_section

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
COMMAND = "python -m benchmarks.tables"
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
            + _pipe_table(header, rows))


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
    return _pipe_table(header, rows)


DIVERSITY_METHODS = {"kcenter": "k-center (a pass per pick)", "kmeans": "k-means, sqrt(N) clusters, round-robin order",
                     "kmeans_per_budget": "k-means per budget (Xia et al.)", "deita": "DEITA redundancy filter",
                     "knn6": "KNN-6 (exact)"}


def diversity_table(result: dict, knn6_everything: dict) -> str:
    """Seconds and peak RSS of each diversity method with the default memory budget and with none,
    whether both chose the same, and KNN-6's own run over every row."""
    runs = {(run["method"], run["memory_mb"] > 0): run for run in result["runs"]}
    budgeted = next(run["memory_mb"] for run in result["runs"] if run["memory_mb"] > 0)
    rows = []
    for method, name in DIVERSITY_METHODS.items():
        kept, streamed = runs[(method, True)], runs[(method, False)]
        same = "yes" if kept["digest"] == streamed["digest"] else "no"
        rows.append([name, f"{kept['rows']:,}", f"{kept['seconds']:,.1f}", f"{kept['peak_rss_mib']:,.0f}",
                     f"{streamed['seconds']:,.1f}", f"{streamed['peak_rss_mib']:,.0f}", same])
    for run in knn6_everything["runs"]:
        rows.append([f"{DIVERSITY_METHODS[run['method']]}, its own run (below)", f"{run['rows']:,}",
                     f"{run['seconds']:,.0f}", f"{run['peak_rss_mib']:,.0f}", "not run", "", ""])
    header = ["method", "rows", f"budget {budgeted:,} MiB: s", "peak MiB", "budget 0: s", "peak MiB", "same result"]
    return _pipe_table(header, rows)


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
    return _pipe_table(header, rows)


PRECISIONS = {"float32": "float32 (numpy; the default)",
              "bfloat16": "bfloat16 (torch, `ComputeResource.similarity_dtype`)"}


def selection_paper_scale_table(result: dict) -> str:
    """RDS+ selection at the paper's pool in each precision, against the bare GEMM floor."""
    rows = [[PRECISIONS[row["precision"]], f"{row['selection_s']:.1f}", f"{row['similarity_s']:.1f}",
             f"{row['gemm_s']:.1f}", f"{row['ratio_to_gemm']:.2f}", f"{row['selection_peak_rss_mb']:,.0f}"]
            for row in result["rows"]]
    header = ["precision", "selection (s)", "of which similarity (s)", "bare GEMM floor (s)", "ratio to the floor",
              "peak RSS (MiB)"]
    return _pipe_table(header, rows)


def _scientific(value: float) -> str:
    """`value` with two significant digits and a plain exponent (3.1e-5)."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def embedding_throughput_table(*results: dict) -> str:
    """Batched against batch-1 embedding throughput per dtype, with the CPU's projection ceiling."""
    rows = [[result["dtype"].removeprefix("torch."), f"{result['batched_tokens_per_s']:,.0f}",
             f"{result['batch1_tokens_per_s']:,.0f}", _paired(result),
             f"{result['batched_projection_tflops']:.3f} TFLOP/s", f"{result['projection_ceiling_tflops']:.3f} TFLOP/s"]
            for result in results]
    header = ["dtype", "batched (tokens/s)", "batch 1 (tokens/s)",
              f"speedup, median (range of {results[0]['repeats']} pairs)", "batched projections", "ceiling"]
    return _pipe_table(header, rows)


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
    return _pipe_table(header, rows)


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


TABLES = {"lineage_scale": (["lineage_scale.json"], lineage_table),
          "recipe": (["recipe.json"], recipe_table),
          "answer_loss_memory": (["answer_loss_memory.json"], answer_loss_memory_table),
          "embedding_throughput_tiny_cpu": (["embedding_throughput_tiny_cpu_float32.json",
                                             "embedding_throughput_tiny_cpu_bfloat16.json"], embedding_throughput_table),
          "embedding_precision_agreement": (["embedding_precision_agreement.json"], precision_agreement_table),
          "selection_scaling": (["selection_scaling.json"], selection_scaling_table),
          "selection_paper_scale_5800000": (["selection_paper_scale_5800000.json"], selection_paper_scale_table),
          "diversity_scale_1000000": (["diversity_scale_1000000.json", "diversity_scale_1000000_knn6.json"],
                                      diversity_table),
          "ingestion_1000000": (["ingestion_1000000.json"], ingestion_table)}


def render(document: str, results_dir: Path = HERE / "results") -> str:
    """`document` with every rendered table replaced by a rendering of its result files."""
    for name, (file_names, table) in TABLES.items():
        body = table(*(json.loads((results_dir / file_name).read_text()) for file_name in file_names))
        document = replace_section(document, name, body, COMMAND)
    return document


def main() -> None:
    RESULTS_MD.write_text(render(RESULTS_MD.read_text()))
    print(f"rendered {', '.join(TABLES)} in {RESULTS_MD}")


if __name__ == "__main__":
    main()
