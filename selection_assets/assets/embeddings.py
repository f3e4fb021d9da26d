"""Embedding assets, one pair per embedding space: `ring_embeddings_<space>` (every pool example,
once, per ring) and `query_embeddings_<space>` (the eval queries). A space is named by what its
vectors are: `position_weighted` (RDS+'s pooling of the base LM's last hidden states), its
pooling ablations `mean` and `last_token`, `encoder` (a sentence-transformers model), and
`less_features` (LESS gradient features, after the `less_warmup` asset's LoRA warm-up). Each kind
of space is a class that loads its own model, so an asset runs (and is versioned by) its own, and
builds the assets that model comes from (LESS's warm-up)."""

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import pandas as pd
import torch
from dagster import AssetCheckResult, BackfillPolicy, AssetCheckSpec, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.base_model_io import base_model_name, base_model_path, load_base_model, load_tokenizer
from selection_assets.orchestration.labels import GPU_OP_TAGS, GPU_POOL, GPU_TAGS
from selection_assets.core import embed, less, store, tokenize, train
from selection_assets.core.cost import Pass
from selection_assets.core import pool as pool_io
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.orchestration.partitions import Grid, ring_of
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource

NORM_TOLERANCE = 1e-2  # float16 storage keeps row norms within ~1e-3 of 1


@dataclass(frozen=True)
class EmbeddingSpace:
    """An embedding space, named by what its vectors are. Each kind (a pooling of the base LM, a
    sentence encoder, LESS gradient features) is a subclass that loads its own model."""

    name: str
    description: str
    model_deps: ClassVar[tuple[str, ...]] = ("base_model", "tokenizer")  # the assets its model comes from

    @property
    def pool_asset(self) -> str:
        return f"ring_embeddings_{self.name}"

    @property
    def query_asset(self) -> str:
        return f"query_embeddings_{self.name}"

    def embedder(self, layout, compute: ComputeResource, data: DataResource,
                 role: str = "pool") -> tuple[Callable[[list[list[dict]]], np.ndarray], str, int]:
        """A function from conversations to float32 unit embeddings with the model loaded once, the
        name of that model and its parameter count (for the cost model). `role` ("pool" or "query")
        matters to LESS only: Adam directions for the pool, plain gradients for queries."""
        raise NotImplementedError

    def identity(self, layout, data: DataResource) -> tuple[str, int]:
        """Name and parameter count of the model the space embeds with, without keeping it loaded."""
        from transformers import AutoConfig, AutoModel

        with torch.device("meta"):
            model = AutoModel.from_config(AutoConfig.from_pretrained(base_model_path(layout)))
        return base_model_name(layout), sum(p.numel() for p in model.parameters())

    def model_assets(self, grid: Grid) -> list:
        """The assets its model comes from besides the shared base model and tokenizer (built with
        the space; named in `model_deps`)."""
        return []

    def passes(self, layout, parameters: int, tokens_per_example: float, examples: int) -> list[Pass]:
        """The model passes that embed `examples` examples of `tokens_per_example` tokens in this
        space with a model of `parameters` parameters: one forward pass each."""
        return [Pass(parameters, tokens_per_example, examples)]

    def fingerprint(self, layout, compute: ComputeResource) -> dict:
        """What, besides the model, the ids and the settings, decides a ring's vectors in this space
        (kept with its shards, so shards of another model, warm-up or precision are never resumed)."""
        # a retrained, identical base model keeps the shards: its timing is no identity
        return {"base_model": store.without_durations(store.read_json(layout.base_model_ref))}


class LMPooling(EmbeddingSpace):
    """A pooling (core.embed.POOLINGS, the space's name) of the base LM's last hidden states."""

    def embedder(self, layout, compute: ComputeResource, data: DataResource, role: str = "pool"):
        from transformers import AutoModel

        model = load_base_model(layout, data, AutoModel, dtype=compute.resolved_dtype())
        run = lm_embedder(model.to(compute.resolved_device()).eval(), load_tokenizer(layout), compute, data, self.name)
        return run, base_model_name(layout), sum(p.numel() for p in model.parameters())

    def fingerprint(self, layout, compute: ComputeResource) -> dict:
        return {**super().fingerprint(layout, compute), "numerics": compute.embedding_numerics()}


class SentenceEncoder(EmbeddingSpace):
    """A sentence-transformers model (DataResource.encoder_model) over the chat-formatted text."""

    model_deps = ()

    def embedder(self, layout, compute: ComputeResource, data: DataResource, role: str = "pool"):
        if not data.encoder_model:
            raise Failure("the encoder embedding space needs a sentence encoder: set DataResource.encoder_model "
                          "(SELECTION_ASSETS_ENCODER_MODEL) to a sentence-transformers name or path")
        encoder = embed.load_sentence_encoder(data.encoder_model, compute.resolved_device(),
                                              allow_pickle=data.allow_pickle_weights)

        def run_encoder(conversations: list[list[dict]]) -> np.ndarray:
            texts = [tokenize.format_conversation(c, "") for c in conversations]
            return embed.sentence_embeddings(encoder, texts)

        return run_encoder, data.encoder_model, sum(p.numel() for p in encoder.parameters())

    def identity(self, layout, data: DataResource) -> tuple[str, int]:
        _, name, parameters = self.embedder(layout, ComputeResource(device="cpu"), data)
        return name, parameters

    def fingerprint(self, layout, compute: ComputeResource) -> dict:
        return {"base_model": None}


class LessFeatures(EmbeddingSpace):
    """LESS gradient features of the `less_warmup` asset's checkpoints."""

    model_deps = ("base_model", "tokenizer", "less_warmup")

    def embedder(self, layout, compute: ComputeResource, data: DataResource, role: str = "pool"):

        device = compute.resolved_device()
        tokenizer = load_tokenizer(layout)
        # gradients in float32 on the CPU; LESS loads its model in bfloat16 on a GPU
        model = load_base_model(layout, data, dtype=torch.float32 if device == "cpu" else torch.bfloat16)
        parameters = sum(p.numel() for p in model.parameters())
        featurizer = less.GradientFeaturizer(model, layout.less_warmup, device)

        def run_less(conversations: list[list[dict]]) -> np.ndarray:
            examples = train.sft_examples(tokenizer, conversations, data.max_length)
            return featurizer.features(examples, optimizer_aware=role == "pool")

        return run_less, base_model_name(layout), parameters

    def model_assets(self, grid: Grid) -> list:
        """`less_warmup`, the LoRA warm-up LESS's features are computed from."""

        @asset(group_name="embeddings", deps=["source_pool", "base_model", "tokenizer"], pool=GPU_POOL, tags=GPU_TAGS,
               op_tags=GPU_OP_TAGS, kinds={"pytorch", "safetensors"},
               description="LESS's LoRA warm-up: a random share of the pool (drawn from the smallest pool, so every "
                           "pool holds it) fine-tuned for a few epochs; per epoch the LoRA weights, Adam's moments "
                           "and the mean learning rate, which LESS's gradient features are computed from.")
        def less_warmup(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                        compute: ComputeResource, training: TrainResource) -> MaterializeResult:
            layout = storage.layout()
            smallest, largest = min(grid.pool_sizes), max(grid.pool_sizes)
            messages = list(pool_io.iter_valid_source_messages(layout, smallest))
            settings = training.less_settings(data.max_length, data.seed)
            count = min(max(1, round(settings.warmup_fraction * largest)), len(messages))
            chosen = np.random.default_rng(data.seed).permutation(len(messages))[:count]
            conversations = [json.loads(messages[i]) for i in chosen]
            device = compute.resolved_device()
            model = load_base_model(layout, data, dtype=torch.float32)
            tokenizer = load_tokenizer(layout)
            examples = train.sft_examples(tokenizer, conversations, data.max_length)
            manifest = less.warm_up(model, tokenizer, examples, settings, layout.less_warmup, device, log=context.log.info)
            return MaterializeResult(metadata={
                "examples": count, "drawn_from_pool": smallest, "epochs": settings.epochs,
                "lora_rank": settings.lora_rank, "trainable_parameters": manifest["trainable_parameters"],
                "train_loss": manifest["train_loss"], "seconds": manifest["seconds"],
                "epoch_learning_rates": ", ".join(f"{c['mean_learning_rate']:.3g}" for c in manifest["checkpoints"]),
                "path": MetadataValue.path(str(layout.less_warmup))})

        return [less_warmup]

    def passes(self, layout, parameters: int, tokens_per_example: float, examples: int) -> list[Pass]:
        """A forward and backward pass per example and warm-up checkpoint."""
        checkpoints = len(store.read_json(layout.less_warmup / "manifest.json")["checkpoints"])
        return [Pass(parameters, tokens_per_example, examples * checkpoints, factor=6.0)]

    def fingerprint(self, layout, compute: ComputeResource) -> dict:
        # features of an older warm-up are never reused
        return {**super().fingerprint(layout, compute),
                "less_warmup": store.read_json(layout.less_warmup / "manifest.json")["checkpoints"]}


SPACES = {s.name: s for s in [
    LMPooling("position_weighted", "RDS+ embeddings: position-weighted mean of the base LM's last hidden "
              "states, L2-normalised"),
    LMPooling("mean", "Mean-pooled base-LM embeddings (RDS+ pooling ablation)"),
    LMPooling("last_token", "Last-token base-LM embeddings (RDS+ pooling ablation)"),
    SentenceEncoder("encoder", "Sentence-encoder embeddings (the paper's GTR / NV-Embed baseline)"),
    LessFeatures("less_features", "LESS gradient features: per warm-up checkpoint, the LoRA gradient (Adam update "
                 "direction for pool examples, plain gradient for queries), randomly projected and "
                 "L2-normalised, weighted by the square root of the epoch's share of learning rate"),
]}


def lm_embedder(model: torch.nn.Module, tokenizer, compute: ComputeResource, data: DataResource,
                pooling: str) -> Callable[[list[list[dict]]], np.ndarray]:
    """Conversations -> float32 unit vectors from a loaded base LM: tokenised as the pipeline does,
    then `embed.embed_token_ids` with `pooling` on the compute resource's device and batch size
    (the model compiled first when `compute.resolved_compile()`)."""
    device = compute.resolved_device()
    if compute.resolved_compile():
        model = torch.compile(model, dynamic=True)

    def run_lm(conversations: list[list[dict]]) -> np.ndarray:
        encoded = tokenize.encode_conversations(tokenizer, conversations, data.max_length)
        return embed.embed_token_ids(model, [e.input_ids for e in encoded], pad_id=tokenizer.pad_token_id,
                                     batch_tokens=compute.embed_batch_tokens, device=device, pooling=pooling)

    return run_lm


def embed_ring_shards(layout: Layout, compute: ComputeResource, data: DataResource, space: EmbeddingSpace,
                      ring: Ring, run: Callable[[list[list[dict]]], np.ndarray] | None = None, rank: int = 0,
                      world_size: int = 1, log: Callable[[str], None] = lambda _: None) -> dict:
    """Embed the shards of `ring` in `space` that are missing and this process's to do (shard i
    is rank i % world_size's): with `run`, an embedder already loaded, else the space's own. The
    asset's step and each process of `embedding_worker` run it."""
    messages = store.ParquetRows(layout.ring_records(ring), ["messages"])
    run = run or space.embedder(layout, compute, data)[0]
    return embed.embed_missing_shards(
        layout.ring_embeddings(ring, space.name), embed.ShardPlan(len(messages), data.shard_size),
        _shard_embedder(run, messages), rank=rank, world_size=world_size, log=log,
        label=f"{space.name} embeddings of ring {ring.key}")


def _conversations(messages: store.ParquetRows, start: int, end: int) -> list[list[dict]]:
    """The conversations of ring rows [start, end)."""
    return [json.loads(m) for m in messages.read(start, end).column("messages").to_pylist()]


def _shard_embedder(run: Callable[[list[list[dict]]], np.ndarray],
                    messages: store.ParquetRows) -> Callable[[int, int], np.ndarray]:
    """(start, end) -> the embeddings of ring rows [start, end), the memory the pass freed handed
    back to the OS before the next shard: in a probe over 40 shards of a ring, the process's RSS
    between shards swung from 638 to 776 MiB without it and stayed at 600-612 MiB with it (the peak
    within a pass is its own; benchmarks/RESULTS.md). The vectors are the same."""
    def embed_rows(start: int, end: int) -> np.ndarray:
        vectors = run(_conversations(messages, start, end))
        store.release_freed_memory()
        return vectors

    return embed_rows


WORKER_MODULE = "selection_assets.assets.embedding_worker"  # what each launched process runs (`python -m`)
JOB_FILE = "job.json"  # the job the launcher writes into the work folder for its processes


def _embed_with_accelerate(layout: Layout, compute: ComputeResource, data: DataResource, space: EmbeddingSpace,
                           ring: Ring) -> dict:
    """Spread a ring's shards over `compute.processes` processes with `accelerate launch`: the job
    (root, settings, space, ring) goes to a work folder, each process of WORKER_MODULE runs
    `embed_ring_shards` on its share and leaves its counts there as `rank-<i>.json`."""
    with tempfile.TemporaryDirectory(prefix="embed-job-") as work:
        job = {"root": str(layout.root), "compute": compute.model_dump(), "data": data.model_dump(),
               "space": space.name, "ring": ring.key}
        store.write_json(job, Path(work) / JOB_FILE)
        command = ["accelerate", "launch", "--num_processes", str(compute.processes),
                   *(["--cpu"] if compute.resolved_device() == "cpu" else []), "-m", WORKER_MODULE, work]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise Failure(f"accelerate launch of {compute.processes} embedding processes failed for ring {ring.key}",
                          metadata={"stderr": MetadataValue.text(completed.stderr[-4000:])})
        per_rank = [store.read_json(path) for path in sorted(Path(work).glob("rank-*.json"))]
    return {"resumed_shards": sum(r["resumed_shards"] for r in per_rank),
            "embed_seconds": max((r["embed_seconds"] for r in per_rank), default=0.0)}


def _norm_check(report: dict) -> AssetCheckResult:
    ok = report["finite"] and report["max_norm_error"] <= NORM_TOLERANCE
    return AssetCheckResult(check_name="finite_unit_norm", passed=ok,
                            metadata={"finite": report["finite"], "max_norm_error": report["max_norm_error"],
                                      "rows": report["rows"]})


def _build_space(grid: Grid, space: EmbeddingSpace) -> list:
    @asset(name=space.pool_asset, group_name="embeddings", partitions_def=grid.rings_def, pool=GPU_POOL,
           tags=GPU_TAGS, op_tags=GPU_OP_TAGS, deps=["ring_records", *space.model_deps],
           backfill_policy=BackfillPolicy.single_run(), kinds={"pytorch", "numpy"},
           check_specs=[AssetCheckSpec("finite_unit_norm", asset=space.pool_asset,
                                       description="Every stored embedding is finite and has unit L2 norm.", blocking=True)],
           description=f"{space.description}, of one ring of the pool, as float16 .npy shards; a killed run "
                       "resumes at the first missing shard.")
    def pool_embeddings_asset(context: AssetExecutionContext, storage: StorageResource, compute: ComputeResource,
                              data: DataResource):
        layout = storage.layout()
        if compute.processes > 1:
            run, (model_name, parameters) = None, space.identity(layout, data)
        else:  # the model loads once, for every ring of a single-run backfill
            run, model_name, parameters = space.embedder(layout, compute, data)
        manifests, resumed_shards, seconds_now = [], 0, 0.0
        rings = [ring_of(key) for key in context.partition_keys]
        for ring in rings:
            fingerprint = {"model": model_name, "space": space.name, "max_length": data.max_length,
                           "parameters": parameters, "ids": pool_io.ring_ids_digest(layout, ring),
                           **space.fingerprint(layout, compute)}
            directory = layout.ring_embeddings(ring, space.name)
            plan = embed.ShardPlan(store.parts_rows(layout.ring_records(ring)), data.shard_size)
            embed.prepare_shard_dir(directory, fingerprint)
            if compute.processes > 1:
                stats = _embed_with_accelerate(layout, compute, data, space, ring)
            else:
                stats = embed_ring_shards(layout, compute, data, space, ring, run=run, log=context.log.info)
            manifests.append(embed.finalize_manifest(directory, plan, fingerprint))
            resumed_shards, seconds_now = resumed_shards + stats["resumed_shards"], seconds_now + stats["embed_seconds"]
        report = embed.norm_report(b for r in rings for b in embed.iter_shards(layout.ring_embeddings(r, space.name)))
        return MaterializeResult(
            metadata={"rings": ", ".join(ring.key for ring in rings), "rows": sum(m["n_rows"] for m in manifests),
                      "shards": sum(len(m["shards"]) for m in manifests),
                      "resumed_shards": resumed_shards, "embed_seconds_this_run": seconds_now,
                      "embed_seconds": sum(m["embed_seconds"] for m in manifests),
                      "model": model_name, "device": compute.resolved_device(),
                      "path": MetadataValue.path(str(layout.ring_embeddings(rings[0], space.name).parent))},
            check_results=[_norm_check(report)])

    @asset(name=space.query_asset, group_name="embeddings", pool=GPU_POOL, tags=GPU_TAGS, op_tags=GPU_OP_TAGS,
           deps=["eval_tasks", *space.model_deps], kinds={"pytorch", "numpy"},
           check_specs=[AssetCheckSpec("finite_unit_norm", asset=space.query_asset,
                                       description="Every query embedding is finite and has unit L2 norm.", blocking=True)],
           description=f"{space.description}, of each eval task's dev queries (prompt + gold answer + EOS).")
    def query_embeddings_asset(context: AssetExecutionContext, storage: StorageResource, compute: ComputeResource,
                               data: DataResource):
        layout = storage.layout()
        tasks = store.read_json(layout.eval_tasks)["tasks"]
        rows, conversations = [], []
        for task in tasks:
            for index, example in enumerate(task["dev"]):
                rows.append({"query_id": f"{task['name']}/{index}", "task": task["name"]})
                conversations.append(list(example["messages"]) + [{"role": "assistant", "content": example["answer"]}])
        run, model_name, _ = space.embedder(layout, compute, data, role="query")
        vectors = run(conversations)
        out = layout.query_embeddings(space.name)
        store.write_npy(vectors.astype(np.float32), out / "embeddings.npy")
        store.write_parquet(pd.DataFrame(rows), out / "queries.parquet")
        return MaterializeResult(metadata={"queries": len(rows), "tasks": len(tasks), "dim": int(vectors.shape[1]),
                                           "model": model_name, "path": MetadataValue.path(str(out))},
                                 check_results=[_norm_check(embed.norm_report(iter([vectors])))])

    return [pool_embeddings_asset, query_embeddings_asset]


def build(grid: Grid) -> list:
    """Each space's own model assets (LESS's warm-up), then its pool and query embeddings."""
    return ([a for space in SPACES.values() for a in space.model_assets(grid)]
            + [a for space in SPACES.values() for a in _build_space(grid, space)])
