"""Model passes against direct torch computations, and selection precision by hand."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from selection_assets.core import evaluate, harness
from selection_assets.core.tokenize import encode_conversations, generation_prompt_text
from selection_assets.world import generate


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
        # Ivison et al.'s perplexity: the model's own loss with labels = input_ids
        ids = torch.tensor([encode_conversations(tokenizer, [messages])[0].input_ids])
        with torch.no_grad():
            assert got["ce_sequence"][row] == pytest.approx(float(model(input_ids=ids, labels=ids).loss), abs=1e-4)
    lengths = [len(e.input_ids) for e in encode_conversations(tokenizer, conversations)]
    short = evaluate.answer_losses(model, tokenizer, conversations, max_length=24, batch_tokens=300)
    assert short["truncated"].tolist() == [n > 24 for n in lengths] and not got["truncated"].any()
    assert 0 < short["truncated"].sum() < len(conversations)  # both kinds present
    # vocabulary logits a few answer tokens at a time give the same losses
    chunked = evaluate.answer_cross_entropy(model, tokenizer, conversations, max_length=128, batch_tokens=300,
                                            logit_rows=5)
    np.testing.assert_allclose(chunked, got["ce_answer"], rtol=1e-5)


def test_selection_precision_counts_clean_targeted_rows():
    selected = pd.DataFrame({"source": ["a", "a", "b", "c"], "clean": pd.array([True, False, True, True], "boolean")})
    assert evaluate.selection_precision(selected, ["a", "b"]) == pytest.approx(0.5)
    unlabelled = pd.DataFrame({"source": ["a"], "clean": pd.array([pd.NA], "boolean")})
    assert evaluate.selection_precision(unlabelled, ["a"]) is None


def _plain_greedy_exact_match(model, tokenizer, task) -> list[float]:
    """Restated without the harness: each prompt rendered as fine-tuning renders it, decoded greedily
    one item at a time until EOS (24 tokens at most), right if equal to the gold after stripping."""
    scores = []
    for ex in task["test"]:
        ids = torch.tensor([tokenizer(generation_prompt_text(tokenizer, ex["messages"]),
                                      add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=24, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        scores.append(float(answer.strip() == ex["answer"].strip()))
    return scores


def test_harness_exact_match_equals_plain_greedy_decoding(world_lm):
    tokenizer, model_dir, _ = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tasks = generate.generate_eval_tasks(3, n_dev=2, n_test=6)["tasks"]
    # the model's own answers as the gold of half the items, so both outcomes are exercised
    for task in tasks:
        for ex in task["test"][::2]:
            ids = torch.tensor([tokenizer(generation_prompt_text(tokenizer, ex["messages"]),
                                          add_special_tokens=False)["input_ids"]])
            out = model.generate(input_ids=ids, max_new_tokens=24, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            ex["answer"] = " " + tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True) + " "
    items = evaluate.evaluate_items(model, tokenizer, tasks, max_length=128, batch_size=4)
    for task in tasks:
        got = items[items["task"] == task["name"]].sort_values("item")
        assert got["correct"].tolist() == _plain_greedy_exact_match(model, tokenizer, task)
        assert got["correct"].iloc[::2].all()
        assert np.isfinite(got["answer_loss"]).all() and (got["suite"] == "project").all()
    summary = evaluate.task_summary(items)
    assert summary["n_test"].tolist() == [6, 6, 6]


def test_gsm8k_scoring_extracts_numbers_as_the_harness_defines(world_lm):
    tokenizer, model_dir, _ = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    question = [{"role": "user", "content": "Janet has 3 eggs and buys 15 more. How many eggs?"}]
    task = {"name": "gsm8k", "scoring": "gsm8k", "max_new_tokens": 8,
            "dev": [{"messages": question, "answer": "3 + 15 = 18\n#### 18"}],
            "test": [{"messages": question, "answer": "3 + 15 = 18\n#### 18"}]}
    items = evaluate.evaluate_items(model, tokenizer, [task], max_length=128)
    assert {"exact_match,flexible-extract", "exact_match,strict-match"} <= set(items.columns)
    assert items["correct"].tolist() == items["exact_match,flexible-extract"].tolist()
    # the filters themselves, as the harness applies them to a worked answer
    frame = harness.sample_rows("t", [
        {"doc_id": 0, "target": "#### 18", "filter": "flexible-extract", "metrics": ["exact_match"],
         "filtered_resps": ["18"], "exact_match": 1.0},
        {"doc_id": 0, "target": "#### 18", "filter": "strict-match", "metrics": ["exact_match"],
         "filtered_resps": ["[invalid]"], "exact_match": 0.0}])
    assert frame.loc[0, "correct"] == 1.0 and frame.loc[0, "exact_match,strict-match"] == 0.0
    assert frame.loc[0, "prediction"] == "18"


def test_named_harness_task_scores_its_own_test_split_and_gives_dev_queries(world_lm, tmp_path):
    tokenizer, model_dir, _ = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = [{"q": f"Which is a fruit? {i}", "choices": ["mango", "drill"], "label": 0} for i in range(5)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "my_choice.yaml").write_text(
        "task: my_choice\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    train: {tmp_path / 'data.jsonl'}\n    test: {tmp_path / 'data.jsonl'}\n"
        "test_split: test\nfewshot_split: train\noutput_type: multiple_choice\n"
        "doc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\ndoc_to_target: '{{label}}'\n"
        "metric_list:\n  - metric: acc\n")
    entries = harness.named_task_entries(["my_choice"], str(tmp_path), n_dev=3)
    assert entries[0]["dev"][0] == {"messages": [{"role": "user", "content": "Which is a fruit? 0"}],
                                    "answer": "mango"}
    assert len(entries[0]["dev"]) == 3 and entries[0]["test"] == []
    items = evaluate.evaluate_items(model, tokenizer, entries, max_length=128, harness_include=str(tmp_path))
    assert len(items) == 5 and set(items["suite"]) == {"harness"} and items["answer_loss"].isna().all()
    assert set(items["correct"]) <= {0.0, 1.0} and "acc,none" in items
    with pytest.raises(ValueError, match="no_such_task: not a task"):
        harness.named_task_entries(["no_such_task"], str(tmp_path))


def test_reward_scores_are_the_first_logit_of_each_instruction_response_pair(world_lm, tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer, _, kept = world_lm
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    conversations = [json.loads(m) for m in kept["messages"].iloc[:5]]
    batched, tokens = evaluate.reward_scores(model, tokenizer, conversations, max_length=64, batch_size=5)
    alone = [evaluate.reward_scores(model, tokenizer, [c], max_length=64) for c in conversations]
    one_by_one = [scores[0] for scores, _ in alone]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)
    assert tokens == sum(count for _, count in alone)  # real tokens, padding not counted
    # what the model reads: the turns before the last answer, then the answer, as a pair
    last = conversations[-1]
    pair = tokenizer("\n".join(m["content"] for m in last[:-1]), last[-1]["content"], return_tensors="pt",
                     truncation=True, max_length=64)
    with torch.no_grad():
        assert model(**pair).logits[0, 0].item() == pytest.approx(one_by_one[-1], rel=1e-4, abs=1e-5)
    assert alone[-1][1] == pair["input_ids"].shape[1]


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


def test_wrapping_an_in_memory_model_logs_no_notice_about_it_once_the_definitions_load(world_lm, caplog):
    import selection_assets.definitions  # noqa: F401  (installs the log filters)
    from selection_assets.orchestration.log_filters import HARNESS_MODEL_LOGGER

    tokenizer, model_dir, _ = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with caplog.at_level("INFO"):
        harness._reporting_lm(model, tokenizer, batch_size=4, progress=None)
        logging.getLogger(HARNESS_MODEL_LOGGER).warning("an unrelated warning still shows")
    messages = [record.getMessage() for record in caplog.records]
    assert not any("`pretrained`" in message for message in messages), messages
    assert "an unrelated warning still shows" in messages
