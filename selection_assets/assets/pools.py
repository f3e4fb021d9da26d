"""Pool assets: validated records per ring, token counts per ring, and the per-pool-size view."""

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import CONTENT_VERSIONED_TAGS, content_version, source_version
from selection_assets.core import pool as pool_io
from selection_assets.core import parallel, records, store, tokenize
from selection_assets.partitions import Grid, ring_bounds
from selection_assets.resources import ComputeResource, DataResource, StorageResource


def _counts_table(counts) -> str:
    return "| source | examples |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())


def build(grid: Grid) -> list:
    ring_mapping = grid.ring_to_pool_mapping()

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["source_pool"], kinds={"parquet"},
           tags=CONTENT_VERSIONED_TAGS,
           code_version=source_version(records, pool_io.write_ring_records, pool_io.ChunkPartWriter,
                                        pool_io.read_source_slice, pool_io.RingRecords, store.write_part,
                                        ring_bounds, parallel.ordered_map),
           description="Normalised conversations (id, source, messages) of one ring of the pool; "
                       "malformed records are quarantined with a reason (in = kept + quarantined).")
    def ring_records(context: AssetExecutionContext, storage: StorageResource,
                     compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        start, end = ring_bounds(ring)
        try:
            written = pool_io.write_ring_records(layout, ring, start, end, compute.workers_for(end - start))
        except ValueError as error:
            raise Failure(str(error)) from None
        if written.first_quarantined is not None:
            context.log.warning(f"ring {ring}: quarantined {written.quarantined} records, e.g. source position "
                                f"{written.first_quarantined['source_index']}: {written.first_quarantined['reason']}")
        return MaterializeResult(metadata={
            "records_in": written.read, "kept": written.kept, "quarantined": written.quarantined,
            "source_positions": f"[{start}, {end})",
            "quarantine_reasons": MetadataValue.md(_counts_table(dict(written.reasons.most_common()))
                                                   if written.reasons else "none"),
            "per_source": MetadataValue.md(_counts_table(dict(sorted(written.per_source.items())))),
            "quarantine_path": MetadataValue.path(str(layout.ring_quarantine(ring))),
        }, data_version=content_version(layout.ring_records(ring), layout.ring_quarantine(ring)))

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["ring_records", "tokenizer"], kinds={"parquet"},
           tags=CONTENT_VERSIONED_TAGS,
           code_version=source_version(tokenize, pool_io.PartTokenCounter, pool_io.count_ring_tokens,
                                        pool_io.joined_counts, parallel.ordered_map, store.part_paths),
           description="Token counts per example (chat template applied): total and answer tokens.")
    def ring_token_counts(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                          compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = context.partition_key
        rows = store.parts_rows(layout.ring_records(ring))
        total, answer = pool_io.count_ring_tokens(layout, ring, compute.workers_for(rows))
        frame = pd.DataFrame({"total_tokens": total, "answer_tokens": answer,
                              "truncated": total > data.max_length})
        path = store.write_parquet(frame, layout.ring_tokens(ring))
        return MaterializeResult(metadata={"examples": len(frame), "tokens": int(total.sum()),
                                           "mean_tokens": float(total.mean()) if len(total) else 0.0,
                                           "truncated": int(frame["truncated"].sum())},
                                 data_version=content_version(path))

    @asset(group_name="pool", partitions_def=grid.pools_def, kinds={"json"},
           deps=[AssetDep(name, partition_mapping=ring_mapping) for name in ("ring_records", "ring_token_counts")],
           code_version=source_version(pool_io),
           description="The pool of one size: the rings it is made of. Cheap; everything per example "
                       "was computed once per ring upstream.")
    def pool_manifest(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        rings = grid.rings_of(context.partition_key)
        summary = pool_io.pool_summary(layout, rings)
        quarantined = sum(store.parts_rows(layout.ring_quarantine(r)) for r in rings)
        manifest = {"pool_size": int(context.partition_key), "rings": rings, "examples": summary.examples,
                    "quarantined": quarantined, "mean_tokens": summary.mean_tokens}
        store.write_json(manifest, layout.pool_manifest(context.partition_key))
        return MaterializeResult(metadata={
            "rings": ", ".join(rings), "examples": summary.examples, "quarantined": quarantined,
            "per_source": MetadataValue.md(_counts_table(dict(sorted(summary.per_source.items())))),
            "clean_share": summary.clean_share,
        })

    return [ring_records, ring_token_counts, pool_manifest]
