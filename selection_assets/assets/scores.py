"""Score assets. `ring_answer_losses` (per ring) holds the base model's CE(A | Q) and CE(A) for every
example, computed once; then each method's `<method>/scores` asset (`build_scores`, part of its
slice in method_slices.py) scores every example of a pool, stored as Parquet per (method, pool
size) and queryable through DuckDB views (`scores`, `scores_long`), with what choosing from it
cost (FLOPs and the seconds of the model passes it read), which its eval reports carry on."""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetDep, AssetExecutionContext, BackfillPolicy, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.base_model_io import load_base_model, load_tokenizer
from selection_assets.assets.data_versions import content_version
from selection_assets.assets.labels import (CONTENT_VERSIONED_TAGS, GPU_OP_TAGS, GPU_POOL, GPU_TAGS, SCORES,
                                            method_key, method_tags)
from selection_assets.assets.embeddings import SPACES
from selection_assets.core import cost, embed, evaluate, store, tokenize, train, weights
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import MODEL_PASSES, MethodSpec, Need, ScoringInputs, deita
from selection_assets.orchestration.partitions import Grid, pool_size_of, ring_of
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource


def scoring_inputs(layout, grid: Grid, pool_size: int, spec: MethodSpec, data: DataResource,
                   device: str, replicate_seeds: tuple[int, ...] = (0,), training: TrainResource | None = None,
                   compute: ComputeResource | None = None, log=None) -> ScoringInputs:
    """Everything `spec` reads about the pool of size `pool_size` (`training` and `compute` for a
    method that fine-tunes while it selects)."""
    rings = pool_io.pool_rings(layout, pool_size)
    budgets_below = grid.budgets_below(pool_size)
    compute = compute or ComputeResource()
    inputs = ScoringInputs(pool=pool_io.pool_frame(layout, rings), seed=data.seed, device=device,
                           max_budget=max(budgets_below) if budgets_below else None,
                           budgets=tuple(budgets_below),
                           replicate_seeds=tuple(replicate_seeds),
                           similarity_precision=compute.similarity_dtype,
                           embedding_memory_bytes=compute.embedding_memory_mb * 2**20)
    if Need.EMBEDDINGS in spec.needs:
        inputs.pool_embedding_blocks = lambda: pool_io.embedding_blocks(layout, rings, spec.space)
    if Need.QUERIES in spec.needs:
        directory = layout.query_embeddings(spec.space)
        queries = pd.read_parquet(directory / "queries.parquet")
        inputs.query_embeddings = np.load(directory / "embeddings.npy")
        inputs.query_tasks = queries["task"].to_numpy()
        inputs.query_ids = queries["query_id"].to_numpy()
    if spec.needs & {Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE}:
        inputs.answer_losses = pd.concat([pd.read_parquet(layout.ring_answer_losses(r)) for r in rings],
                                         ignore_index=True)
    if Need.MESSAGES in spec.needs:
        inputs.messages = lambda: pool_io.messages(layout, rings)
    if Need.REWARD_SCORES in spec.needs:
        inputs.reward_scores = _reward_scores(data, pool_io.messages(layout, rings), device)
    if Need.DEITA_SCORES in spec.needs:
        inputs.deita_scores = _deita_scores(data, pool_io.messages(layout, rings), device)
    if Need.FINETUNE_ROUNDS in spec.needs:
        inputs.train_and_embed = _train_and_embed(layout, pool_io.messages(layout, rings), data,
                                                  training or TrainResource(), compute, log)
    return inputs


def _train_and_embed(layout, conversations: list, data: DataResource, training: TrainResource,
                     compute: ComputeResource, log=None):
    """rows -> every pool example's mean-pooled embedding under a fresh base model fine-tuned on
    those rows (DiverseEvol's round); the round's checkpoint lives in a temporary directory inside
    the storage root and is removed after."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(layout)
    pool_ids = [e.input_ids for e in tokenize.encode_conversations(tokenizer, conversations, data.max_length)]
    settings = training.settings(data.max_length, data.seed)
    device = compute.resolved_device()

    def train_and_embed(rows: np.ndarray) -> np.ndarray:
        model = load_base_model(layout, data, dtype=compute.resolved_dtype())
        examples = train.sft_examples(tokenizer, [conversations[i] for i in rows], data.max_length)
        with tempfile.TemporaryDirectory(prefix=".diverse-evol-", suffix=store.PARTIAL_DIR_SUFFIX, dir=layout.root) as work:
            train.train_causal_lm(model, tokenizer, examples, settings, Path(work) / "round", device, log=log,
                                  label=f"DiverseEvol round on {len(rows)} examples")
            trained = AutoModel.from_pretrained(Path(work) / "round", dtype=compute.resolved_dtype()).to(device).eval()
            return embed.embed_token_ids(trained, pool_ids, pad_id=tokenizer.pad_token_id,
                                         batch_tokens=compute.embed_batch_tokens, device=device, pooling="mean")

    return train_and_embed


def deita_scorer_names(data: DataResource) -> tuple[str, str]:
    """DEITA's (complexity, quality) scorer models from DataResource.deita_scorers."""
    names = [part.strip() for part in data.deita_scorers.split(",") if part.strip()]
    if len(names) != 2:
        raise Failure("deita needs its two scorer models: set DataResource.deita_scorers "
                      "(SELECTION_ASSETS_DEITA_SCORERS) to 'complexity-scorer,quality-scorer' (names or paths), "
                      f"got {data.deita_scorers!r}")
    return names[0], names[1]


def _deita_scores(data: DataResource, conversations: list, device: str) -> np.ndarray:
    """Each conversation's evol score: per turn, complexity x quality from the two scorer models."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    complexity_prompts, quality_prompts, owner = deita.scorer_prompts(conversations)
    per_turn = []
    for name, prompts in zip(deita_scorer_names(data), (complexity_prompts, quality_prompts)):
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = weights.from_pretrained(AutoModelForCausalLM, name, allow_pickle=data.allow_pickle_weights).to(device).eval()
        per_turn.append(evaluate.expected_digit_scores(model, tokenizer, prompts, device=device))
    return deita.evol_scores(per_turn[0], per_turn[1], owner, len(conversations))


def _reward_scores(data: DataResource, conversations: list, device: str) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(data.reward_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = weights.from_pretrained(AutoModelForSequenceClassification, data.reward_model,
                                    allow_pickle=data.allow_pickle_weights).to(device).eval()
    return evaluate.reward_scores(model, tokenizer, conversations, max_length=data.max_length, device=device)


def method_selection_cost(layout, grid: Grid, spec: MethodSpec, pool_size: int,
                          training: TrainResource | None = None) -> dict:
    """FLOPs (the cost model of Ivison et al. 2025) and measured seconds of the model passes a
    method's choice needs; the method's own scoring seconds are reported separately. Only a method
    that fine-tunes while it chooses reads the training recipe and every budget of the pool."""
    rings = pool_io.pool_rings(layout, pool_size)
    rounds = Need.FINETUNE_ROUNDS in spec.needs
    manifest = store.read_json(layout.pool_manifest(pool_size))
    lm_parameters = store.read_json(layout.base_model_ref)["parameters"] if spec.needs else 0
    seconds, embedding_parameters, n_queries = 0.0, lm_parameters, 0
    if Need.EMBEDDINGS in spec.needs:
        for ring in rings:
            ring_manifest = store.read_json(layout.ring_embeddings(ring, spec.space) / "manifest.json")
            seconds += ring_manifest["embed_seconds"]
            embedding_parameters = ring_manifest["fingerprint"]["parameters"]
    if Need.QUERIES in spec.needs:
        n_queries = len(pd.read_parquet(layout.query_embeddings(spec.space) / "queries.parquet"))
    if spec.needs & {Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE}:
        seconds += sum(store.read_json(layout.ring_answer_losses(r).with_suffix(".json"))["seconds"] for r in rings)
    warmup = {"checkpoints": [], "tokens": 0, "seconds": 0.0}
    if Need.GRADIENTS in spec.needs:
        warmup = store.read_json(layout.less_warmup / "manifest.json")
        seconds += warmup["seconds"]
    flops = cost.selection_flops(spec.needs, lm_parameters=lm_parameters, embedding_parameters=embedding_parameters,
                                 tokens_per_example=manifest["mean_tokens"], pool_size=manifest["examples"],
                                 n_queries=n_queries, gradient_checkpoints=len(warmup["checkpoints"]),
                                 warmup_tokens=warmup["tokens"],
                                 budgets=grid.budgets_below(pool_size) if rounds else (),
                                 epochs=(training or TrainResource()).epochs if rounds else 0.0)
    return {"selection_flops": flops, "model_pass_seconds": seconds}


def build_scores(grid: Grid, spec: MethodSpec):
    """`spec`'s scores asset: a score for every example of a pool, per pool size."""
    ring_mapping = grid.ring_to_pool_mapping()
    deps: list = ["pool_manifest"]
    if Need.EMBEDDINGS in spec.needs:
        deps.append(AssetDep(SPACES[spec.space].pool_asset, partition_mapping=ring_mapping))
    if Need.QUERIES in spec.needs:
        deps.append(SPACES[spec.space].query_asset)
    if spec.needs & {Need.ANSWER_LOSSES, Need.ANSWER_LOSSES_ALONE}:
        deps.append(AssetDep("ring_answer_losses", partition_mapping=ring_mapping))
    reads_messages = bool(spec.needs & {Need.MESSAGES, Need.FINETUNE_ROUNDS, Need.DEITA_SCORES, Need.REWARD_SCORES})
    if reads_messages:
        deps.append(AssetDep("ring_records", partition_mapping=ring_mapping))
    if Need.FINETUNE_ROUNDS in spec.needs:
        deps.append("tokenizer")
    if Need.GRADIENTS in spec.needs:
        deps.append("less_warmup")  # its cost counts the warm-up
    if spec.needs:
        deps.append("base_model")  # its cost counts the base model's passes
    runs_models = bool(spec.needs & MODEL_PASSES)

    @asset(key=method_key(spec.name, SCORES), group_name="scores", partitions_def=grid.pools_def, deps=deps,
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
        inputs = scoring_inputs(layout, grid, pool_size, spec, data, compute.resolved_device(),
                                tuple(training.seeds), training, compute, context.log.info)
        began = time.perf_counter()
        scores = spec.score(inputs)
        seconds = time.perf_counter() - began
        path = store.write_parquet(scores, layout.scores(spec.name, pool_size))
        store.refresh_scores_views(layout)
        costs = method_selection_cost(layout, grid, spec, pool_size, training)
        cost_path = store.write_json(costs, layout.scores_cost(spec.name, pool_size))
        return MaterializeResult(metadata={
            "examples": len(scores), "score_seconds": seconds, **costs,
            **({"similarity_precision": inputs.similarity_precision} if Need.QUERIES in spec.needs else {}),
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
