"""DiverseEvol k-center (Wu et al. 2023), the iterative k-center of Xia et al. 2024
(SFT-DataSelection-at-scale diverse/train.py and diverse/evol_schedules/kcenter_sampling.py;
OFA-Sys/DiverseEvol evol_schedules/kcenter_sampling.py).

For a budget k: start from a seeded random 10% of k; then in each of 3 rounds, fine-tune a fresh
copy of the base model on the examples chosen so far, embed the whole pool with it (mean of the
last hidden states), and add the examples farthest from the chosen ones, greedily one at a time
(each addition becomes a centre), until the round's 30% of k is added (Xia's configs: 1,000 random
then 3 rounds of 3,000 for 10,000).

Departures, named: within a round the additions are DiverseEvol's greedy k-center (Xia's
kcenter_sampling.py takes the round's n farthest points at once, without updating distances);
each round fine-tunes from the base model, as DiverseEvol does (Xia's train.py keeps training the
round-0 model); embeddings are mean-pooled over real tokens and L2-normalised (neither reference
normalises); the fine-tuning recipe is the project's (TrainResource), not 3 epochs at 7e-6.

The choice for one budget is no prefix of another's, so one order column per budget is stored
(`score_budget_<k>`): the initial random draw first, then each round's additions in order.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from selection_assets.core.cost import Pass
from selection_assets.core.methods import MethodSpec, Need, Provenance, ScoringInputs, Shortlist, top_k
from selection_assets.core.methods.diversity import farthest_additions, per_budget_frame

INITIAL_SHARE = 0.1
ROUNDS = 3


def round_sizes(budget: int) -> list[int]:
    """The random initial draw, then each round's additions (together exactly `budget`)."""
    initial = max(1, round(INITIAL_SHARE * budget))
    rest = budget - initial
    return [initial] + [rest // ROUNDS + (1 if r < rest % ROUNDS else 0) for r in range(ROUNDS)]


def round_passes(parameters: int, tokens_per_example: float, pool_size: int, budgets, epochs: float) -> list[Pass]:
    """The model passes of DiverseEvol's choice for every one of `budgets`: each round fine-tunes
    on the choice so far (`epochs` over it) and embeds the pool."""
    passes = []
    for budget in budgets:
        sizes = round_sizes(budget)
        for round_index in range(1, len(sizes)):
            passes.append(Pass(parameters, tokens_per_example, sum(sizes[:round_index]) * epochs, factor=6.0))
            passes.append(Pass(parameters, tokens_per_example, pool_size))
    return passes


def diverse_evol_order(n_pool: int, budget: int, seed: int,
                       train_and_embed: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The examples DiverseEvol chooses for `budget`, in the order they were chosen.
    `train_and_embed(rows)` fine-tunes a fresh base model on pool rows `rows` and returns the
    embedding of every pool example under it."""
    sizes = round_sizes(min(budget, n_pool))
    chosen = [int(i) for i in np.random.default_rng(seed).permutation(n_pool)[: sizes[0]]]
    for count in sizes[1:]:
        if count:
            chosen += farthest_additions(train_and_embed(np.asarray(chosen, dtype=np.int64)), chosen, count)
    return np.asarray(chosen, dtype=np.int64)


def score(inputs: ScoringInputs) -> pd.DataFrame:
    """One DiverseEvol order per budget of the pool, as score columns."""
    if inputs.train_and_embed is None:
        raise ValueError("DiverseEvol needs to fine-tune and embed (ScoringInputs.train_and_embed)")
    n = len(inputs.pool)
    return per_budget_frame(inputs, lambda budget: diverse_evol_order(n, budget, inputs.seed, inputs.train_and_embed))


SHORTLIST = Shortlist()  # top-k of its per-budget order


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The budget's DiverseEvol choice, in the order it was made."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="kcenter_diverseevol", needs=frozenset({Need.FINETUNE_ROUNDS}),
               reference="Wu et al. 2023 (DiverseEvol), as Xia et al. 2024 run it", 
               per_budget=True, summary="iterative k-center: 10% random, then 3 rounds of fine-tuning on the "
               "choice so far, re-embedding the pool and adding the farthest examples"),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "kcenter_diverseevol": Provenance(
        code="OFA-Sys/DiverseEvol: train.py, evol_schedules/kcenter_sampling.py; "
             "xiatingyu/SFT-DataSelection-at-scale: diverse/train.py (1,000 random, then 3 rounds of 3,000)",
        departures="greedy additions within a round (Xia's code takes a round's n farthest at once); every round "
                   "fine-tunes from the base model (Xia's keeps training one); mean pooling over real tokens, "
                   "L2-normalised; the project's fine-tuning recipe",
        cost="per budget, 3 rounds of 6 N_p L x_r epochs + 2 N_p L y"),
}
