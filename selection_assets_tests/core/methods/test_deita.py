"""DEITA against plain restatements of hkust-nlp/deita: the scorers' readout (scorer/base.py),
the evol score (filter/combined_filter.py) and the representation filter (filter/base.py)."""

import numpy as np
import pandas as pd
import pytest
import torch
from dagster import Failure
from transformers import AutoModelForCausalLM

from selection_assets.assets.score_inputs import deita_scorer_names
from selection_assets.core import evaluate
from selection_assets.core.methods import ScoringInputs, deita, registry
from selection_assets.resources import DataResource


def test_scorer_readout_matches_deitas_first_generated_token(world_lm):
    """infer_score: generate, take the first step's scores, softmax over the ids of "1".."6",
    expectation with weights 1..6."""
    tokenizer, model_dir, _ = world_lm
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [deita.COMPLEXITY_PROMPT.format(instruction="What is the capital of Kalovia?"),
               deita.QUALITY_PROMPT.format(instruction="Add 2 and 3.", output="5"),
               deita.COMPLEXITY_PROMPT.format(instruction="Hi")]
    got, tokens = evaluate.expected_digit_scores(model, tokenizer, prompts, batch_size=2)  # a padded batch
    assert tokens == sum(len(tokenizer(prompt)["input_ids"]) for prompt in prompts)
    digit_ids = tokenizer.convert_tokens_to_ids(list("123456"))
    for prompt, value in zip(prompts, got):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
        probabilities = torch.softmax(out.scores[0][0][digit_ids], dim=-1).numpy()
        assert value == pytest.approx(float(probabilities @ np.arange(1, 7)), abs=1e-4)
        assert 1.0 <= value <= 6.0


def _reference_deita(embeddings, complexity_per_turn, quality_per_turn, size, threshold=0.9):
    """combined_filter.py: evol = sum over turns of complexity x quality, sorted descending
    (earlier row first on ties); base.py: keep the first row, then a row unless its cosine to a
    kept row exceeds the threshold; stop at `size` kept."""
    evol = [float(np.sum(np.array(c) * np.array(q))) for c, q in zip(complexity_per_turn, quality_per_turn)]
    order = sorted(range(len(evol)), key=lambda row: -evol[row])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    kept = [order[0]]
    for row in order[1:]:
        if len(kept) >= size:
            break
        if not any(unit[row] @ unit[other] > threshold for other in kept):
            kept.append(row)
    return kept


def test_deita_matches_a_restatement_of_its_filter_on_random_scores_with_ties():
    spec = registry()["deita"]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = 40
        x = rng.normal(size=(n, 3)).astype(np.float32)
        x[rng.integers(0, n, 10)] = x[0]  # exact duplicates: the filter must drop them
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        n_turns = rng.integers(1, 4, n)
        complexity = [np.round(rng.uniform(1, 6, t)) for t in n_turns]  # rounded: ties in the evol score
        quality = [np.round(rng.uniform(1, 6, t)) for t in n_turns]
        owner = np.repeat(np.arange(n), n_turns)
        evol = deita.evol_scores(np.concatenate(complexity), np.concatenate(quality), owner, n)
        budget = int(rng.integers(1, 15))
        inputs = ScoringInputs(pool=pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "source": "s"}),
                               pool_embedding_blocks=lambda x=x: [x], deita_scores=evol, max_budget=budget)
        scores = spec.score(inputs)
        accepted = [int(e[1:]) for e in spec.select(scores, budget)["example_id"]]
        expected = _reference_deita(x, complexity, quality, budget)
        assert accepted[: len(expected)] == expected
        assert scores["redundant"].sum() == budget - len(expected)  # any shortfall is filled and flagged


def test_turns_pair_each_instruction_with_its_response():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert deita.turns(messages) == [("a", "b"), ("c", "")]
    complexity, quality, owner = deita.scorer_prompts([messages, [{"role": "user", "content": "d"}]])
    assert len(complexity) == len(quality) == 3 and owner.tolist() == [0, 0, 1]
    assert "##Query: a  \n" in complexity[0] and "#Response#:\nb \n##Quality: " in quality[0]


def test_deita_names_the_setting_it_needs():
    with pytest.raises(Failure, match="SELECTION_ASSETS_DEITA_SCORERS"):
        deita_scorer_names(DataResource())
    assert deita_scorer_names(DataResource(deita_scorers="a/complexity, b/quality")) == ("a/complexity", "b/quality")
