"""Random baselines: seeded, nested-pool-consistent, and source-balanced round-robin."""

import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs
from selection_assets.core.methods import random as plain_random
from selection_assets.core.methods import random_balanced


def _pool(n: int, sources) -> pd.DataFrame:
    return pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "source": list(sources)})


def test_shuffle_key_depends_on_seed_and_id_not_on_pool():
    small = plain_random.score(ScoringInputs(pool=_pool(10, "a" * 10), seed=3))
    large = plain_random.score(ScoringInputs(pool=_pool(20, "a" * 20), seed=3))
    other = plain_random.score(ScoringInputs(pool=_pool(10, "a" * 10), seed=4))
    np.testing.assert_array_equal(small["score"], large["score"][:10])
    assert not np.array_equal(small["score"], other["score"])


def test_unbalanced_takes_the_highest_keys():
    scores = pd.DataFrame({"example_id": ["a", "b", "c", "d"], "source": "s", "score": [0.2, 0.9, 0.5, 0.9]})
    assert plain_random.select(scores, 3)["example_id"].tolist() == ["b", "d", "c"]


def test_balanced_round_robins_sources_and_spreads_exhausted_budget():
    scores = pd.DataFrame({
        "example_id": ["x1", "x2", "y1", "y2", "y3", "z1", "z2", "z3", "z4"],
        "source": ["x", "x", "y", "y", "y", "z", "z", "z", "z"],
        "score": [0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]})
    chosen = random_balanced.select(scores, 8)
    # rounds: x1 y1 z1 | x2 y2 z2 | (x exhausted) y3 z3
    assert chosen["example_id"].tolist() == ["x1", "y1", "z1", "x2", "y2", "z2", "y3", "z3"]
    assert chosen["rank"].tolist() == list(range(8))


def _reference_balanced(keys, sources, budget):
    """Source-balanced random, restated: each source's examples in descending key order (earlier
    row on ties); sources take turns in name order, an exhausted one drops out."""
    queues = {s: sorted([i for i, t in enumerate(sources) if t == s], key=lambda i: (-keys[i], i))
              for s in sorted(set(sources))}
    taken = []
    while len(taken) < budget:
        for queue in queues.values():
            if queue and len(taken) < budget:
                taken.append(queue.pop(0))
    return taken


def test_balanced_matches_a_restatement_on_random_keys_with_ties():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 40))
        sources = list(rng.choice(["a", "b", "c"], n))
        keys = np.round(rng.random(n), 1)  # ties
        scores = pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "source": sources, "score": keys})
        budget = int(rng.integers(1, n + 1))
        chosen = [int(e[1:]) for e in random_balanced.select(scores, budget)["example_id"]]
        assert chosen == _reference_balanced(keys, sources, budget)
