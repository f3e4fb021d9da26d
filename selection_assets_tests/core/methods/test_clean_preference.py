"""On the world, methods that should prefer clean data rank clean examples above noisy ones on
average (the direction only, not a tuned margin)."""

import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoModelForCausalLM

from selection_assets.core import evaluate, tokenize
from selection_assets.core.methods import ScoringInputs, perplexity, token_length


@pytest.fixture(scope="module")
def world_inputs(world_lm):
    tokenizer, model_dir, kept = world_lm
    conversations = [json.loads(m) for m in kept["messages"]]
    total, answer = tokenize.token_counts(tokenize.encode_conversations(tokenizer, conversations, 128))
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    losses = evaluate.answer_losses(model, tokenizer, conversations, max_length=128)
    pool = pd.DataFrame({"example_id": kept["id"], "source": kept["source"], "total_tokens": total,
                         "answer_tokens": answer})
    return ScoringInputs(pool=pool, answer_losses=losses), kept["clean"].astype(bool).to_numpy()


def _mean_rank(scores: pd.DataFrame, mask: np.ndarray) -> float:
    return float(scores["score"].rank(pct=True).to_numpy()[mask].mean())


@pytest.mark.parametrize("method, params", [(perplexity, {"variant": "bottom"}),
                                            (token_length, {"count": "response"})])
def test_clean_examples_rank_higher(world_inputs, method, params):
    inputs, clean = world_inputs
    scores = method.score(inputs, **params)
    assert _mean_rank(scores, clean) > _mean_rank(scores, ~clean)
