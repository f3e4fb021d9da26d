"""Fine-tuning: LoRA adapters train only their own weights and merge into a plain checkpoint; packed
batches give every token the loss it has in a padded batch."""

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


def _token_losses(model, batch: dict) -> torch.Tensor:
    """Each labelled token's cross-entropy, in order, from one forward pass over `batch`."""
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    kept = labels != train.IGNORE_INDEX
    return torch.nn.functional.cross_entropy(logits[kept], labels[kept], reduction="none")


def test_packed_batches_give_every_token_its_padded_loss_and_train_the_same_first_step(world_lm, tmp_path):
    """One row per step, no padding, attention within each conversation: each answer token's loss is
    the one it has in a padded batch (float tolerance: the kernels sum in another order), and so is
    the first step's training loss, which the Trainer computes through the same packed forward pass."""
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"].iloc[:8]]
    examples = train.sft_examples(tokenizer, conversations, 128)
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()  # as the Trainer runs it (no dropout here)
    model.config.use_cache = False
    padded = train.batch_collator(tokenizer, packed=False)(examples)
    packed = train.batch_collator(tokenizer, packed=True)(examples)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))  # no padding
    assert padded["input_ids"].numel() > packed["input_ids"].numel()
    with torch.no_grad():
        torch.testing.assert_close(_token_losses(model, packed), _token_losses(model, padded), rtol=1e-4, atol=1e-5)
    losses, configs, positions = {}, {}, {}
    for packing in (False, True):
        settings = train.TrainSettings(epochs=1.0, learning_rate=1e-3, batch_size=8, max_length=128, seed=0,
                                       packed=packing)
        stats = train.train_causal_lm(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, examples, settings,
                                      tmp_path / str(packing), "cpu")
        losses[packing] = stats["train_loss"]
        positions[packing] = (stats["batch_tokens"], stats["tokens"])
        configs[packing] = json.loads((tmp_path / str(packing) / "config.json").read_text())
    assert abs(losses[True] - losses[False]) <= 1e-4 * losses[False]
    assert configs[True] == configs[False]  # the cache setting is restored before the model is saved
    assert positions[True][0] == positions[True][1] < positions[False][0]  # computed positions: no padding
