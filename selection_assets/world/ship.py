"""Make the shipped default-world model (`world.models.SHIPPED`) from a finished demo: its pre-trained
base model, with the tokenizer digest and pre-training settings it was made with and the machine it
was made on. The base_model asset then starts from it on every machine whose tokenizer and settings
match, so the default world, and so the demo's numbers, no longer depend on the CPU that pre-trains.

    selection-assets demo                                    # pre-trains the world here
    python -m selection_assets.world.ship --home .dagster_home
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from selection_assets.core import store, train
from selection_assets.world import models as world_models


def ship(home: Path) -> Path:
    """Copy the demo at `home` (a DAGSTER_HOME whose storage holds a pre-trained default world) into
    the package's shipped model; the record written beside it."""
    from selection_assets.cli import machine_description
    from selection_assets.definitions import default_resources

    layout = store.Layout(home / "storage")
    reference = store.read_json(layout.base_model_ref)
    if "pretrain" not in reference or "shipped" in reference:
        raise ValueError(f"{home}: its base model was not pre-trained there (already shipped, or not the world's)")
    resources = default_resources()
    data, world = resources["data"], resources["world"]
    settings = train.TrainSettings(epochs=world.pretrain_epochs, learning_rate=world.pretrain_learning_rate,
                                   batch_size=world.pretrain_batch_size, max_length=data.max_length, seed=data.seed)
    identity = world_models.pretraining_identity(layout.tokenizer_dir, world.shape(data.max_length), settings,
                                                 world.corpus_documents)
    target = world_models.SHIPPED
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(layout.base_model_dir, target / "model")
    record = {"identity": identity, "pretrain": reference["pretrain"], "made_on": machine_description("cpu")}
    (target / world_models.SHIPPED_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="the DAGSTER_HOME of a finished default-world demo")
    print(f"shipped the default world's base model to {ship(Path(parser.parse_args().home))}")


if __name__ == "__main__":
    main()
