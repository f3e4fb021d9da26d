"""The base model and tokenizer the lineage made or was given, loaded as every step loads them: from
the path the `base_model` and `tokenizer` assets recorded."""

from dagster import Failure

from selection_assets.core import store, tokenize, weights
from selection_assets.core.store import Layout

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
