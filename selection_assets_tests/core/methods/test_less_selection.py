"""LESS selection against a plain restatement of princeton-nlp/LESS's matching.py and
write_selected_data.py on random features, ties included."""

import numpy as np
import pandas as pd

from selection_assets.core.methods import ScoringInputs, less


def _reference_less(pool_parts, query_parts, weights, tasks, budget, aggregate):
    """matching.py: score = sum_i w_i normalize(pool_i) @ normalize(query_i).T; a task's score is the
    mean (or, as the RDS+ paper uses LESS, the max) over its queries; one task: the top-k
    (lower row first on ties); several: RDS+'s round-robin (in round r each task offers its r-th
    best example; one already taken adds nothing)."""
    score = sum(w * p @ q.T for w, p, q in zip(weights, pool_parts, query_parts))
    names = list(dict.fromkeys(tasks))
    per_task = {t: (score[:, [i for i, u in enumerate(tasks) if u == t]].mean(axis=1) if aggregate == "mean"
                    else score[:, [i for i, u in enumerate(tasks) if u == t]].max(axis=1)) for t in names}
    rankings = [sorted(range(len(score)), key=lambda row: (-per_task[t][row], row)) for t in names]
    taken: list[int] = []
    for round_index in range(len(score)):
        for ranking in rankings:
            if ranking[round_index] not in taken and len(taken) < budget:
                taken.append(ranking[round_index])
    return taken


def _signed_one_hot(rng, rows: int, dim: int) -> np.ndarray:
    """Unit rows with one +-1 entry: every cosine is -1, 0 or 1, exact in float32, so ties are exact."""
    x = np.zeros((rows, dim))
    x[np.arange(rows), rng.integers(0, dim, rows)] = rng.choice([-1.0, 1.0], rows)
    return x


def test_less_matches_a_restatement_of_matching_on_random_features():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n, dim, checkpoints = 30, 3, 4
        task_names = ["gsm", "qa", "code"][: 1 + seed % 3]
        tasks = [t for t in task_names for _ in range(int(rng.choice([1, 2, 4])))]  # exact means
        pool_parts = [_signed_one_hot(rng, n, dim) for _ in range(checkpoints)]
        query_parts = [_signed_one_hot(rng, len(tasks), dim) for _ in range(checkpoints)]
        weights = np.full(checkpoints, 1 / checkpoints)  # sqrt(1/4) is exact too
        stored_pool = np.concatenate([np.sqrt(w) * p for w, p in zip(weights, pool_parts)], axis=1).astype(np.float32)
        stored_queries = np.concatenate([np.sqrt(w) * q for w, q in zip(weights, query_parts)], axis=1).astype(np.float32)
        inputs = ScoringInputs(pool=pd.DataFrame({"example_id": [f"e{i}" for i in range(n)], "source": "s"}),
                               pool_embedding_blocks=lambda stored_pool=stored_pool: [stored_pool],
                               query_embeddings=stored_queries, query_tasks=np.array(tasks),
                               query_ids=np.array([f"q/{i}" for i in range(len(tasks))]))
        for aggregate in less.AGGREGATES:
            scores = less.score(inputs, aggregate)
            for budget in (1, int(rng.integers(2, n)), n):
                chosen = [int(e[1:]) for e in less.select(scores, budget, aggregate)["example_id"]]
                assert chosen == _reference_less(pool_parts, query_parts, weights, tasks, budget, aggregate)
