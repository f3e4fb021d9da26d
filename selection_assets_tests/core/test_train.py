"""Fine-tuning: LoRA adapters train only their own weights and merge into a plain checkpoint."""

import json

import torch
from transformers import AutoModelForCausalLM

from selection_assets.core import train


def test_lora_trains_adapters_and_saves_a_merged_plain_model(world_lm, tmp_path):
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"].iloc[:16]]
    examples = train.sft_examples(tokenizer, conversations, 128)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    total = sum(p.numel() for p in base.parameters())
    settings = train.TrainSettings(epochs=1.0, learning_rate=1e-2, batch_size=8, max_length=128, seed=0, lora_rank=4)
    lines = []
    stats = train.train_causal_lm(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, examples, settings,
                                  tmp_path / "lora", "cpu", log=lines.append)
    assert 0 < stats["trainable_parameters"] < total / 5
    assert lines and lines[-1].startswith("fine-tuning: 2/2 steps (100%)")
    assert not (tmp_path / "lora" / "adapter_config.json").exists()  # merged, not an adapter directory
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "lora")
    before, after = base.state_dict(), tuned.state_dict()
    assert set(before) == set(after)
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])  # frozen
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"],
                           after["model.layers.0.self_attn.q_proj.weight"])  # adapters merged in
