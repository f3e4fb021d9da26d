"""Pool assets: validated records per ring, token counts per ring, and the per-pool-size view."""

import json

import numpy as np
import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import load_tokenizer, source_version
from selection_assets.core import pool as pool_io
from selection_assets.core import records, store, tokenize
from selection_assets.partitions import Grid, ring_bounds
from selection_assets.resources import DataResource, StorageResource

TOKENIZE_CHUNK = 8192


def _counts_table(counts: pd.Series) -> str:
    return "| source | examples |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())


def build(grid: Grid) -> list:
    ring_mapping = grid.ring_to_pool_mapping()

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["source_pool"], kinds={"parquet"},
           code_version=source_version(records),
           description="Normalised conversations (id, source, messages) of one ring of the pool; "
                       "malformed records are quarantined with a reason (in = kept + quarantined).")
    def ring_records(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        start, end = ring_bounds(ring)
        source = pool_io.read_source_slice(layout, start, end)
        result = records.validate_raw(source["raw"], source["position"], source["duplicate_of"])
        store.write_parquet(result.kept, layout.ring_records(ring))
        store.write_parquet(result.quarantined, layout.ring_quarantine(ring))
        if not result.n_in == len(source) == end - start:
            raise Failure(f"ring {ring}: {end - start} positions, {len(source)} read, "
                          f"{len(result.kept)} kept + {len(result.quarantined)} quarantined")
        reasons = result.quarantined["reason"].str.replace(r"'[^']*'", "'…'", regex=True).value_counts()
        if len(result.quarantined):
            context.log.warning(f"ring {ring}: quarantined {len(result.quarantined)} records, e.g. source "
                                f"position {result.quarantined['source_index'].iloc[0]}: "
                                f"{result.quarantined['reason'].iloc[0]}")
        return MaterializeResult(metadata={
            "records_in": len(source), "kept": len(result.kept), "quarantined": len(result.quarantined),
            "source_positions": f"[{start}, {end})",
            "quarantine_reasons": MetadataValue.md(_counts_table(reasons) if len(reasons) else "none"),
            "per_source": MetadataValue.md(_counts_table(result.kept["source"].value_counts().sort_index())),
            "quarantine_path": MetadataValue.path(str(layout.ring_quarantine(ring))),
        })

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["ring_records", "tokenizer"], kinds={"parquet"},
           code_version=source_version(tokenize),
           description="Token counts per example (chat template applied): total and answer tokens.")
    def ring_token_counts(context: AssetExecutionContext, storage: StorageResource, data: DataResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        tok = load_tokenizer(layout)
        messages = pd.read_parquet(layout.ring_records(ring), columns=["messages"])["messages"]
        totals, answers = [], []
        for begin in range(0, len(messages), TOKENIZE_CHUNK):
            conversations = [json.loads(m) for m in messages.iloc[begin : begin + TOKENIZE_CHUNK]]
            total, answer = tokenize.token_counts(tokenize.encode_conversations(tok, conversations))
            totals.append(total)
            answers.append(answer)
        total = np.concatenate(totals) if totals else np.zeros(0, np.int64)
        answer = np.concatenate(answers) if answers else np.zeros(0, np.int64)
        frame = pd.DataFrame({"total_tokens": total, "answer_tokens": answer,
                              "truncated": total > data.max_length})
        store.write_parquet(frame, layout.ring_tokens(ring))
        return MaterializeResult(metadata={"examples": len(frame), "tokens": int(total.sum()),
                                           "mean_tokens": float(total.mean()) if len(total) else 0.0,
                                           "truncated": int(frame["truncated"].sum())})

    @asset(group_name="pool", partitions_def=grid.pools_def, kinds={"json"},
           deps=[AssetDep(name, partition_mapping=ring_mapping) for name in ("ring_records", "ring_token_counts")],
           code_version=source_version(pool_io),
           description="The pool of one size: the rings it is made of. Cheap; everything per example "
                       "was computed once per ring upstream.")
    def pool_manifest(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        rings = grid.rings_of(context.partition_key)
        frame = pool_io.pool_frame(layout, rings)
        quarantined = sum(len(pd.read_parquet(layout.ring_quarantine(r), columns=["reason"])) for r in rings)
        manifest = {"pool_size": int(context.partition_key), "rings": rings, "examples": len(frame),
                    "quarantined": quarantined, "mean_tokens": float(frame["total_tokens"].mean())}
        store.write_json(manifest, layout.pool_manifest(context.partition_key))
        return MaterializeResult(metadata={
            "rings": ", ".join(rings), "examples": len(frame), "quarantined": quarantined,
            "per_source": MetadataValue.md(_counts_table(frame["source"].value_counts().sort_index())),
            "clean_share": float(frame["clean"].astype("Float64").mean()) if frame["clean"].notna().any() else None,
        })

    return [ring_records, ring_token_counts, pool_manifest]
