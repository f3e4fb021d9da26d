"""What names and tags an asset of the lineage: its key (a method's slice is prefixed by the method),
its tags (method, compute, how its data version is given, the search's report), the GPU pool and
pod request of GPU steps, and the cell a grid partition key names."""

from dagster import AssetExecutionContext, AssetKey, Failure

from selection_assets.core.keys import Cell
from selection_assets.orchestration.partitions import cell_of

GPU_TAGS = {"compute": "gpu"}
# the method an asset belongs to (its scores, selection, checkpoints and report): the stage jobs
# leave out the assets of methods not chosen by this tag
METHOD_TAG = "method"


# the stages of a method's own slice, the last part of its asset keys ("rds_plus/selection")
SCORES, SELECTION, FINETUNED, EVAL_REPORT = "scores", "selection", "finetuned", "eval_report"


def method_key(method: str, stage: str) -> AssetKey:
    """The key of `method`'s asset of `stage` (SCORES, SELECTION, FINETUNED or EVAL_REPORT): prefixed
    by the method, so the UI folds each method's slice together."""
    return AssetKey([method, stage])


def method_tags(method: str, gpu: bool = False) -> dict[str, str]:
    """Asset tags of one of `method`'s assets (with the gpu tag for a step that runs models)."""
    return {METHOD_TAG: method, **(GPU_TAGS if gpu else {})}


# assets whose data version is a digest of the files they wrote (data_versions.content_version)
VERSIONED_BY_TAG = "data_version"
CONTENT_VERSIONED_TAGS = {VERSIONED_BY_TAG: "content"}

# the subset-size search's report (assets/search.py), which the stage jobs leave to the search
SEARCH_TAGS = {"budget_search": "report"}


GPU_POOL = "gpu"
# Under the Kubernetes executor (deploy/), each GPU step's pod requests one GPU.
GPU_OP_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {
    "requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}}}


def grid_cell(context: AssetExecutionContext) -> Cell:
    """The cell of a grid-partitioned step, parsed from its partition key (a Failure for a key that
    names no valid cell)."""
    try:
        return cell_of(context.partition_key)
    except ValueError as error:
        raise Failure(f"{context.partition_key!r}: {error}") from None
