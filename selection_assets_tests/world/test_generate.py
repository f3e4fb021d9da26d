"""The world is deterministic, mixes enough skills and realistic noise, and keeps eval held out."""

import json
from collections import Counter

from selection_assets.world import generate


def test_same_seed_same_world_other_seed_other_world():
    assert generate.generate_pool(300, seed=5) == generate.generate_pool(300, seed=5)
    assert generate.generate_pool(300, seed=5) != generate.generate_pool(300, seed=6)
    assert generate.generate_eval_tasks(5) == generate.generate_eval_tasks(5)


def test_pool_mixes_skills_with_a_quarter_noise_and_some_malformed_records():
    lines = generate.generate_pool(4000, seed=0)
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    labelled = [r for r in parsed if "clean" in r]
    assert len(Counter(r["source"] for r in labelled)) >= 5
    noisy_share = sum(not r["clean"] for r in labelled) / len(labelled)
    assert 0.2 <= noisy_share <= 0.3
    assert {r["noise"] for r in labelled} >= {"wrong_answer", "truncated", "empty", "junk", "near_duplicate"}
    assert 0 < len(lines) - len(labelled) < 0.05 * len(lines)


def test_eval_tasks_target_skills_with_disjoint_dev_and_test():
    tasks = generate.generate_eval_tasks(0, n_dev=5, n_test=20)["tasks"]
    assert [t["skill"] for t in tasks] == list(generate.TARGETED_SKILLS)
    for task in tasks:
        dev = {ex["messages"][0]["content"] for ex in task["dev"]}
        test = {ex["messages"][0]["content"] for ex in task["test"]}
        assert len(dev) == 5 and len(test) == 20 and not dev & test


def test_corpus_is_plain_prose_that_states_every_capital():
    corpus = generate.generate_corpus(4000, seed=0)
    assert corpus == generate.generate_corpus(4000, seed=0)
    text = "\n".join(corpus)
    assert "<|user|>" not in text and "<|assistant|>" not in text  # the base model never sees a chat turn
    for country, capital in generate.fact_table().items():
        assert f"capital of {country} is {capital}" in text or f"{capital} is the capital city of {country}" in text


def test_default_eval_split_sizes_fit_every_task_without_repeats():
    tasks = generate.generate_eval_tasks(0, n_dev=30, n_test=250)["tasks"]
    for task in tasks:
        prompts = [ex["messages"][0]["content"] for ex in task["dev"] + task["test"]]
        assert len(prompts) == len(set(prompts)) == 280
