"""Checks that refuse a setting before any work starts, naming what is wrong with it, instead of
failing deep into a run (a quantized base model used to fail only at its first fine-tuning step)."""

from __future__ import annotations

from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def base_model_problem(name_or_path: str) -> str | None:
    """Why `name_or_path` cannot serve as a base model to fine-tune in full, or None if it can:
    its config must load, name a causal-LM architecture, carry no quantization, and a local
    directory must hold weights."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        return f"its config cannot be loaded: {error}"
    quantization = getattr(config, "quantization_config", None)
    if quantization:
        method = (quantization.get("quant_method") if isinstance(quantization, dict)
                  else getattr(quantization, "quant_method", None)) or "unknown method"
        return (f"it is quantized ({method}); full fine-tuning needs float weights: load it, dequantise it and "
                f"save_pretrained a float copy, then name that copy")
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        return f"its model type {config.model_type!r} is not a causal LM transformers can load for generation"
    local = Path(name_or_path)
    if local.is_dir() and not any(next(local.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        return f"the directory holds no weights ({', '.join(WEIGHT_PATTERNS)})"
    return None
