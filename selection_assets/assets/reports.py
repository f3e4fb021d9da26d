"""Report assets: an eval report per method and grid cell, the base model's, and one comparison
across everything.

Each eval report scores every seed's checkpoint on every test item and keeps the items
(`reports/items/`: prediction, gold, correct, answer loss), so any interval or paired test can be
recomputed; its JSON (exact match and answer loss with 95% intervals, per seed and per task,
selection precision and composition, per-source counts, costs) is shown as Dagster metadata. The
comparison pairs every method with random on the same items (core/report.py)."""

import json
from typing import Sequence

import numpy as np
import pandas as pd
from dagster import (AssetCheckResult, AssetDep, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Failure,
                     MaterializeResult, MetadataValue, asset)

from selection_assets.assets.base_model_io import load_base_model, load_tokenizer
from selection_assets.orchestration.labels import (EVAL_REPORT, FINETUNED, GPU_OP_TAGS, GPU_POOL, GPU_TAGS, SCORES,
                                            SELECTION, grid_cell, method_key, method_tags)
from selection_assets.core import cost, evaluate, report, store
from selection_assets.core import pool as pool_io
from selection_assets.core.keys import Cell
from selection_assets.core.methods import MethodSpec, instructmining
from selection_assets.core.methods.references import head_to_head_rivals
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource
from selection_assets.reporting import views


def trained_flops(parameters: int, train_stats: list[dict]) -> float:
    """Fine-tuning FLOPs (docs/science.md: 6 N_p L x epochs) averaged over seeds, from each seed's
    train_stats.json, whose `tokens` already counts every epoch."""
    return float(np.mean([cost.training_flops(parameters, t["tokens"] / t["examples"], t["examples"], epochs=1.0)
                          for t in train_stats]))


def _summary_metadata(result: dict, per_task: pd.DataFrame) -> dict:
    return {"exact_match": result["exact_match"],
            "exact_match_95ci": f"[{result['exact_match_ci'][0]:.3f}, {result['exact_match_ci'][1]:.3f}]",
            "answer_loss": result["answer_loss"],
            "answer_loss_95ci": f"[{result['answer_loss_ci'][0]:.3f}, {result['answer_loss_ci'][1]:.3f}]",
            "seeds": MetadataValue.json(result["seeds"]), "test_items": result["n_items"],
            "per_task": MetadataValue.md(per_task.to_markdown(index=False))}


BEATS_BASE = "beats_base_on_dev"


def _beats_base_check(seed_losses: dict[str, float | None], base_loss: float | None) -> AssetCheckResult:
    """Warns when a fine-tuned checkpoint's dev answer loss is not below the base model's."""
    worse = [seed for seed, loss in seed_losses.items() if loss is None or base_loss is None or loss >= base_loss]
    return AssetCheckResult(check_name=BEATS_BASE, passed=not worse, severity=AssetCheckSeverity.WARN,
                            description=(f"seeds {worse} are not below the base model's dev answer loss"
                                         if worse else "every seed is below the base model's dev answer loss"),
                            metadata={"base_dev_answer_loss": base_loss,
                                      "dev_answer_loss_by_seed": MetadataValue.json(seed_losses)})


def build_eval_report(grid: Grid, spec: MethodSpec):
    """`spec`'s eval report, per (pool size, budget) cell, with its warning check against the base model."""
    name = method_key(spec.name, EVAL_REPORT)

    @asset(key=name, group_name="reports", partitions_def=grid.grid_def,
           deps=[method_key(spec.name, FINETUNED), method_key(spec.name, SELECTION), method_key(spec.name, SCORES),
                 "eval_tasks", "eval_report_base", "base_model", "pool_manifest"],
           pool=GPU_POOL, tags=method_tags(spec.name, gpu=True), op_tags=GPU_OP_TAGS, kinds={"pytorch", "json"},
           check_specs=[AssetCheckSpec(BEATS_BASE, asset=name, description=(
               "Warns when a fine-tuned checkpoint does not beat the base model on the dev split (mean answer "
               "loss; the split the recipe was chosen on): fine-tuning that hurts makes every comparison moot."))],
           description=f"Exact match and answer loss of every {spec.name} checkpoint (one per seed) on every "
                       "test item, with 95% intervals; selection precision, per-source counts and cost.")
    def eval_report_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                          compute: ComputeResource, training: TrainResource) -> MaterializeResult:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        layout = storage.layout()
        cell = grid_cell(context)
        rings = pool_io.pool_rings(layout, cell.pool_size)
        device = compute.resolved_device()
        tasks = store.read_json(layout.eval_tasks)["tasks"]
        frames, train_stats, dev_losses = [], [], {}
        for seed in training.seeds:
            checkpoint = layout.seed_checkpoint(spec.name, cell, seed)
            model = AutoModelForCausalLM.from_pretrained(checkpoint).to(device)
            tokenizer = AutoTokenizer.from_pretrained(checkpoint)
            items = evaluate.evaluate_items(model, tokenizer, tasks, max_length=data.max_length, device=device,
                                            batch_size=compute.eval_batch_size,
                                            harness_include=data.harness_include, log=context.log.info)
            frames.append(items.assign(seed=seed))
            train_stats.append(store.read_json(checkpoint / "train_stats.json"))
            dev_losses[str(seed)] = evaluate.dev_answer_loss(model, tokenizer, tasks, max_length=data.max_length,
                                                        device=device)
        items = pd.concat(frames, ignore_index=True)
        store.write_parquet(items, layout.eval_items(spec.name, cell))
        selected = pd.read_parquet(layout.selection(spec.name, cell))
        # every seed's picks, labels and final answers in one filtered scan of the pool
        rows = pool_io.pool_rows(layout, rings, selected["example_id"], ["clean", "noise", "messages"])
        labelled = selected.assign(**{column: rows[column].array for column in ("clean", "noise", "messages")})
        targeted = sorted({t.get("skill", t["name"]) for t in tasks})
        dev_answers = {t.get("skill", t["name"]): [q["answer"] for q in t.get("dev", []) if "answer" in q]
                       for t in tasks}
        precision, composition = [], []
        for _, group in labelled.groupby("seed"):
            answers = [json.loads(messages)[-1]["content"] for messages in group["messages"]]
            precision.append(evaluate.selection_precision(group, targeted))
            composition.append(evaluate.selection_composition(group, targeted, answers, dev_answers))
        costs = store.read_json(layout.scores_cost(spec.name, cell.pool_size))
        first_seed = selected[selected["seed"] == training.seeds[0]]
        result = {
            "method": spec.name, "pool_size": cell.pool_size, "budget": cell.budget, **report.summarise_items(items),
            "selection_precision": None if None in precision else float(np.mean(precision)),
            "selection_composition": None if None in composition else
            pd.DataFrame(composition).fillna(0.0).mean().to_dict(),
            "per_source": first_seed["source"].value_counts().sort_index().to_dict(),
            **costs, "training_flops": trained_flops(store.read_json(layout.base_model_ref)["parameters"],
                                                     train_stats),
            "training_seconds": float(np.sum([t["seconds"] for t in train_stats])),
            "dev_answer_loss_by_seed": dev_losses,
        }
        path = store.write_json(result, layout.eval_report(spec.name, cell))
        return MaterializeResult(metadata={
            **_summary_metadata(result, pd.DataFrame(result["tasks"])),
            "selection_precision": result["selection_precision"],
            "per_source": MetadataValue.json(result["per_source"]),
            "selection_flops": costs["selection_flops"], "training_flops": result["training_flops"],
            "items": MetadataValue.path(str(layout.eval_items(spec.name, cell))),
            "path": MetadataValue.path(str(path)),
        }, check_results=[_beats_base_check(dev_losses, store.read_json(layout.base_eval_report).get("dev_answer_loss"))])

    return eval_report_asset


def build_eval_report_base():
    """The base model's eval report (its code version built with the definitions, as the methods' are)."""

    @asset(group_name="reports", deps=["base_model", "eval_tasks"], pool=GPU_POOL, tags=GPU_TAGS, op_tags=GPU_OP_TAGS,
           kinds={"pytorch", "json"},
           description="The base model evaluated without fine-tuning on every test item: the floor every "
                       "selection must beat.")
    def eval_report_base(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                         compute: ComputeResource) -> MaterializeResult:

        layout = storage.layout()
        device = compute.resolved_device()
        model = load_base_model(layout, data).to(device)
        tokenizer = load_tokenizer(layout)
        tasks = store.read_json(layout.eval_tasks)["tasks"]
        items = evaluate.evaluate_items(model, tokenizer, tasks, max_length=data.max_length,
                                        device=device, batch_size=compute.eval_batch_size,
                                        harness_include=data.harness_include, log=context.log.info).assign(seed=0)
        store.write_parquet(items, layout.base_eval_items)
        result = {"method": "base (no fine-tuning)", **report.summarise_items(items),
                  "dev_answer_loss": evaluate.dev_answer_loss(model, tokenizer, tasks,
                                                              max_length=data.max_length, device=device)}
        path = store.write_json(result, layout.base_eval_report)
        return MaterializeResult(metadata={**_summary_metadata(result, pd.DataFrame(result["tasks"])),
                                           "items": MetadataValue.path(str(layout.base_eval_items)),
                                           "path": MetadataValue.path(str(path))})

    return eval_report_base


def experiment_reports(layout, methods: Sequence[str], cells: Sequence[Cell]) -> list[dict]:
    """The eval report of every method in `methods` for every cell in `cells`, in that order: what
    the experiment ran; a Failure naming those not materialised yet."""
    missing = [f"{method}/eval_report {cell}" for method in methods for cell in cells
               if not layout.eval_report(method, cell).exists()]
    if missing:
        raise Failure(f"{len(missing)} eval reports of this experiment are not materialised yet, e.g. "
                      f"{', '.join(missing[:3])}: materialise them first (the comparison reads exactly the "
                      "chosen methods over the grid's cells, nothing else on disk)")
    return [store.read_json(layout.eval_report(method, cell)) for method in methods for cell in cells]


def build(grid: Grid, methods: Sequence[str]) -> list:
    """The shared reports: the base model's, InstructMining's fitted rule and the comparison, which
    read the eval reports of `methods` (the experiment's chosen methods) over the grid's valid cells
    (the methods' own assets are built by method_slices.py)."""
    methods = list(methods)
    cells = grid.valid_cells()
    rivals = head_to_head_rivals()  # data the comparison is handed, not the method modules' code
    per_cell = [AssetDep(method_key(method, EVAL_REPORT), partition_mapping=grid.cells_mapping())
                for method in methods]
    eval_report_base = build_eval_report_base()

    @asset(group_name="reports", deps=[*per_cell, eval_report_base.key],
           kinds={"pandas", "matplotlib"},
           description="The experiment's eval reports side by side with 95% intervals: every chosen method over "
                       "every valid cell, paired with random on the same test items (Holm-adjusted), RDS+ "
                       "paired with each method its paper reports it beating, random against the un-fine-tuned "
                       "base model; tables and plots under reports/comparison/.")
    def comparison_report(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        found = experiment_reports(layout, methods, cells)
        comparison = report.compare(
            found, lambda method, pool_size, budget: pd.read_parquet(layout.eval_items(method, Cell(pool_size, budget))),
            pd.read_parquet(layout.base_eval_items), rivals)
        out = layout.comparison_dir
        out.mkdir(parents=True, exist_ok=True)
        base = store.read_json(layout.base_eval_report)
        store.write_json(report.comparison_document(comparison, base), layout.comparison_json)
        (out / "comparison.md").write_text(views.comparison_markdown(comparison, base))
        comparison.cells.to_csv(out / "comparison.csv", index=False)
        scaling = views.scaling_plot(comparison.cells, out / "scaling.png")
        differences = views.difference_plot(comparison.cells, out / "vs_random.png")
        costs = views.cost_plot(comparison.cells, out / "cost.png")
        return MaterializeResult(metadata={
            "compared": MetadataValue.json({"methods": methods, "cells": [[c.pool_size, c.budget] for c in cells]}),
            "cells": len(comparison.cells), "seeds": MetadataValue.json(comparison.seeds),
            "paired_tests": comparison.cell_tests,
            "methods_vs_random": MetadataValue.md(views.markdown_table(comparison.methods)),
            "random_vs_base": MetadataValue.md(views.markdown_table(comparison.base)),
            "pool_growth": MetadataValue.md(views.markdown_table(comparison.pool_growth)),
            "head_to_head": MetadataValue.md(views.markdown_table(comparison.head_to_head)),
            "table": MetadataValue.md(views.markdown_table(comparison.cells)),
            "quality_vs_pool_size": MetadataValue.md(views.png_markdown(scaling, "quality vs pool size")),
            "difference_from_random": MetadataValue.md(views.png_markdown(differences, "difference from random")),
            "quality_vs_cost": MetadataValue.md(views.png_markdown(costs, "quality vs selection cost")),
            "path": MetadataValue.path(str(out)),
        })

    # the indicators come from the published rule's scores when the experiment runs it (with its
    # reward model), else from its ablation's (every indicator but the reward)
    indicator_method = "instructmining" if "instructmining" in methods else "instructmining_no_reward"

    @asset(group_name="reports",
           deps=[*per_cell, *(AssetDep(method_key(method, SELECTION), partition_mapping=grid.cells_mapping())
                              for method in methods), method_key(indicator_method, SCORES)],
           tags=method_tags(indicator_method), kinds={"numpy", "json"},
           description="InstructMining's linear rule fitted by least squares on this project's own results: "
                       f"log eval loss of every fine-tuned subset (one per chosen method, cell and seed) against "
                       f"its examples' mean indicators (from {indicator_method}'s scores).")
    def instructmining_rule(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        subsets, losses = [], []
        indicators = {pool_size: pd.read_parquet(layout.scores(indicator_method, pool_size))
                      .set_index("example_id").filter(like="ind_") for pool_size in grid.pool_sizes}
        for result in experiment_reports(layout, methods, cells):
            cell = Cell(result["pool_size"], result["budget"])
            selected = pd.read_parquet(layout.selection(result["method"], cell))
            for seed, summary in result["by_seed"].items():  # each seed's subset and its own model
                ids = selected.loc[selected["seed"] == int(seed), "example_id"]
                subsets.append(indicators[cell.pool_size].loc[ids].mean())
                losses.append(summary["answer_loss"])
        if not subsets:
            raise Failure(f"no eval report has {indicator_method} indicators for its pool yet: materialise "
                          f"{indicator_method}/scores and some eval reports first")
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

    return [eval_report_base, instructmining_rule, comparison_report]
