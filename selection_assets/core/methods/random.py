"""Random baseline (unbalanced): a seeded shuffle of the pool, first k.

The shuffle key of an example is a hash of (seed, example id), so it does not depend on which pool
the example sits in: nested pools share their orderings.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from selection_assets.core.methods import (MethodSpec, Provenance, ScoringInputs, Shortlist, base_frame, seed_column,
                                           top_k)


def shuffle_keys(example_ids, seed: int) -> np.ndarray:
    """A uniform [0, 1) key per id, fixed by (seed, id)."""
    salt = str(seed).encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=salt).digest(), "big") / 2.0**64
         for i in example_ids), dtype=np.float64, count=len(example_ids))


def score(inputs: ScoringInputs) -> pd.DataFrame:
    """Random score: the seeded shuffle key (seed `inputs.seed`), and one shuffle key per replicate
    seed r (seed `inputs.seed + r`) in column `score_seed_<r>`; replicate 0 is `score`."""
    ids = inputs.pool["example_id"]  # iterated, not turned into one Python object per example at once
    frame = base_frame(inputs, shuffle_keys(ids, inputs.seed))
    for replicate in inputs.replicate_seeds:
        frame[seed_column(replicate)] = (frame["score"].to_numpy() if replicate == 0
                                         else shuffle_keys(ids, inputs.seed + replicate))
    return frame


SHORTLIST = Shortlist()  # top-k of the replicate's shuffle key


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """First `budget` examples of the seeded shuffle."""
    return top_k(scores, budget)


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="random", summary="seeded shuffle, first k", reference="baseline",
               seeded=True),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "random": Provenance(
        code="-",
        departures="-",
        cost="0"),
}
