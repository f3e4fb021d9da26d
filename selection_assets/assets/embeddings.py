"""Embedding assets: RDS+ embeddings of every pool example (once, per ring) and of the eval queries."""

import hashlib
import json

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import GPU_POOL, GPU_TAGS, base_model_path, load_tokenizer, source_version
from selection_assets.core import embed, store, tokenize
from selection_assets.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource

NORM_TOLERANCE = 1e-2  # float16 storage keeps row norms within ~1e-3 of 1
POOLING = "position_weighted"


def _load_encoder(layout, compute: ComputeResource):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(base_model_path(layout), dtype=compute.resolved_dtype())
    return model.to(compute.resolved_device()).eval()


def _embedder(layout, compute: ComputeResource, data: DataResource):
    """A function from conversations to float32 RDS+ embeddings, with the model loaded once."""
    tokenizer = load_tokenizer(layout)
    model = _load_encoder(layout, compute)

    def run(conversations: list[list[dict]]) -> np.ndarray:
        encoded = tokenize.encode_conversations(tokenizer, conversations, data.max_length)
        return embed.embed_token_ids(model, [e.input_ids for e in encoded], pad_id=tokenizer.pad_token_id,
                                     batch_tokens=compute.embed_batch_tokens, device=compute.resolved_device(),
                                     pooling=POOLING)

    return run


def _norm_check(report: dict) -> AssetCheckResult:
    ok = report["finite"] and report["max_norm_error"] <= NORM_TOLERANCE
    return AssetCheckResult(check_name="finite_unit_norm", passed=ok,
                            metadata={"finite": report["finite"], "max_norm_error": report["max_norm_error"],
                                      "rows": report["rows"]})


def build(grid: Grid) -> list:
    check = [AssetCheckSpec("finite_unit_norm", asset="pool_embeddings",
                            description="Every stored embedding is finite and has unit L2 norm.")]

    @asset(group_name="embeddings", partitions_def=grid.pools_def, pool=GPU_POOL, tags=GPU_TAGS,
           deps=["raw_pool", "base_model", "tokenizer"], kinds={"pytorch", "numpy"}, check_specs=check,
           code_version=source_version(embed, tokenize),
           description="RDS+ embeddings (position-weighted mean of last hidden states, L2-normalised) "
                       "of one ring, as float16 .npy shards; resumes at the first missing shard.")
    def pool_embeddings(context: AssetExecutionContext, storage: StorageResource, compute: ComputeResource,
                        data: DataResource):
        layout = storage.layout()
        ring = context.partition_key
        frame = pd.read_parquet(layout.ring_records(ring), columns=["id", "messages"])
        fingerprint = {"model": base_model_path(layout), "max_length": data.max_length, "pooling": POOLING,
                       "ids": hashlib.sha256("\n".join(frame["id"]).encode()).hexdigest(),
                       "model_saved": store.read_json(layout.base_model_ref)}
        run = _embedder(layout, compute, data)
        manifest = embed.write_embedding_shards(
            layout.ring_embeddings(ring), embed.ShardPlan(len(frame), data.shard_size), fingerprint,
            lambda start, end: run([json.loads(m) for m in frame["messages"].iloc[start:end]]),
            log=context.log.info)
        report = embed.norm_report(embed.iter_shards(layout.ring_embeddings(ring)))
        return MaterializeResult(
            metadata={"rows": manifest["n_rows"], "shards": len(manifest["shards"]),
                      "resumed_shards": manifest["resumed_shards"], "embed_seconds": manifest["embed_seconds"],
                      "device": compute.resolved_device(),
                      "path": MetadataValue.path(str(layout.ring_embeddings(ring)))},
            check_results=[_norm_check(report)])

    query_check = [AssetCheckSpec("finite_unit_norm", asset="query_embeddings",
                                  description="Every query embedding is finite and has unit L2 norm.")]

    @asset(group_name="embeddings", pool=GPU_POOL, tags=GPU_TAGS, deps=["eval_tasks", "base_model", "tokenizer"],
           kinds={"pytorch", "numpy"}, check_specs=query_check, code_version=source_version(embed, tokenize),
           description="RDS+ embeddings of each eval task's dev queries (prompt + gold answer + EOS).")
    def query_embeddings(context: AssetExecutionContext, storage: StorageResource, compute: ComputeResource,
                         data: DataResource):
        layout = storage.layout()
        tasks = store.read_json(layout.eval_tasks)["tasks"]
        rows, conversations = [], []
        for task in tasks:
            for index, example in enumerate(task["dev"]):
                rows.append({"query_id": f"{task['name']}/{index}", "task": task["name"]})
                conversations.append(list(example["messages"]) + [{"role": "assistant", "content": example["answer"]}])
        vectors = _embedder(layout, compute, data)(conversations)
        out = layout.query_embeddings
        store.write_npy(vectors.astype(np.float32), out / "embeddings.npy")
        store.write_parquet(pd.DataFrame(rows), out / "queries.parquet")
        report = embed.norm_report(iter([vectors]))
        return MaterializeResult(metadata={"queries": len(rows), "tasks": len(tasks), "dim": int(vectors.shape[1]),
                                           "path": MetadataValue.path(str(out))},
                                 check_results=[_norm_check(report)])

    return [pool_embeddings, query_embeddings]


