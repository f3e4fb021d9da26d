"""The world demo's verdicts in other worlds: the same settings with another data seed, which draws
another pool, other eval items and another pre-trained base model (a demo's replicate seeds vary
only the fine-tuning). Reads each demo's comparison and reports every method against random per
world, beside its base model's scores.

    SELECTION_ASSETS_DATA='{"seed": 1}' DAGSTER_HOME=world1 selection-assets demo --seeds 3   # ~11 min each
    python -m benchmarks.world_seeds --world 0 WORLD0_HOME --world 1 WORLD1_HOME --world 2 WORLD2_HOME

Writes results/world_seeds.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks._common import save
from selection_assets.core.report import BASELINE


def world_summary(seed: int, home: Path) -> dict:
    """One world's demo: its run, its base model's scores, and each method against random over all cells."""
    comparison = json.loads((home / "storage/reports/comparison/comparison.json").read_text())
    methods = []
    for method in comparison["methods"]:
        if method["method"] == BASELINE:
            continue
        own = [cell for cell in comparison["cells"] if cell["method"] == method["method"]]
        methods.append({**{key: method[key] for key in ("method", "em_vs_random", "em_vs_random_ci", "em_p_holm",
                                                        "verdict")},
                        "cells_better": int(method["cells_better"]), "cells_worse": int(method["cells_worse"]),
                        "cells": len(own),
                        "loss_cells_better": sum(cell["loss_verdict"] == "better" for cell in own),
                        "loss_cells_worse": sum(cell["loss_verdict"] == "worse" for cell in own)})
    return {"data_seed": seed, "run": json.loads((home / "demo_run.json").read_text()),
            "base_model": {key: comparison["base"][key] for key in ("exact_match", "answer_loss")},
            "methods": methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", nargs=2, action="append", required=True, metavar=("DATA_SEED", "HOME"),
                        help="a demo's data seed and its DAGSTER_HOME (repeatable)")
    args = parser.parse_args()
    worlds = [world_summary(int(seed), Path(home)) for seed, home in args.world]
    settings = {json.dumps({key: world["run"][key] for key in ("methods", "pool_sizes", "budgets", "seeds")})
                for world in worlds}
    if len(settings) != 1:
        raise ValueError("the demos differ in more than their data seed: " + " / ".join(sorted(settings)))
    print(f"wrote {save('world_seeds', {'worlds': worlds})}")


if __name__ == "__main__":
    main()
