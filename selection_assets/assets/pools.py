"""Pool assets: validated records per ring, token counts per ring, and the per-pool-size view."""

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.data_versions import content_version
from selection_assets.orchestration.labels import CONTENT_VERSIONED_TAGS
from selection_assets.core import pool as pool_io
from selection_assets.core import store
from selection_assets.orchestration.partitions import Grid, pool_size_of, ring_of
from selection_assets.resources import ComputeResource, DataResource, StorageResource


def _counts_table(counts) -> str:
    return "| source | examples |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts.items())


def build(grid: Grid) -> list:
    ring_mapping = grid.ring_to_pool_mapping()

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["source_pool"], kinds={"parquet"},
           tags=CONTENT_VERSIONED_TAGS,
           description="Normalised conversations (id, source, messages) of one ring of the pool; "
                       "malformed records are quarantined with a reason (in = kept + quarantined).")
    def ring_records(context: AssetExecutionContext, storage: StorageResource,
                     compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = ring_of(context.partition_key)
        try:
            written = pool_io.write_ring_records(layout, ring, compute.workers_for(ring.size))
        except ValueError as error:
            raise Failure(str(error)) from None
        if written.first_quarantined is not None:
            context.log.warning(f"ring {ring.key}: quarantined {written.quarantined} records, e.g. source position "
                                f"{written.first_quarantined['source_index']}: {written.first_quarantined['reason']}")
        return MaterializeResult(metadata={
            "records_in": written.read, "kept": written.kept, "quarantined": written.quarantined,
            "source_positions": f"[{ring.start}, {ring.end})",
            "quarantine_reasons": MetadataValue.md(_counts_table(dict(written.reasons.most_common()))
                                                   if written.reasons else "none"),
            "per_source": MetadataValue.md(_counts_table(dict(sorted(written.per_source.items())))),
            "quarantine_path": MetadataValue.path(str(layout.ring_quarantine(ring))),
        }, data_version=content_version(layout.ring_records(ring), layout.ring_quarantine(ring)))

    @asset(group_name="pool", partitions_def=grid.rings_def, deps=["ring_records", "tokenizer"], kinds={"parquet"},
           tags=CONTENT_VERSIONED_TAGS,
           description="Token counts per example (chat template applied): total and answer tokens.")
    def ring_token_counts(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                          compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        ring = ring_of(context.partition_key)
        rows = store.parts_rows(layout.ring_records(ring))
        total, answer = pool_io.count_ring_tokens(layout, ring, compute.workers_for(rows))
        frame = pd.DataFrame({"total_tokens": total, "answer_tokens": answer,
                              "truncated": total > data.max_length})
        path = store.write_parquet(frame, layout.ring_tokens(ring))
        return MaterializeResult(metadata={"examples": len(frame), "tokens": int(total.sum()),
                                           "mean_tokens": float(total.mean()) if len(total) else 0.0,
                                           "truncated": int(frame["truncated"].sum())},
                                 data_version=content_version(path))

    @asset(group_name="pool", partitions_def=grid.pools_def, kinds={"json"}, tags=CONTENT_VERSIONED_TAGS,
           deps=[AssetDep(name, partition_mapping=ring_mapping) for name in ("ring_records", "ring_token_counts")],
           description="The pool of one size: the rings it is made of (every later step of the pool reads "
                       "them here) and its counts; its data version covers its rings' records, so a cell that "
                       "reads them through it is stale when they change. Cheap; everything per example was "
                       "computed once per ring upstream.")
    def pool_manifest(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        layout = storage.layout()
        pool_size = pool_size_of(context.partition_key)
        rings = grid.rings_of(pool_size)
        manifest = pool_io.write_pool_manifest(layout, pool_size, rings)
        return MaterializeResult(metadata={
            "rings": ", ".join(manifest["rings"]), "examples": manifest["examples"],
            "quarantined": manifest["quarantined"],
            "per_source": MetadataValue.md(_counts_table(dict(sorted(manifest["per_source"].items())))),
            "clean_share": manifest["clean_share"],
        }, data_version=content_version(layout.pool_manifest(pool_size), *map(layout.ring_records, rings)))

    return [ring_records, ring_token_counts, pool_manifest]
