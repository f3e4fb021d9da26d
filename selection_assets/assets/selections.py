"""Each method's selection asset (`<method>/selection`, part of its slice), partitioned pool_size x
budget: the chosen example ids in selection order, one selection per replicate seed (`seed`
column; a method that does not depend on the seed repeats its one choice), with checks that every
replicate's size equals the budget and no id repeats within a replicate."""

import pandas as pd
import pyarrow.parquet as pq
from dagster import (AssetCheckResult, AssetCheckSpec, AssetExecutionContext, Failure, MaterializeResult, MetadataValue,
                     asset)

from selection_assets.assets.data_versions import content_version
from selection_assets.orchestration.labels import (CONTENT_VERSIONED_TAGS, SCORES, SELECTION, grid_cell, method_key,
                                            method_tags)
from selection_assets.core import shortlist, store
from selection_assets.core.methods import MethodSpec
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import StorageResource, TrainResource


def build_selection(grid: Grid, spec: MethodSpec):
    """`spec`'s selection asset, per (pool size, budget) cell."""
    name = method_key(spec.name, SELECTION)
    checks = [AssetCheckSpec("size_equals_budget", asset=name, description="Exactly `budget` examples.", blocking=True),
              AssetCheckSpec("no_duplicate_ids", asset=name, description="No example is selected twice.",
                             blocking=True)]

    @asset(key=name, group_name="selections", partitions_def=grid.grid_def, deps=[method_key(spec.name, SCORES)],
           tags={**method_tags(spec.name), **CONTENT_VERSIONED_TAGS},
           check_specs=checks, kinds={"parquet"},
           description=f"{spec.name}: the selected example ids for a pool size and budget.")
    def selection_asset(context: AssetExecutionContext, storage: StorageResource, training: TrainResource):
        layout = storage.layout()
        cell = grid_cell(context)
        scores_path = layout.scores(spec.name, cell.pool_size)
        valid = pq.read_metadata(scores_path).num_rows
        if cell.budget > valid:
            raise Failure(f"budget {cell.budget} exceeds the {valid} valid examples of pool {cell.pool_size} "
                          "(the rest were quarantined)")
        # only the rows the method can choose at this budget: memory follows the budget, not the pool
        scores = shortlist.read_shortlist(spec, scores_path, cell.budget, tuple(training.seeds))
        replicates = []
        for seed in training.seeds:
            try:
                chosen = spec.select(scores, cell.budget, seed)
            except ValueError as err:
                raise Failure(f"{spec.name} cannot fill {cell}: {err}") from err
            replicates.append(chosen.assign(seed=seed))
        chosen = pd.concat(replicates, ignore_index=True)[["seed", "rank", "example_id", "source"]]
        path = store.write_parquet(chosen, layout.selection(spec.name, cell))
        first = chosen[chosen["seed"] == training.seeds[0]]
        per_source = first["source"].value_counts().sort_index()
        sizes = chosen.groupby("seed").size()
        duplicates = int(chosen.duplicated(["seed", "example_id"]).sum())
        return MaterializeResult(
            metadata={"selected": len(first), "seeds": MetadataValue.json(list(training.seeds)),
                      "per_source": MetadataValue.json(per_source.to_dict()),
                      "path": MetadataValue.path(str(path))},
            data_version=content_version(path),
            check_results=[
                AssetCheckResult(check_name="size_equals_budget", passed=bool((sizes == cell.budget).all()),
                                 metadata={"smallest": int(sizes.min()), "largest": int(sizes.max()),
                                           "budget": cell.budget}),
                AssetCheckResult(check_name="no_duplicate_ids", passed=duplicates == 0,
                                 metadata={"duplicates": duplicates}),
            ])

    return selection_asset

