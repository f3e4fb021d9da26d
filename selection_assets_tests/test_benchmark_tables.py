"""benchmarks/RESULTS.md's rendered tables and the documents' summaries (benchmarks/tables.py)
equal a fresh rendering of the result files they cite: a rerun benchmark whose tables were not
re-rendered, or a number edited by hand, fails here."""

import json

import numpy as np
import pytest

from benchmarks import embedding_throughput, tables

MFU_RUN = "embedding_throughput_1b_cuda_bfloat16_16384_compiled.json"  # the path CUDA takes by default
OLDER_MFU_RUN = "embedding_throughput_1b_cuda_bfloat16_65536.json"  # from before runs stored their attention FLOPs


def _copied_results(tmp_path):
    for file_names, _ in [*tables.TABLES.values(), *tables.DOCS_SECTIONS.values()]:
        for file_name in file_names:
            (tmp_path / file_name).write_bytes((tables.HERE / "results" / file_name).read_bytes())
    return tmp_path


def _documents(results) -> str:
    """Every document holding a summary, rendered from `results`, as one text."""
    return "\n".join(tables.render_documents(results).values())


def test_the_rendered_tables_of_results_md_match_the_result_files():
    document = tables.RESULTS_MD.read_text()
    assert tables.render(document) == document, "run `python -m benchmarks.tables` and commit RESULTS.md"


def test_the_documents_summaries_match_the_result_files():
    for path, rendered in tables.render_documents().items():
        assert rendered == path.read_text(), f"run `python -m benchmarks.tables` and commit {path.name}"


def test_a_changed_result_changes_its_table(tmp_path):
    results = _copied_results(tmp_path)
    result = json.loads((results / "ingestion_1000000.json").read_text())
    result["steps"]["validate"]["speedup"] = 7.654
    (results / "ingestion_1000000.json").write_text(json.dumps(result))
    document = tables.RESULTS_MD.read_text()
    assert "7.65x (1.70-1.98)" in tables.render(document, results) and "7.65x" not in document
    assert "validation 7.65x" in _documents(results)


def test_the_gpu_goal_verdict_follows_the_measured_mfu_of_the_default_path(tmp_path):
    results = _copied_results(tmp_path)
    run = json.loads((results / MFU_RUN).read_text())
    assert "**Goal (at least 40%): met; 43.6% compiled, as CUDA embeds by default**" in tables.RESULTS_MD.read_text()
    slower = 0.39 / run["mfu"]  # the same run, as if every pass had been that much slower
    run.update(mfu=0.39, achieved_tflops=run["achieved_tflops"] * slower,
               batched_tokens_per_s=run["batched_tokens_per_s"] * slower)
    (results / MFU_RUN).write_text(json.dumps(run))
    assert "**Goal (at least 40%): not met; 39.0% compiled, as CUDA embeds by default**" in tables.render(
        tables.RESULTS_MD.read_text(), results)
    readme = _documents(results)
    assert "reaches 39.0% MFU compiled, CUDA's default (goal 40%, not met" in readme


def test_causal_attention_flops_follow_a_plain_count_and_refuse_other_lengths(tmp_path):
    hidden, _, layers, _ = embedding_throughput.SIZES["1b"]
    lengths = np.array([1, 3, 512, 2047])
    # query i of a causal sequence scores against i keys and sums i values: 2 x hidden FLOPs for each
    plain = sum(layers * sum(2 * 2 * hidden * i for i in range(1, length + 1)) for length in lengths)
    assert embedding_throughput.causal_attention_flops(lengths, "1b") == plain
    stored = json.loads((tables.HERE / "results" / MFU_RUN).read_text())
    assert stored["causal_attention_flops"] == embedding_throughput.causal_attention_flops(
        embedding_throughput.mfu_lengths(stored["examples"]), "1b")
    run = json.loads((tables.HERE / "results" / OLDER_MFU_RUN).read_text())
    assert "causal_attention_flops" not in run  # recomputed from its seeded lengths
    assert tables._attention_flops(run) == embedding_throughput.causal_attention_flops(
        embedding_throughput.mfu_lengths(run["examples"]), "1b")
    with pytest.raises(ValueError, match="cannot be recomputed"):
        tables._attention_flops({**run, "real_tokens": run["real_tokens"] + 1})
    assert tables._attention_flops({**run, "causal_attention_flops": 5.0}) == 5.0


def test_goal_verdicts_follow_the_numbers():
    def loaded(name):
        return json.loads((tables.HERE / "results" / name).read_text())

    lineage = loaded("lineage_scale.json")
    assert "**Peak RSS at most 4 GiB at 1,000,000: met**" in tables.lineage_goals(lineage)
    assert "**Peak RSS flat in N: met** (" in tables.lineage_goals(lineage)
    assert "the largest pool or cell move is 117 bytes per added pool example" in tables.lineage_goals(lineage)
    embedding_at_1m = next(step for step in lineage["steps"] if step["label"] == "ring 100000-1000000"
                           and step["asset"] == tables.EMBEDDING_ASSET)
    embedding_at_1m["peak_rss_mib"], embedding_at_1m["step_seconds"] = 5000.0, 5000.0  # 5x the seconds per row
    goals = tables.lineage_goals(lineage)
    assert "**Peak RSS at most 4 GiB at 1,000,000: not met** (the largest step is ring_embeddings" in goals
    assert "**Time at most linear in N: not met**" in goals
    assert "**Peak RSS flat in N: met for pool stages and cell stages, not for ring stages**" in goals

    ingestion = loaded("ingestion_1000000.json")
    assert "**tokenisation: not met** (1.51x" in tables.ingestion_goals(ingestion)
    ingestion["steps"]["tokenize"]["speedup"] = 1.9
    assert "**tokenisation: met** (1.90x" in tables.ingestion_goals(ingestion)

    scaling = loaded("selection_scaling.json")
    assert "**Wall time within 2x of a bare GEMM over the same data: met**" in tables.selection_scaling_table(scaling)
    scaling["rows"][0]["gemm_s"] = scaling["rows"][0]["ours_s"] / 2.5
    assert "**Wall time within 2x of a bare GEMM over the same data: not met** (2.50x" in \
        tables.selection_scaling_table(scaling)


def test_the_gpu_rerun_summary_follows_the_compared_runs(tmp_path):
    results = _copied_results(tmp_path)
    readme = _documents(results)
    assert "gave every one of the 750 test items the same answer in every cell" in readme
    assert "yet only one clears the threshold" in readme
    result = json.loads((results / "gpu_reruns.json").read_text())
    rerun = next(pair for pair in result["pairs"] if pair["name"] == "rerun")
    rerun["cells"][2]["items_whose_prediction_differs"] = 3
    seeds = next(pair for pair in result["pairs"] if pair["name"] == "device_seeds")
    rds = next(method for method in seeds["methods"] if method["method"] == "rds_plus")
    rds["verdict_y"] = "better"
    (results / "gpu_reruns.json").write_text(json.dumps(result))
    readme = _documents(results)
    assert "gave up to 3 of the 750 test items a different answer in a cell" in readme
    assert "yet only one clears the threshold" not in readme


def test_the_base_model_spread_line_follows_its_runs(tmp_path):
    results = _copied_results(tmp_path)
    readme = _documents(results)
    assert "test answer losses of 2.489 to 5.367 in float32" in readme and "lies inside that spread" in readme
    variation = json.loads((results / "base_model_variation.json").read_text())
    for run in variation["runs"]:
        run["answer_loss"] = min(run["answer_loss"], 2.6)  # every other trajectory as good as the demo's
    (results / "base_model_variation.json").write_text(json.dumps(variation))
    readme = _documents(results)
    assert "2.489 to 2.600 in float32" in readme and "the GPU's 2.897 lies outside that spread" in readme


def test_the_world_seeds_line_speaks_for_these_worlds_and_says_what_the_worlds_as_units_cannot():
    def world(seed, difference, verdict):
        return {"data_seed": seed, "run": {"seeds": [0, 1, 2]}, "base_model": {"exact_match": 0.1, "answer_loss": 2.5},
                "methods": [{"method": "rds_plus", "em_vs_random": difference, "em_vs_random_ci": "[0.001, 0.050]",
                             "em_p_holm": 0.01, "verdict": verdict, "cells_better": 1, "cells_worse": 0, "cells": 4,
                             "loss_cells_better": 0, "loss_cells_worse": 0}]}

    def tested(difference, verdict, p=0.004):
        return {"em_vs_random": difference, "em_vs_random_ci": [0.011, 0.039], "em_p_holm": p, "em_verdict": verdict,
                "loss_vs_random": -0.01, "loss_vs_random_ci": [-0.03, 0.01], "loss_p_holm": 0.3,
                "loss_verdict": "no difference"}

    def between(values):
        return {"estimate": sum(values) / len(values), "ci": [-0.1, 0.15], "p": 0.5, "p_holm": 0.5,
                "verdict": "cannot decide", "per_world": values}

    pooled = [{"method": "rds_plus", "worlds": 2, "items_per_cell": 1500, **tested(0.025, "better"),
               "by_pool": [{"pool_size": 1000, **tested(0.04, "better", 0.001)},
                           {"pool_size": 4000, **tested(0.01, "no difference", 0.4)}],
               "em_between_worlds": between([0.02, 0.03]), "loss_between_worlds": between([-0.01, -0.01])}]
    result = {"worlds": [world(0, 0.02, "better"), world(1, 0.03, "better")], "headline": "these worlds",
              "pooled": pooled}
    line = tables.world_seeds_summary(result)
    assert "for these 2 worlds" in line and "+0.025 [0.011, 0.039], 0.004, better; per pool size, pool 1,000" in line
    assert "pool 4,000: +0.010 [0.011, 0.039], 0.4, no difference" in line
    assert "with the worlds as units, cannot decide (p 0.5, and 0.5 is the smallest 2 worlds can give)" in line
    table = tables.world_seeds_table(result)
    assert "| 1 | 0.100 / 2.500 | rds_plus | +0.030 [0.001, 0.050] | 0.01 | better | 1 / 0 of 4 |" in table
    assert ("| rds_plus | 2, 1,500 | +0.025 [0.011, 0.039], 0.004, better | -0.010 [-0.030, 0.010], 0.3, "
            "no difference |") in table
    assert "(worlds: +0.020, +0.030)" in table and "| rds_plus | 4,000 |" in table


def test_the_issue_baseline_goals_follow_the_side_by_side_speedups(tmp_path):
    results = _copied_results(tmp_path)
    document = tables.RESULTS_MD.read_text()
    assert "- **ingestion end to end: not met** (1.42x)" in tables.render(document, results)
    result = json.loads((results / "ingestion_issue_baseline_1000000.json").read_text())
    result["speedup"]["ingest"] = 1.85
    (results / "ingestion_issue_baseline_1000000.json").write_text(json.dumps(result))
    assert "- **ingestion end to end: met** (1.85x)" in tables.render(document, results)


def test_the_calibration_summary_counts_designs_over_the_bound_against_what_chance_gives():
    def row(seeds, rate, effect=0.0, undecidable=0.0):
        return {"regime": {"base_rate": 0.2, "items": 750, "seeds": seeds, "seed_sd": 0.0, "correlated": False,
                           "cells": 4}, "effect": effect, "replications": 100, "rejection_rate": rate,
                "standard_error": 0.02, "undecidable_share": undecidable}

    rows = [*(row(1, 0.0, effect, undecidable=1.0) for effect in (0.0, 0.01, 0.02, 0.05)), row(3, 0.04), row(3, 0.12),
            *(row(3, 0.5, effect) for effect in (0.01, 0.02, 0.05))]
    text = tables.calibration_table({"alpha": 0.05, "rows": rows})
    # 0.12 exceeds 0.05 + 2 * sqrt(0.05 * 0.95 / 100) = 0.094, 0.04 does not; one-seed designs never decide
    assert "Over the 2 null designs where the test can reach 0.05 (it never can with 1 seed a side in 4 cells" in text
    assert "it rejected 0.080 of the time" in text and "1 of them exceed 0.05 + 2 SE" in text
    # P(Binomial(100, 0.05) >= 10) = 0.0282, over two designs
    assert "would exceed it in 0.1 by chance" in text
    assert "| 3 | 4 | 750 | 0.00 | 0.120 (1 over) | 0.50 | 0.50 | 0.50 |" in text


def test_the_isa_spread_line_names_what_stayed_the_same_and_what_moved():
    def cell(correctness_differs, em, overlap=1.0):
        return {"items": 750, "items_whose_correctness_differs": correctness_differs, "exact_match": em,
                "pick_overlap": overlap}

    same = {"base_model_weights": True, "pool_embeddings": True, "scores": True, "selections": True,
            "test_item_results": True}
    pairs = [{"name": "threads", "runs": [{"machine": "2 CPU cores (AMD EPYC)"}], "same_bytes": same,
              "cells": [cell(0, [0.2, 0.2])], "cell_verdicts_that_differ": 0, "cell_verdicts": 16},
             {"name": "kernels", "runs": [{"machine": "2 CPU cores (AMD EPYC)"}],
              "same_bytes": {**same, "test_item_results": False, "selections": False},
              "cells": [cell(12, [0.2, 0.23], 0.97), cell(30, [0.3, 0.25])], "cell_verdicts_that_differ": 1,
              "cell_verdicts": 16}]
    text = tables.isa_spread_summary({"pairs": pairs})
    assert ("- 2 threads against 1 (2 CPU cores (AMD EPYC)): the same base model weights, pool embeddings, scores, "
            "picks, per-item results, byte for byte; up to 0 of 750") in text
    assert ("picks (the same examples, 97% at least), per-item results differ, up to 30 of 750 test items right in one run only, exact match of a "
            "cell moved by at most 0.050, and 1 of 16 cell verdicts differ.") in text


def test_the_size_curve_lines_follow_the_verdicts_and_the_peaks(tmp_path):
    results = _copied_results(tmp_path)
    assert "Double descent shown by: neither curve" in _documents(results)
    curve = json.loads((results / "size_curve.json").read_text())
    peak = curve["double_descent"]["random"]["exact_match"]["peaks"][2]
    peak.update(worse_than_before=0.05, worse_than_after=0.2, p_holm=0.01, peak=True)
    curve["double_descent"]["random"]["exact_match"]["found"] = True
    for row in curve["against_random"]:
        row["verdict"] = "no difference"
    (results / "size_curve.json").write_text(json.dumps(curve))
    assert "Double descent shown by: random (exact match)" in _documents(results)
    assert "exact match: no difference at 10" in _documents(results)
    table = tables.render(tables.RESULTS_MD.read_text(), results)
    assert f"random, exact match: double descent; the most peak-like size is {peak['size']:,}" in table
