"""Report assets: an eval report per method and grid cell, and one comparison across everything.

Each eval report holds exact match and answer loss per eval task, selection precision, per-source
counts and costs; it is written as JSON under the storage root and shown as Dagster metadata."""

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import GPU_OP_TAGS, GPU_POOL, GPU_TAGS, base_model_path, grid_keys, load_tokenizer, source_version
from selection_assets.assets.scores import method_selection_cost
from selection_assets.core import evaluate, report, store
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import MethodSpec, instructmining, registry
from selection_assets.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource


def _build_one(grid: Grid, spec: MethodSpec):
    @asset(name=f"eval_report_{spec.name}", group_name="reports", partitions_def=grid.grid_def,
           deps=[f"finetuned_{spec.name}", f"selection_{spec.name}", "eval_tasks"], pool=GPU_POOL,
           tags=GPU_TAGS, op_tags=GPU_OP_TAGS, kinds={"pytorch", "json"}, code_version=source_version(evaluate),
           description=f"Exact match per eval task of the {spec.name} checkpoint, selection precision, "
                       "per-source counts and cost.")
    def eval_report_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                          compute: ComputeResource) -> MaterializeResult:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        layout = storage.layout()
        pool_size, budget = grid_keys(context)
        rings = grid.rings_of(pool_size)
        device = compute.resolved_device()
        checkpoint = layout.checkpoint(spec.name, pool_size, budget)
        model = AutoModelForCausalLM.from_pretrained(checkpoint).to(device)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        tasks = store.read_json(layout.eval_tasks)["tasks"]
        per_task = evaluate.evaluate_tasks(model, tokenizer, tasks, max_length=data.max_length, device=device)
        selected = pd.read_parquet(layout.selection(spec.name, pool_size, budget))
        labelled = selected.merge(pool_io.pool_frame(layout, rings)[["example_id", "clean"]], on="example_id")
        targeted = sorted({t.get("skill", t["name"]) for t in tasks})
        costs = method_selection_cost(layout, grid, spec, pool_size)
        train_stats = store.read_json(checkpoint / "train_stats.json")
        result = {
            "method": spec.name, "pool_size": int(pool_size), "budget": int(budget),
            "tasks": per_task.to_dict(orient="records"),
            "avg_exact_match": float(per_task["exact_match"].mean()),
            "avg_exact_match_stderr": evaluate.average_stderr(per_task),
            "avg_answer_loss": float(per_task["answer_loss"].mean()),
            "selection_precision": evaluate.selection_precision(labelled, targeted),
            "per_source": selected["source"].value_counts().sort_index().to_dict(),
            **costs, "training_flops": train_stats["training_flops"], "training_seconds": train_stats["seconds"],
        }
        path = store.write_json(result, layout.eval_report(spec.name, pool_size, budget))
        return MaterializeResult(metadata={
            "avg_exact_match": result["avg_exact_match"], "avg_answer_loss": result["avg_answer_loss"],
            "selection_precision": result["selection_precision"],
            "per_task": MetadataValue.md(per_task.to_markdown(index=False)),
            "per_source": MetadataValue.json(result["per_source"]),
            "selection_flops": costs["selection_flops"], "training_flops": result["training_flops"],
            "path": MetadataValue.path(str(path)),
        })

    return eval_report_asset


@asset(group_name="reports", deps=["base_model", "eval_tasks"], pool=GPU_POOL, tags=GPU_TAGS, op_tags=GPU_OP_TAGS,
       kinds={"pytorch", "json"}, code_version=source_version(evaluate),
       description="The base model evaluated without fine-tuning: the floor every selection must beat.")
def eval_report_base(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                     compute: ComputeResource) -> MaterializeResult:
    from transformers import AutoModelForCausalLM

    layout = storage.layout()
    device = compute.resolved_device()
    model = AutoModelForCausalLM.from_pretrained(base_model_path(layout)).to(device)
    tasks = store.read_json(layout.eval_tasks)["tasks"]
    per_task = evaluate.evaluate_tasks(model, load_tokenizer(layout), tasks, max_length=data.max_length, device=device)
    result = {"method": "base (no fine-tuning)", "tasks": per_task.to_dict(orient="records"),
              "avg_exact_match": float(per_task["exact_match"].mean()),
              "avg_exact_match_stderr": evaluate.average_stderr(per_task),
              "avg_answer_loss": float(per_task["answer_loss"].mean())}
    path = store.write_json(result, layout.base_eval_report)
    return MaterializeResult(metadata={"avg_exact_match": result["avg_exact_match"],
                                       "avg_answer_loss": result["avg_answer_loss"],
                                       "per_task": MetadataValue.md(per_task.to_markdown(index=False)),
                                       "path": MetadataValue.path(str(path))})


def build(grid: Grid) -> list:
    methods = list(registry().values())
    per_method = [_build_one(grid, spec) for spec in methods]

    @asset(group_name="reports", deps=[a.key for a in per_method] + [eval_report_base.key],
           kinds={"pandas", "matplotlib"},
           code_version=source_version(report),
           description="All eval reports side by side: a markdown table and a plot of quality vs pool "
                       "size per method, written under reports/comparison/.")
    def comparison_report(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        found = [store.read_json(p) for p in sorted(layout.eval_reports_dir.glob("*/*/*.json"))]
        known = {m.name for m in methods}
        frame = report.comparison_frame(r for r in found if r["method"] in known)
        out = layout.comparison_dir
        out.mkdir(parents=True, exist_ok=True)
        ranked = report.ranking(frame)
        document = ["## Methods ranked by mean exact match over cells", report.markdown_table(ranked),
                    "## Every cell", report.markdown_table(frame),
                    "## Best budget per method and pool size (subset-size search)",
                    report.markdown_table(report.best_budgets(frame))]
        if layout.base_eval_report.exists():
            base = store.read_json(layout.base_eval_report)
            document.append(f"Base model without fine-tuning: avg_exact_match {base['avg_exact_match']:.3f} "
                            f"(± {base['avg_exact_match_stderr']:.3f}), avg_answer_loss {base['avg_answer_loss']:.3f}")
        (out / "comparison.md").write_text("\n\n".join(document) + "\n")
        frame.to_csv(out / "comparison.csv", index=False)
        scaling = report.scaling_plot(frame, out / "scaling.png")
        costs = report.cost_plot(frame, out / "cost.png")
        return MaterializeResult(metadata={
            "cells": len(frame), "ranking": MetadataValue.md(report.markdown_table(ranked)),
            "table": MetadataValue.md(report.markdown_table(frame)),
            "quality_vs_pool_size": MetadataValue.md(report.png_markdown(scaling, "quality vs pool size")),
            "quality_vs_cost": MetadataValue.md(report.png_markdown(costs, "quality vs selection cost")),
            "path": MetadataValue.path(str(out)),
        })

    @asset(group_name="reports", deps=[a.key for a in per_method] + [AssetKey("scores_instructmining")],
           kinds={"numpy", "json"}, code_version=source_version(instructmining.fit_rule),
           description="InstructMining's linear rule fitted by least squares on this project's own results: "
                       "log eval loss of every fine-tuned subset against its examples' mean indicators.")
    def instructmining_rule(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        subsets, losses = [], []
        indicator_tables: dict[str, pd.DataFrame] = {}
        for path in sorted(layout.eval_reports_dir.glob("*/*/*.json")):
            result = store.read_json(path)
            pool_size, budget = str(result["pool_size"]), str(result["budget"])
            if pool_size not in indicator_tables:
                if not layout.scores("instructmining", pool_size).exists():
                    continue
                table = pd.read_parquet(layout.scores("instructmining", pool_size))
                indicator_tables[pool_size] = table.set_index("example_id").filter(like="ind_")
            selected = pd.read_parquet(layout.selection(result["method"], pool_size, budget))["example_id"]
            subsets.append(indicator_tables[pool_size].loc[selected].mean())
            losses.append(result["avg_answer_loss"])
        if not subsets:
            raise Failure("no eval report has instructmining indicators for its pool yet: materialise "
                          "scores_instructmining and some eval reports first")
        frame = pd.DataFrame(subsets).rename(columns=lambda c: c.removeprefix("ind_"))
        frame = frame.loc[:, frame.std() > 0]  # an indicator constant across subsets cannot be fitted
        try:
            rule = instructmining.fit_rule(frame, np.asarray(losses))
        except ValueError as err:
            raise Failure(f"cannot fit the rule yet: {err}. Fine-tune more subsets (methods x cells).") from err
        predicted = rule.predict(frame)
        observed = np.log(np.asarray(losses))
        r2 = 1 - np.sum((observed - predicted) ** 2) / max(np.sum((observed - observed.mean()) ** 2), 1e-12)
        fitted = {"intercept": rule.intercept, "coefficients": rule.coefficients, "subsets": len(frame),
                  "r2": float(r2), "published": instructmining.PUBLISHED_RULE}
        path = store.write_json(fitted, layout.instructmining_rule)
        table = "| indicator | fitted coefficient |\n|---|---|\n" + "\n".join(
            f"| {k} | {v:.4g} |" for k, v in {"intercept": rule.intercept, **rule.coefficients}.items())
        return MaterializeResult(metadata={"subsets": len(frame), "r2": float(r2), "rule": MetadataValue.md(table),
                                           "path": MetadataValue.path(str(path))})

    return [*per_method, eval_report_base, instructmining_rule, comparison_report]
