"""Helpers shared by the asset modules: code versions from source, grid keys, model loading."""

import ast
import functools
import hashlib
import inspect
import json
import textwrap
from types import ModuleType

from dagster import AssetExecutionContext, AssetKey, DataVersion, Failure, MultiPartitionKey

from selection_assets.core import methods as methods_package
from selection_assets.core import store, tokenize
from selection_assets.core.store import Layout
from selection_assets.partitions import BUDGET_DIM, POOL_DIM
from selection_assets.resources import ComputeResource, TrainResource

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


GPU_POOL = "gpu"
# Under the Kubernetes executor (deploy/), each GPU step's pod requests one GPU.
GPU_OP_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {
    "requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}}}


def source_version(*objects: ModuleType | type | object | str) -> str:
    """A code_version derived from what the modules/functions that do the work do: their syntax
    trees, so a comment, a docstring or a layout change reruns nothing and any change of code does
    (strings, such as a method's parameters, are hashed as they are)."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update((obj if isinstance(obj, str) else behaviour(inspect.getsource(obj))).encode())
    return digest.hexdigest()[:16]


# the methods package's catalogue: which methods exist and which a run can hold. No method's output
# depends on another's entry, so its versions leave these out (`method_code`)
CATALOGUE = frozenset({"registry", "choose_methods", "check_methods", "_unset_settings"})


@functools.cache
def _shared_method_code(package_source: str) -> str:
    tree = ast.parse(package_source)
    tree.body = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name in CATALOGUE)]
    return behaviour(ast.unparse(tree))


def method_code(spec) -> tuple[str, str]:
    """What decides a method's scores and selection besides its own modules, as text for a code
    version: the methods package's shared code without its catalogue (`CATALOGUE`), and the method's
    own entry there (what it needs, its space, parameters, seeding, per-budget order), so adding a
    method or changing another's entry reruns nothing of this one."""
    entry = (f"needs={sorted(need.value for need in spec.needs)} space={spec.space} params={spec.params!r} "
             f"seeded={spec.seeded} per_budget={spec.per_budget}")
    return _shared_method_code(inspect.getsource(methods_package)), entry


def resource_defaults(resource: type, *names: str) -> str:
    """The default values of a resource's fields `names`, as text for a code version: a default
    changed in code changes the version (values given as run config are not code, and Dagster does
    not version them)."""
    return "; ".join(f"{resource.__name__}.{name}={resource.model_fields[name].default!r}" for name in names)


def fine_tuning_settings() -> tuple:
    """What decides a fine-tuning recipe beyond `core/train.py`: `TrainResource.settings` and its
    fields' defaults (for the code versions of the steps that fine-tune)."""
    return TrainResource.settings, resource_defaults(TrainResource, "epochs", "learning_rate", "batch_size",
                                                     "lora_rank")


def less_settings() -> tuple:
    """What decides LESS's warm-up beyond `core/less.py`: `TrainResource.less_settings` and the
    defaults of the fields it reads."""
    return TrainResource.less_settings, resource_defaults(TrainResource, "less_lora_rank", "less_epochs",
                                                          "learning_rate", "batch_size", "less_warmup_fraction",
                                                          "less_projection_dim")


def model_numerics() -> tuple:
    """What decides the dtype and compilation of a base model that embeds or scores: the
    `ComputeResource` methods that resolve them and their fields' defaults."""
    return (ComputeResource.resolved_dtype, ComputeResource.resolved_compile,
            resource_defaults(ComputeResource, "embed_dtype", "embed_compile"))


@functools.cache  # one build of the definitions asks 384 times, for 66 distinct sources
def behaviour(source: str) -> str:
    """`source` as a dump of its syntax tree without docstrings (comments and layout are not in it)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def grid_keys(context: AssetExecutionContext) -> tuple[str, str]:
    """(pool_size, budget) of a grid-partitioned run."""
    key = context.partition_key
    if not isinstance(key, MultiPartitionKey):
        raise Failure(f"expected a pool_size x budget partition, got {key!r}")
    dims = key.keys_by_dimension
    return dims[POOL_DIM], dims[BUDGET_DIM]


def _base_model_reference(layout: Layout) -> dict:
    if not layout.base_model_ref.exists():
        raise Failure("base_model has not been materialised: materialise it first")
    return store.read_json(layout.base_model_ref)


def base_model_path(layout: Layout) -> str:
    """The base model's name or path, as recorded by the base_model asset (a model the lineage made
    itself is recorded relative to the storage root and resolved here)."""
    reference = _base_model_reference(layout)
    return str(layout.root / reference["path"]) if reference.get("in_storage") else reference["path"]


def base_model_name(layout: Layout) -> str:
    """The base model as recorded (a Hugging Face name or path, or a path inside the storage root):
    what fingerprints name, so they survive a moved storage root."""
    return _base_model_reference(layout)["path"]


def load_tokenizer(layout: Layout):
    """The pipeline's tokenizer (the tokenizer asset's directory)."""
    return tokenize.load_tokenizer_dir(layout.tokenizer_dir)
