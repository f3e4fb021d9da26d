"""A base model that cannot be fine-tuned is refused with its reason, before any work starts."""

from transformers import LlamaConfig, T5Config

from selection_assets.core.preflight import base_model_problem


def _llama_config(**extra) -> LlamaConfig:
    return LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, **extra)


def test_a_trainable_model_directory_passes(world_lm):
    _, model_dir, _ = world_lm
    assert base_model_problem(str(model_dir)) is None


def test_quantized_wrong_architecture_missing_weights_and_missing_path_are_refused(tmp_path):
    quantized = tmp_path / "quantized"
    _llama_config(quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}).save_pretrained(quantized)
    (quantized / "model.safetensors").write_bytes(b"")
    assert "quantized (bitsandbytes)" in base_model_problem(str(quantized))

    encoder_decoder = tmp_path / "encoder_decoder"
    T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2).save_pretrained(encoder_decoder)
    assert "'t5' is not a causal LM" in base_model_problem(str(encoder_decoder))

    no_weights = tmp_path / "no_weights"
    _llama_config().save_pretrained(no_weights)
    assert "holds no weights" in base_model_problem(str(no_weights))

    assert "config cannot be loaded" in base_model_problem(str(tmp_path / "nowhere"))
