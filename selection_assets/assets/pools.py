"""Pool assets: validated records per ring, token counts per ring, and the per-pool-size view."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import load_tokenizer, source_version
from selection_assets.core import pool as pool_io
from selection_assets.core import records, store, tokenize
from selection_assets.partitions import Grid, ring_bounds
from selection_assets.resources import DataResource, StorageResource

TOKENIZE_CHUNK = 8192
RING_CHUNK = 65536  # source rows validated and written at a time: a ring's memory is one chunk's


def _counts_table(counts) -> str:
    return "| source | examples |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())


def _by_count(counter: Counter) -> dict:
    """Counts, most frequent first."""
    return dict(counter.most_common())


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
        read, reasons, per_source, first_quarantined = 0, Counter(), Counter(), None
        with store.ParquetAppender(layout.ring_records(ring), records.KEPT_SCHEMA) as kept, \
                store.ParquetAppender(layout.ring_quarantine(ring), records.QUARANTINE_SCHEMA) as quarantine:
            for source in pool_io.iter_source_slices(layout, start, end, RING_CHUNK):
                result = records.validate_raw(source["raw"], source["position"], source["duplicate_of"])
                kept.write(result.kept)
                quarantine.write(result.quarantined)
                read += len(source)
                per_source.update(result.kept["source"])
                reasons.update(result.quarantined["reason"].str.replace(r"'[^']*'", "'…'", regex=True))
                if first_quarantined is None and len(result.quarantined):
                    first_quarantined = result.quarantined.iloc[0]
            if not kept.rows + quarantine.rows == read == end - start:
                raise Failure(f"ring {ring}: {end - start} positions, {read} read, "
                              f"{kept.rows} kept + {quarantine.rows} quarantined")
        if first_quarantined is not None:
            context.log.warning(f"ring {ring}: quarantined {quarantine.rows} records, e.g. source "
                                f"position {first_quarantined['source_index']}: {first_quarantined['reason']}")
        return MaterializeResult(metadata={
            "records_in": read, "kept": kept.rows, "quarantined": quarantine.rows,
            "source_positions": f"[{start}, {end})",
            "quarantine_reasons": MetadataValue.md(_counts_table(_by_count(reasons)) if reasons else "none"),
            "per_source": MetadataValue.md(_counts_table(dict(sorted(per_source.items())))),
            "quarantine_path": MetadataValue.path(str(layout.ring_quarantine(ring))),
        })

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["ring_records", "tokenizer"], kinds={"parquet"},
           code_version=source_version(tokenize),
           description="Token counts per example (chat template applied): total and answer tokens.")
    def ring_token_counts(context: AssetExecutionContext, storage: StorageResource, data: DataResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        tok = load_tokenizer(layout)
        totals, answers = [], []
        for batch in pq.ParquetFile(layout.ring_records(ring)).iter_batches(TOKENIZE_CHUNK, columns=["messages"]):
            conversations = [json.loads(m) for m in batch.column("messages").to_pylist()]
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
        quarantined = sum(pq.ParquetFile(layout.ring_quarantine(r)).metadata.num_rows for r in rings)
        manifest = {"pool_size": int(context.partition_key), "rings": rings, "examples": len(frame),
                    "quarantined": quarantined, "mean_tokens": float(frame["total_tokens"].mean())}
        store.write_json(manifest, layout.pool_manifest(context.partition_key))
        return MaterializeResult(metadata={
            "rings": ", ".join(rings), "examples": len(frame), "quarantined": quarantined,
            "per_source": MetadataValue.md(_counts_table(frame["source"].value_counts().sort_index())),
            "clean_share": float(frame["clean"].astype("Float64").mean()) if frame["clean"].notna().any() else None,
        })

    return [ring_records, ring_token_counts, pool_manifest]
