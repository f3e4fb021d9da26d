"""Score assets. `ring_answer_losses` (per ring) holds the base model's CE(A | Q) and CE(A) for every
example, computed once; then each method's `<method>/scores` asset (`build_scores`, part of its
slice in method_slices.py) scores every example of a pool, stored as Parquet per (method, pool
size) and queryable through DuckDB views (`scores`, `scores_long`), with what choosing from it
cost (FLOPs and the seconds of the model passes it read), which its eval reports carry on."""

import json
import time

from dagster import AssetDep, AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from selection_assets.assets.base_model_io import load_base_model, load_tokenizer
from selection_assets.assets.data_versions import content_version
from selection_assets.orchestration.labels import (CONTENT_VERSIONED_TAGS, GPU_OP_TAGS, GPU_POOL, GPU_TAGS, SCORES,
                                            method_key, method_tags)
from selection_assets.assets.score_inputs import INPUTS
from selection_assets.core import evaluate, store
from selection_assets.core import pool as pool_io
from selection_assets.core.cost import Spent, total_flops
from selection_assets.core.methods import MethodSpec, ScoringInputs
from selection_assets.core.store import Layout
from selection_assets.orchestration.partitions import Grid, pool_size_of, ring_of
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource


def scoring_inputs(layout: Layout, grid: Grid, pool_size: int, spec: MethodSpec, data: DataResource,
                   compute: ComputeResource, training: TrainResource, log=None) -> tuple[ScoringInputs, Spent]:
    """Everything `spec` reads about the pool of size `pool_size`, each of its needs read through its
    entry in score_inputs.INPUTS, and what reading them cost the choice."""
    rings = pool_io.pool_rings(layout, pool_size)
    budgets_below = grid.budgets_below(pool_size)
    inputs = ScoringInputs(pool=pool_io.pool_frame(layout, rings), seed=data.seed, device=compute.resolved_device(),
                           max_budget=max(budgets_below) if budgets_below else None,
                           budgets=tuple(budgets_below),
                           replicate_seeds=tuple(training.seeds),
                           similarity_precision=compute.similarity_dtype,
                           embedding_memory_bytes=compute.embedding_memory_mb * 2**20)
    spent = Spent()
    for need in sorted(spec.needs):
        spent += INPUTS[need].load(inputs, layout=layout, rings=rings, spec=spec, grid=grid, pool_size=pool_size,
                                   data=data, compute=compute, training=training, log=log)
    return inputs, spent


def build_scores(grid: Grid, spec: MethodSpec):
    """`spec`'s scores asset: a score for every example of a pool, per pool size."""
    ring_mapping = grid.ring_to_pool_mapping()
    deps: dict = {"pool_manifest": "pool_manifest"}  # by asset key: two needs may read one asset
    for need in sorted(spec.needs):
        for dep in INPUTS[need].deps(spec, ring_mapping):
            deps.setdefault(dep.asset_key.to_user_string() if isinstance(dep, AssetDep) else dep, dep)
    runs_models = any(INPUTS[need].runs_models for need in spec.needs)

    @asset(key=method_key(spec.name, SCORES), group_name="scores", partitions_def=grid.pools_def, deps=list(deps.values()),
           kinds={"duckdb", "parquet"},
           pool=GPU_POOL if runs_models else None,
           tags={**method_tags(spec.name, gpu=runs_models), **CONTENT_VERSIONED_TAGS},
           op_tags=GPU_OP_TAGS if runs_models else None,
           description=f"{spec.name} ({spec.reference}): {spec.summary}. A score for every example of a pool, "
                       "and what choosing from it cost.")
    def scores_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                     compute: ComputeResource, training: TrainResource) -> MaterializeResult:
        layout = storage.layout()
        pool_size = pool_size_of(context.partition_key)
        inputs, spent = scoring_inputs(layout, grid, pool_size, spec, data, compute, training, context.log.info)
        began = time.perf_counter()
        scores = spec.score(inputs)
        seconds = time.perf_counter() - began
        path = store.write_parquet(scores, layout.scores(spec.name, pool_size))
        store.refresh_scores_views(layout)
        # FLOPs (the cost model of Ivison et al. 2025) and measured seconds of the model passes the
        # choice needed; the method's own scoring seconds are reported separately
        costs = {"selection_flops": total_flops(spent.passes), "model_pass_seconds": spent.seconds}
        cost_path = store.write_json(costs, layout.scores_cost(spec.name, pool_size))
        return MaterializeResult(metadata={
            "examples": len(scores), "score_seconds": seconds, **costs,
            **({"similarity_precision": inputs.similarity_precision} if inputs.query_embeddings is not None else {}),
            "score_columns": ", ".join(c for c in scores.columns if c not in ("example_id", "source")),
            "preview": MetadataValue.md(scores.head(5).to_markdown(index=False)),
            "path": MetadataValue.path(str(path)), "duckdb": MetadataValue.path(str(layout.scores_db)),
        }, data_version=content_version(path, record=store.read_json(cost_path)))

    return scores_asset


def build(grid: Grid) -> list:
    """The shared score inputs: answer losses per ring."""

    @asset(group_name="scores", partitions_def=grid.rings_def, deps=["ring_records", "base_model", "tokenizer"],
           pool=GPU_POOL, tags=GPU_TAGS, op_tags=GPU_OP_TAGS, backfill_policy=BackfillPolicy.single_run(),
           kinds={"pytorch", "parquet"},
           description="The base model's answer cross-entropy per example of one ring: CE(A | Q) (perplexity "
                       "methods) and CE(A) without context (IFD's denominator), and whether the example was "
                       "cut at max_length (IFD skips those, as Cherry LLM does).")
    def ring_answer_losses(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                      compute: ComputeResource) -> MaterializeResult:

        layout = storage.layout()
        device = compute.resolved_device()
        # the model loads once, for every ring of a single-run backfill
        model = load_base_model(layout, data, dtype=compute.resolved_dtype())
        model, tokenizer = model.to(device).eval(), load_tokenizer(layout)
        rows, seconds, undefined, truncated = 0, 0.0, 0, 0
        for ring in map(ring_of, context.partition_keys):
            frame = store.read_parts(layout.ring_records(ring), ["id", "messages"]).to_pandas()
            began = time.perf_counter()
            losses = evaluate.answer_losses(model, tokenizer, [json.loads(m) for m in frame["messages"]],
                                            max_length=data.max_length, batch_tokens=compute.embed_batch_tokens,
                                            device=device, log=context.log.info)
            ring_seconds = time.perf_counter() - began
            losses.insert(0, "example_id", frame["id"].to_numpy())
            path = store.write_parquet(losses, layout.ring_answer_losses(ring))
            store.write_json({"seconds": ring_seconds, "rows": len(losses)}, path.with_suffix(".json"))
            rows, seconds = rows + len(losses), seconds + ring_seconds
            undefined += int(losses["ce_answer"].isna().sum())
            truncated += int(losses["truncated"].sum())
        return MaterializeResult(metadata={"rings": ", ".join(context.partition_keys), "rows": rows,
                                           "seconds": seconds, "undefined": undefined,
                                           "truncated (no IFD)": truncated})

    return [ring_answer_losses]
