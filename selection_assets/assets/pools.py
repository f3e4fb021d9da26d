"""Pool assets: validated records per ring, token counts per ring, and the per-pool-size view."""

import re
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import source_version
from selection_assets.core import pool as pool_io
from selection_assets.core import parallel, records, store, tokenize
from selection_assets.partitions import Grid, ring_bounds
from selection_assets.resources import ComputeResource, DataResource, StorageResource

TOKENIZE_CHUNK = 8192
RING_CHUNK = 65536  # source rows validated and written at a time: a ring's memory is one chunk's
QUOTED = re.compile(r"'[^']*'")  # quoted values in quarantine reasons, left out when reasons are counted
PARALLEL_MIN_ROWS = 100_000  # smaller rings stay in one process: a chunk or two is not worth a pool


def _counts_table(counts) -> str:
    return "| source | examples |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())


def _workers(compute: ComputeResource, rows: int) -> int:
    """Worker processes for a ring's validation or tokenisation (ComputeResource.cpu_workers)."""
    return parallel.resolve_workers(compute.cpu_workers) if rows >= PARALLEL_MIN_ROWS else 1


def build(grid: Grid) -> list:
    ring_mapping = grid.ring_to_pool_mapping()

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["source_pool"], kinds={"parquet"},
           code_version=source_version(records),
           description="Normalised conversations (id, source, messages) of one ring of the pool; "
                       "malformed records are quarantined with a reason (in = kept + quarantined).")
    def ring_records(context: AssetExecutionContext, storage: StorageResource,
                     compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        start, end = ring_bounds(ring)
        slices = [(begin, min(begin + RING_CHUNK, end)) for begin in range(start, end, RING_CHUNK)]
        read, reasons, per_source, first_quarantined = 0, Counter(), Counter(), None
        with store.ParquetAppender(layout.ring_records(ring), records.KEPT_SCHEMA) as kept, \
                store.ParquetAppender(layout.ring_quarantine(ring), records.QUARANTINE_SCHEMA) as quarantine:
            for rows, kept_rows, quarantined_rows in parallel.ordered_map(
                    pool_io.SliceValidator(layout), slices, _workers(compute, end - start)):
                kept.write(kept_rows)
                quarantine.write(quarantined_rows)
                read += rows
                per_source.update(kept_rows.column("source").to_pylist())
                reasons.update(QUOTED.sub("'…'", reason) for reason in quarantined_rows.column("reason").to_pylist())
                if first_quarantined is None and quarantined_rows.num_rows:
                    first_quarantined = quarantined_rows.slice(0, 1).to_pylist()[0]
            if not kept.rows + quarantine.rows == read == end - start:
                raise Failure(f"ring {ring}: {end - start} positions, {read} read, "
                              f"{kept.rows} kept + {quarantine.rows} quarantined")
        if first_quarantined is not None:
            context.log.warning(f"ring {ring}: quarantined {quarantine.rows} records, e.g. source "
                                f"position {first_quarantined['source_index']}: {first_quarantined['reason']}")
        return MaterializeResult(metadata={
            "records_in": read, "kept": kept.rows, "quarantined": quarantine.rows,
            "source_positions": f"[{start}, {end})",
            "quarantine_reasons": MetadataValue.md(_counts_table(dict(reasons.most_common())) if reasons else "none"),
            "per_source": MetadataValue.md(_counts_table(dict(sorted(per_source.items())))),
            "quarantine_path": MetadataValue.path(str(layout.ring_quarantine(ring))),
        })

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["ring_records", "tokenizer"], kinds={"parquet"},
           code_version=source_version(tokenize),
           description="Token counts per example (chat template applied): total and answer tokens.")
    def ring_token_counts(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                          compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        records_file = pq.ParquetFile(layout.ring_records(ring))
        batches = (batch.column("messages").to_pylist()
                   for batch in records_file.iter_batches(TOKENIZE_CHUNK, columns=["messages"]))
        totals, answers = [], []
        for total, answer in parallel.ordered_map(tokenize.TokenCounter(str(layout.tokenizer_dir)), batches,
                                                  _workers(compute, records_file.metadata.num_rows)):
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
