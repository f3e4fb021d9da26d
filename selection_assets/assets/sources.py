"""Source assets: the shuffled raw pool every pool size is a prefix of, and the eval tasks."""

import json
import re

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import CONTENT_VERSIONED_TAGS, content_version
from selection_assets import real_material
from selection_assets.core import harness, ingest, readers, store
from selection_assets.partitions import Grid
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
            raise Failure(f"pool source {data.pool!r}: {error}; lower SELECTION_ASSETS_POOL_SIZES") from None
        return MaterializeResult(metadata={"records": count, "source": data.pool,
                                           "path": MetadataValue.path(str(layout.source_pool))},
                                 data_version=content_version(layout.source_pool))

    @asset(group_name="sources", kinds={"json"}, tags=CONTENT_VERSIONED_TAGS,
           description="Eval tasks: per task a few dev queries (prompt + gold answer, RDS+ targets) and a "
                       "test split scored through lm-evaluation-harness; harness tasks named in "
                       "SELECTION_ASSETS_HARNESS_TASKS add their few-shot split as dev queries.")
    def eval_tasks(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                   world: WorldResource) -> MaterializeResult:
        layout = storage.layout()
        if data.eval_tasks == "world":
            tasks = generate.generate_eval_tasks(data.seed, n_dev=world.n_dev, n_test=world.n_test)
        elif data.eval_tasks in real_material.PACKAGED_EVAL_TASKS:
            try:
                tasks = real_material.gsm8k_tasks(data.seed, n_dev=world.n_dev, n_test=world.n_test,
                                                  max_new_tokens=data.max_new_tokens)
            except (FileNotFoundError, ValueError) as error:
                raise Failure(f"DataResource.eval_tasks={data.eval_tasks!r} (SELECTION_ASSETS_EVAL_TASKS): "
                              f"{error}") from None
        else:
            try:
                with open(data.eval_tasks, encoding="utf-8") as handle:
                    tasks = json.load(handle)
            except (OSError, ValueError) as error:
                raise Failure(f"DataResource.eval_tasks={data.eval_tasks!r} (SELECTION_ASSETS_EVAL_TASKS) "
                              f"cannot be read: {error}") from None
        _validate_tasks(tasks, data.eval_tasks)
        named = [n.strip() for n in data.harness_tasks.split(",") if n.strip()]
        if named:
            try:
                tasks["tasks"].extend(harness.named_task_entries(named, data.harness_include, n_dev=world.n_dev))
            except ValueError as error:
                raise Failure(f"DataResource.harness_tasks={data.harness_tasks!r} (SELECTION_ASSETS_HARNESS_TASKS): "
                              f"{error}") from None
        store.write_json(tasks, layout.eval_tasks)
        table = "| task | dev | test |\n|---|---|---|\n" + "\n".join(
            f"| {t['name']} | {len(t['dev'])} | {'the harness test split' if 'harness_task' in t else len(t['test'])} |"
            for t in tasks["tasks"])
        return MaterializeResult(metadata={"tasks": MetadataValue.md(table),
                                           "path": MetadataValue.path(str(layout.eval_tasks))},
                                 data_version=content_version(layout.eval_tasks))

    return [source_pool, eval_tasks]


TASK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def _validate_tasks(tasks: dict, origin: str) -> None:
    """Fail with the task and field at fault if an eval-task file is malformed."""
    if not isinstance(tasks, dict) or not isinstance(tasks.get("tasks"), list) or not tasks["tasks"]:
        raise Failure(f"eval tasks from {origin!r}: expected {{'tasks': [...]}} with at least one task")
    for position, task in enumerate(tasks["tasks"]):
        name = task.get("name", f"#{position}")
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise Failure(f"eval task #{position} from {origin!r}: name {name!r} must be letters, digits, '_', "
                          "'-' or '.' (not starting with '.'); it names files, which must stay inside their folder")
        try:
            harness.scoring_of(task)
        except ValueError as error:
            raise Failure(str(error)) from None
        for split in ("dev", "test"):
            rows = task.get(split)
            if not isinstance(rows, list) or not rows:
                raise Failure(f"eval task {name!r}: '{split}' must be a non-empty list")
            for row_index, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise Failure(f"eval task {name!r} {split}[{row_index}]: expected an object, got {type(row).__name__}")
                if not isinstance(row.get("messages"), list) or not isinstance(row.get("answer"), str):
                    raise Failure(f"eval task {name!r} {split}[{row_index}]: needs 'messages' (list) "
                                  "and 'answer' (text)")
