"""Source-balanced random baseline: round-robin over `source`, each source in seeded shuffle order.

Sources take turns in name order; a source that runs out drops out, so its share of the budget
spreads over the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from selection_assets.core.methods import MethodSpec, Provenance, ScoringInputs, Shortlist, selection_frame
from selection_assets.core.methods import random as plain_random



def score(inputs: ScoringInputs) -> pd.DataFrame:
    """The same seeded shuffle key as the unbalanced baseline."""
    return plain_random.score(inputs)


SHORTLIST = Shortlist(per_source=True)  # turns across sources, each in shuffle order


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Round-robin over sources (sorted by name) in shuffle order, first `budget` picks."""
    frame = scores.reset_index(drop=True)
    order = np.argsort(-frame["score"].to_numpy(), kind="stable")
    by_rank = frame.iloc[order]
    turn_in_source = by_rank.groupby("source", sort=True).cumcount().to_numpy()
    source_code = pd.Categorical(by_rank["source"]).codes
    picks = np.lexsort((source_code, turn_in_source))[:budget]
    return selection_frame(frame, order[picks])


SPECS = (  # the methods this module serves, in report order (registry() collects them)
    MethodSpec(name="random_balanced", reference="baseline",
               summary="round-robin over sources in shuffle order", seeded=True),
)

PROVENANCE = {  # per method: the public code followed, known departures, selection cost (docs/methods.md)
    "random_balanced": Provenance(
        code="-",
        departures="-",
        cost="0"),
}
