"""Source assets: the shuffled raw pool every pool size is a prefix of, and the eval tasks."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.data_versions import content_version
from selection_assets.orchestration.labels import CONTENT_VERSIONED_TAGS
from selection_assets.core import real_material
from selection_assets.orchestration import preflight
from selection_assets.core import ingest, readers, store
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, WorldResource
from selection_assets.world import generate


def build(grid: Grid) -> list:
    largest = max(grid.pool_sizes)

    @asset(group_name="sources", kinds={"parquet"}, tags=CONTENT_VERSIONED_TAGS,
           description="The whole source pool as raw JSON records in one seeded shuffle; pool size p is "
                       "its first p records. 'world' generates the embedded default pool.")
    def source_pool(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                    compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        if data.pool == "world":
            raw = (record.encode("utf-8") for record in generate.iter_pool(largest, data.seed))
        else:
            try:
                raw = readers.iter_raw_records(real_material.pool_source(data.pool),
                                               max_record_bytes=data.max_record_bytes)
            except (FileNotFoundError, ValueError) as error:
                raise Failure(f"DataResource.pool={data.pool!r} (SELECTION_ASSETS_POOL): {error}") from None
        try:
            count = ingest.write_shuffled_source(raw, layout.source_pool, data.seed, minimum=largest,
                                                 workers=compute.workers_for(largest))
        except ValueError as error:
            raise Failure(f"pool source {data.pool!r}: {error}; lower the experiment config's [grid] pool_sizes") from None
        return MaterializeResult(metadata={"records": count, "source": data.pool,
                                           "path": MetadataValue.path(str(layout.source_pool))},
                                 data_version=content_version(layout.source_pool))

    @asset(group_name="sources", kinds={"json"}, tags=CONTENT_VERSIONED_TAGS,
           description="Eval tasks: per task a few dev queries (prompt + gold answer, RDS+ targets) and a "
                       "test split scored through lm-evaluation-harness; harness tasks named in "
                       "DataResource.harness_tasks add their few-shot split as dev queries.")
    def eval_tasks(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                   world: WorldResource) -> MaterializeResult:
        layout = storage.layout()
        try:
            tasks = preflight.load_eval_tasks(data, world)
        except ValueError as error:
            raise Failure(str(error)) from None
        store.write_json(tasks, layout.eval_tasks)
        table = "| task | dev | test |\n|---|---|---|\n" + "\n".join(
            f"| {t['name']} | {len(t['dev'])} | {'the harness test split' if 'harness_task' in t else len(t['test'])} |"
            for t in tasks["tasks"])
        return MaterializeResult(metadata={"tasks": MetadataValue.md(table),
                                           "path": MetadataValue.path(str(layout.eval_tasks))},
                                 data_version=content_version(layout.eval_tasks))

    return [source_pool, eval_tasks]
