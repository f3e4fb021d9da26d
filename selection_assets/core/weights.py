"""Loading a model named by the user (a Hugging Face name or a local path) without running its code.

Pickled weights (`pytorch_model.bin`) execute code when loaded, so a user's model is read from
safetensors only unless the user opts in (`DataResource.allow_pickle_weights`); models the lineage
writes itself are saved as safetensors. Remote code is never trusted.
"""

from __future__ import annotations

from typing import Any

OPT_IN = "SELECTION_ASSETS_ALLOW_PICKLE_WEIGHTS=1 (DataResource.allow_pickle_weights)"


def from_pretrained(model_class: Any, name_or_path: str, *, allow_pickle: bool = False, **kwargs) -> Any:
    """`model_class.from_pretrained(name_or_path, **kwargs)` reading safetensors only unless
    `allow_pickle`; a model with pickled weights alone is refused with the setting that admits it."""
    try:
        return model_class.from_pretrained(name_or_path, use_safetensors=None if allow_pickle else True,
                                           trust_remote_code=False, **kwargs)
    except OSError as error:
        if allow_pickle or "safetensors" not in str(error):
            raise
        raise OSError(f"{name_or_path}: no safetensors weights found ({error}); pickled weights can run code "
                      f"when loaded: convert them to safetensors, or if you trust their author set {OPT_IN}"
                      ) from None
