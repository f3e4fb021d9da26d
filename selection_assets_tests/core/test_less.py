"""LESS gradient features against a plain restatement of princeton-nlp/LESS's procedure
(collect_grad_reps.py: per-example LoRA gradients, one simulated Adam step for the pool, random
projection, normalisation; matching.py: learning-rate-weighted sum over checkpoints): once exactly,
through the project's own projector and recorded weights, and once independently of both, against
the unprojected gradients' cosines weighted by the schedule restated from the settings."""

import json

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from selection_assets.core import store
from selection_assets.core.less import (GradientFeaturizer, LessSettings, RademacherProjector, checkpoint_weights,
                                        warm_up)
from selection_assets.core.train import sft_examples

SETTINGS = LessSettings(lora_rank=4, lora_alpha=16, epochs=2, learning_rate=2e-3, batch_size=8, projection_dim=48,
                        max_length=128)


def _restated_features(model_dir, warmup_dir, examples, adam: bool) -> np.ndarray:
    """LESS by the book, one checkpoint and one example at a time."""
    manifest = json.loads((warmup_dir / "manifest.json").read_text())
    rates = np.array([c["mean_learning_rate"] for c in manifest["checkpoints"]])
    weights = rates / rates.sum()
    per_checkpoint = []
    for checkpoint, weight in zip(manifest["checkpoints"], weights):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                               LoraConfig(r=4, lora_alpha=16, lora_dropout=0.1,
                                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                          task_type="CAUSAL_LM"))
        model.eval()
        saved = load_file(str(warmup_dir / checkpoint["directory"] / "lora.safetensors"))
        moments = load_file(str(warmup_dir / checkpoint["directory"] / "adam_moments.safetensors"))
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name in names:
                params[name].copy_(saved[name])
        projection = RademacherProjector(sum(params[n].numel() for n in names), 48, 0).matrix()
        rows = []
        for example in examples:
            loss = model(input_ids=torch.tensor([example["input_ids"]]), labels=torch.tensor([example["labels"]])).loss
            gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [params[n] for n in names])])
            if adam:
                m = torch.cat([moments[f"exp_avg::{n}"].reshape(-1) for n in names])
                v = torch.cat([moments[f"exp_avg_sq::{n}"].reshape(-1) for n in names])
                m = 0.9 * m + 0.1 * gradient
                v = 0.999 * v + 0.001 * gradient**2
                gradient = m / torch.sqrt(v + 1e-8)
            projected = gradient @ projection
            rows.append((projected / projected.norm()).detach().numpy() * np.sqrt(weight))
        per_checkpoint.append(np.stack(rows))
    return np.concatenate(per_checkpoint, axis=1)


def test_gradient_features_match_a_restatement_of_less(world_lm, tmp_path):
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"][:36]]
    warmup_dir = tmp_path / "warmup"
    manifest = warm_up(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer,
                       sft_examples(tokenizer, conversations[:32], 128), SETTINGS, warmup_dir, "cpu")
    rates = [c["mean_learning_rate"] for c in manifest["checkpoints"]]
    assert len(rates) == 2 and rates[0] > rates[1] > 0  # linear decay: the first epoch weighs more
    assert store.read_json(warmup_dir / "manifest.json") == json.loads(json.dumps(manifest))
    assert not list(tmp_path.glob(".warmup.*"))  # the temporary directory was moved into place

    probe = sft_examples(tokenizer, conversations[32:36], 128)
    featurizer = GradientFeaturizer(AutoModelForCausalLM.from_pretrained(model_dir), warmup_dir)
    pool_features = featurizer.features(probe, optimizer_aware=True, batch=3)
    query_features = featurizer.features(probe, optimizer_aware=False)
    assert pool_features.shape == (4, 96)
    np.testing.assert_allclose(np.linalg.norm(pool_features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pool_features, _restated_features(model_dir, warmup_dir, probe, adam=True), atol=2e-5)
    np.testing.assert_allclose(query_features, _restated_features(model_dir, warmup_dir, probe, adam=False), atol=2e-5)
    assert np.abs(pool_features - query_features).max() > 0.05  # the Adam moments change the direction

    # same settings, same bytes: a second warm-up and a fresh featurizer reproduce both exactly
    again_dir = tmp_path / "again"
    warm_up(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, sft_examples(tokenizer, conversations[:32], 128),
            SETTINGS, again_dir, "cpu")
    for checkpoint in manifest["checkpoints"]:
        for name in ("lora.safetensors", "adam_moments.safetensors"):
            assert (again_dir / checkpoint["directory"] / name).read_bytes() == \
                (warmup_dir / checkpoint["directory"] / name).read_bytes()
    again = GradientFeaturizer(AutoModelForCausalLM.from_pretrained(model_dir), again_dir)
    assert again.features(probe, optimizer_aware=True, batch=3).tobytes() == pool_features.tobytes()


def _schedule_weights(settings: LessSettings, n_examples: int) -> np.ndarray:
    """matching.py's checkpoint weights, from the schedule itself: each epoch's mean learning rate
    under the warm-up's linear schedule (warm-up steps int(ratio x total), then linear decay to 0, as
    transformers' get_linear_schedule_with_warmup), rescaled to sum 1."""
    per_epoch = -(-n_examples // settings.batch_size)
    total = per_epoch * settings.epochs
    warmup = int(settings.warmup_ratio * total)
    rate = [settings.learning_rate * (step / max(1, warmup) if step < warmup
                                      else (total - step) / max(1, total - warmup)) for step in range(total)]
    means = np.array([np.mean(rate[e * per_epoch:(e + 1) * per_epoch]) for e in range(settings.epochs)])
    return means / means.sum()


def _restated_kernel(model_dir, warmup_dir, examples, adam: bool, weights: np.ndarray) -> np.ndarray:
    """collect_grad_reps.py and matching.py with no projection at all: per checkpoint the cosine of
    two examples' full LoRA gradients (Adam-preconditioned for the pool), weighted by `weights`."""
    kernel = 0.0
    for index, weight in enumerate(weights):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                               LoraConfig(r=4, lora_alpha=16, lora_dropout=0.1,
                                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                          task_type="CAUSAL_LM"))
        model.eval()
        saved = load_file(str(warmup_dir / f"checkpoint-{index + 1}" / "lora.safetensors"))
        moments = load_file(str(warmup_dir / f"checkpoint-{index + 1}" / "adam_moments.safetensors"))
        params = dict(model.named_parameters())
        names = sorted(n for n, p in params.items() if p.requires_grad)
        with torch.no_grad():
            for name in names:
                params[name].copy_(saved[name])
        rows = []
        for example in examples:
            loss = model(input_ids=torch.tensor([example["input_ids"]]), labels=torch.tensor([example["labels"]])).loss
            gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [params[n] for n in names])])
            if adam:
                m = 0.9 * torch.cat([moments[f"exp_avg::{n}"].reshape(-1) for n in names]) + 0.1 * gradient
                v = torch.cat([moments[f"exp_avg_sq::{n}"].reshape(-1) for n in names])
                v = 0.999 * v + 0.001 * gradient**2
                gradient = m / torch.sqrt(v + 1e-8)
            rows.append((gradient / gradient.norm()).detach().double().numpy())
        unit = np.stack(rows)
        kernel = kernel + weight * unit @ unit.T
    return kernel


def test_gradient_features_keep_the_unprojected_gradients_geometry_with_the_schedules_weights(world_lm, tmp_path):
    """Independent of the project's projector and of the weights its warm-up records: the weights
    the warm-up recorded are the learning-rate schedule's, restated from its settings; and the
    features' dot products are the restated cosines of the full, unprojected gradients under those
    weights, to within what a random projection to k dimensions keeps (about 1/sqrt(k) per cosine,
    0.022 at k = 2,048; measured here: at most 0.044 over the 36 pairs)."""
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"][:38]]
    settings = LessSettings(lora_rank=4, lora_alpha=16, epochs=2, learning_rate=2e-3, batch_size=8,
                            projection_dim=2048, max_length=128)
    warm_up(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer,
            sft_examples(tokenizer, conversations[:32], 128), settings, tmp_path / "warmup", "cpu")
    weights = _schedule_weights(settings, 32)
    np.testing.assert_allclose(checkpoint_weights(store.read_json(tmp_path / "warmup" / "manifest.json")), weights)
    probe = sft_examples(tokenizer, conversations[32:38], 128)
    featurizer = GradientFeaturizer(AutoModelForCausalLM.from_pretrained(model_dir), tmp_path / "warmup")
    for adam in (True, False):
        features = featurizer.features(probe, optimizer_aware=adam).astype(np.float64)
        restated = _restated_kernel(model_dir, tmp_path / "warmup", probe, adam, weights)
        assert np.abs(features @ features.T - restated).max() < 0.1
        assert np.abs(restated - np.eye(len(probe))).max() > 0.2  # the examples' gradients are not orthogonal


def test_an_example_with_no_answer_token_gets_a_zero_row(world_lm, tmp_path):
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"][:8]]
    warm_up(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, sft_examples(tokenizer, conversations, 128),
            LessSettings(lora_rank=2, lora_alpha=8, epochs=1, batch_size=8, projection_dim=16), tmp_path / "w", "cpu")
    cut = sft_examples(tokenizer, [[{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]],
                       max_length=16)
    features = GradientFeaturizer(AutoModelForCausalLM.from_pretrained(model_dir), tmp_path / "w").features(
        cut, optimizer_aware=True)
    assert features.shape == (1, 16) and not features.any()


def test_projection_blocks_are_the_same_cached_or_regenerated():
    vectors = torch.randn(3, 9000)
    cached = RademacherProjector(9000, 32, seed=5)
    regenerated = RademacherProjector(9000, 32, seed=5, cache_bytes=0)
    torch.testing.assert_close(cached.project(vectors), regenerated.project(vectors))
    torch.testing.assert_close(cached.project(vectors), vectors @ cached.matrix() / np.sqrt(32), rtol=1e-4, atol=1e-4)
    assert set(cached.matrix().unique().tolist()) == {-1.0, 1.0}
