"""Model passes against direct torch computations, and selection precision by hand."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from selection_assets.core import evaluate
from selection_assets.core.tokenize import encode_conversations


def _direct_answer_ce(model, tokenizer, messages) -> float:
    """Mean CE of the last answer's tokens, one example at a time, via the model's own loss."""
    enc = encode_conversations(tokenizer, [messages])[0]
    ids = torch.tensor([enc.input_ids])
    labels = torch.tensor([[t if (m and i >= enc.last_answer_start) else -100
                            for i, (t, m) in enumerate(zip(enc.input_ids, enc.answer_mask))]])
    with torch.no_grad():
        return float(model(input_ids=ids, labels=labels).loss)


def test_answer_losses_match_direct_computation(world_lm):
    tokenizer, model_dir, kept = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    conversations = [json.loads(m) for m in kept["messages"].iloc[:12]]
    got = evaluate.answer_losses(model, tokenizer, conversations, max_length=128, batch_tokens=300)
    for row, messages in enumerate(conversations):
        alone = [{"role": "assistant", "content": messages[-1]["content"]}]
        assert got["ce_answer"][row] == pytest.approx(_direct_answer_ce(model, tokenizer, messages), abs=1e-4)
        assert got["ce_answer_alone"][row] == pytest.approx(_direct_answer_ce(model, tokenizer, alone), abs=1e-4)
    # vocabulary logits a few answer tokens at a time give the same losses
    chunked = evaluate.answer_cross_entropy(model, tokenizer, conversations, max_length=128, batch_tokens=300,
                                            logit_rows=5)
    np.testing.assert_allclose(chunked, got["ce_answer"], rtol=1e-5)


def test_selection_precision_counts_clean_targeted_rows():
    selected = pd.DataFrame({"source": ["a", "a", "b", "c"], "clean": pd.array([True, False, True, True], "boolean")})
    assert evaluate.selection_precision(selected, ["a", "b"]) == pytest.approx(0.5)
    unlabelled = pd.DataFrame({"source": ["a"], "clean": pd.array([pd.NA], "boolean")})
    assert evaluate.selection_precision(unlabelled, ["a"]) is None


def test_exact_match_strips_whitespace_only():
    assert evaluate.exact_match([" 5 ", "Tenmar", "b"], ["5", "tenmar", "b"]) == pytest.approx(2 / 3)
    assert np.isnan(evaluate.exact_match([], []))


def test_reward_scores_are_the_first_logit_per_conversation(world_lm, tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer, _, kept = world_lm
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    conversations = [json.loads(m) for m in kept["messages"].iloc[:5]]
    batched = evaluate.reward_scores(model, tokenizer, conversations, max_length=64, batch_size=5)
    one_by_one = [evaluate.reward_scores(model, tokenizer, [c], max_length=64)[0] for c in conversations]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_selection_composition_counts_sources_noise_and_answer_variety():
    selected = pd.DataFrame({"source": ["a", "a", "a", "b", "c"],
                             "clean": pd.array([True, False, True, True, True], "boolean"),
                             "noise": [None, "wrong_answer", None, None, None]})
    composition = evaluate.selection_composition(selected, ["a", "b"], ["7", "7", "8", "x", "zzz"],
                                                 {"a": ["7 ", "9"], "b": ["y"]})
    assert composition["targeted"] == pytest.approx(0.8) and composition["clean"] == pytest.approx(0.8)
    assert composition["source_a"] == pytest.approx(0.6) and composition["noise_wrong_answer"] == pytest.approx(0.2)
    assert composition["distinct_answers"] == 3  # 7, 8 and x; c is not targeted
    # source a: answers 7, 7, 8 -> H = 0.918 bits; source b: one answer -> 0 bits
    expected = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3)) / 2
    assert composition["answer_entropy_bits"] == pytest.approx(expected)
    # targeted answers 7, 7, 8 (a) and x (b): the two 7s are answers of a's dev queries
    assert composition["dev_answer_share"] == pytest.approx(2 / 4)
