"""RDS+ on the world: targeting one skill pulls that skill in far above its random share."""

import json

import numpy as np
import pandas as pd
from transformers import AutoModel

from selection_assets.core import embed, tokenize
from selection_assets.core.methods import ScoringInputs, rds
from selection_assets.core.methods import random as plain_random
from selection_assets.world import generate


def _embed(tokenizer, model, conversations):
    encoded = tokenize.encode_conversations(tokenizer, conversations, 128)
    return embed.embed_token_ids(model, [e.input_ids for e in encoded], pad_id=tokenizer.pad_token_id)


def test_single_skill_targeting_beats_random_share_twice(world_lm):
    tokenizer, model_dir, kept = world_lm
    model = AutoModel.from_pretrained(model_dir).eval()
    pool = pd.DataFrame({"example_id": kept["id"], "source": kept["source"]})
    vectors = _embed(tokenizer, model, [json.loads(m) for m in kept["messages"]])
    task = generate.generate_eval_tasks(seed=99, n_dev=5, n_test=1, skills=("fact_lookup",))["tasks"][0]
    queries = [ex["messages"] + [{"role": "assistant", "content": ex["answer"]}] for ex in task["dev"]]
    inputs = ScoringInputs(pool=pool, seed=0, pool_embedding_blocks=lambda: [vectors[:500], vectors[500:]],
                           query_embeddings=_embed(tokenizer, model, queries),
                           query_tasks=np.array(["fact_lookup"] * 5), query_ids=np.array([f"q{i}" for i in range(5)]))
    scores = rds.score(inputs)
    assert [c for c in scores.columns if c.startswith(rds.GROUP_PREFIX)] == [f"group__q{i}" for i in range(5)]
    budget = 100
    targeted = (rds.select(scores, budget)["source"] == "fact_lookup").mean()
    random_share = (plain_random.select(plain_random.score(inputs), budget)["source"] == "fact_lookup").mean()
    assert targeted >= 2 * max(random_share, 1 / 6), (targeted, random_share)
