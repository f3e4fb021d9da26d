"""Helpers shared by the asset modules: asset keys and tags, content data versions, grid keys, model loading."""

import hashlib
import json

from dagster import AssetExecutionContext, AssetKey, DataVersion, Failure

from selection_assets.core import store, tokenize, weights
from selection_assets.core.keys import Cell
from selection_assets.core.store import Layout
from selection_assets.partitions import cell_of

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


# assets whose data version is a digest of the files they wrote (`content_version`), tagged so:
# a rerun of one that writes the same bytes leaves its children fresh (operations.staleness)
VERSIONED_BY_TAG = "data_version"
CONTENT_VERSIONED_TAGS = {VERSIONED_BY_TAG: "content"}


def content_version(*paths, record: dict | None = None) -> DataVersion:
    """The data version of an asset that wrote `paths` (files or directories) and `record` (a JSON
    record, its measured seconds left out): their content digest (one path alone: its own)."""
    digests = [store.content_digest(path) for path in paths]
    if record is not None:
        text = json.dumps(store.without_durations(record), sort_keys=True, default=str)
        digests.append(hashlib.sha256(text.encode()).hexdigest())
    return DataVersion(digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest())


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


def _base_model_reference(layout: Layout) -> dict:
    if not layout.base_model_ref.exists():
        raise Failure("base_model has not been materialised: materialise it first")
    return store.read_json(layout.base_model_ref)


def base_model_path(layout: Layout) -> str:
    """The base model's name or path, as recorded by the base_model asset (a model the lineage made
    itself is recorded relative to the storage root and resolved here)."""
    reference = _base_model_reference(layout)
    return str(layout.root / reference["path"]) if reference.get("in_storage") else reference["path"]


def load_base_model(layout: Layout, data, model_class=None, **kwargs):
    """The base model (`model_class`, a causal LM by default) from its recorded name or path, from
    safetensors only unless `data.allow_pickle_weights` (core/weights.py)."""
    if model_class is None:
        from transformers import AutoModelForCausalLM as model_class
    return weights.from_pretrained(model_class, base_model_path(layout), allow_pickle=data.allow_pickle_weights,
                                   **kwargs)


def base_model_name(layout: Layout) -> str:
    """The base model as recorded (a Hugging Face name or path, or a path inside the storage root):
    what fingerprints name, so they survive a moved storage root."""
    return _base_model_reference(layout)["path"]


def load_tokenizer(layout: Layout):
    """The pipeline's tokenizer (the tokenizer asset's directory)."""
    return tokenize.load_tokenizer_dir(layout.tokenizer_dir)
