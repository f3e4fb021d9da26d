"""Each method's fine-tuned checkpoints (`<method>/finetuned`, part of its slice), partitioned pool_size x budget:
supervised fine-tuning of the base LM on the selected subset, loss on assistant tokens only, once
per replicate seed (each seed's own selection and training seed), all with the same recipe."""

import pandas as pd
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.base_model_io import load_base_model, load_tokenizer
from selection_assets.orchestration.labels import (FINETUNED, GPU_OP_TAGS, GPU_POOL, SELECTION, grid_cell, method_key,
                                            method_tags)
from selection_assets.core import store, train
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import MethodSpec
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource


def build_finetuned(grid: Grid, spec: MethodSpec):
    """`spec`'s fine-tuned checkpoints (one per replicate seed), per (pool size, budget) cell."""

    @asset(key=method_key(spec.name, FINETUNED), group_name="training", partitions_def=grid.grid_def,
           deps=[method_key(spec.name, SELECTION), "base_model", "tokenizer", "pool_manifest"],
           pool=GPU_POOL, tags=method_tags(spec.name, gpu=True),
           op_tags=GPU_OP_TAGS,
           kinds={"pytorch", "huggingface"},
           description=f"The base model fine-tuned on the {spec.name} selection (save_pretrained).")
    def finetuned_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                        compute: ComputeResource, training: TrainResource) -> MaterializeResult:

        layout = storage.layout()
        cell = grid_cell(context)
        selected = pd.read_parquet(layout.selection(spec.name, cell))
        rings = pool_io.pool_rings(layout, cell.pool_size)
        tokenizer = load_tokenizer(layout)
        per_seed = {}
        for seed in training.seeds:
            ids = selected.loc[selected["seed"] == seed, "example_id"].tolist()
            if not ids:
                raise Failure(f"{spec.name}/selection of {cell} has no subset for seed {seed}: "
                              "rematerialise it with the same training seeds")
            conversations = pool_io.records_for(layout, rings, ids)
            settings = training.settings(data.max_length, seed)
            examples = train.sft_examples(tokenizer, conversations, data.max_length)
            model = load_base_model(layout, data)
            out = layout.seed_checkpoint(spec.name, cell, seed)
            stats = train.train_causal_lm(model, tokenizer, examples, settings, out, compute.resolved_device(),
                                          log=context.log.info, label=f"fine-tuning seed {seed}")
            store.write_json(stats, out / "train_stats.json")
            per_seed[seed] = stats
            context.log.info(f"seed {seed}: {len(examples)} examples, {stats['steps']} steps, "
                             f"train loss {stats['train_loss']:.3f} in {stats['seconds']:.0f}s")
        first = per_seed[training.seeds[0]]
        return MaterializeResult(metadata={
            "seeds": MetadataValue.json(list(training.seeds)), "train_loss": first["train_loss"],
            "train_loss_by_seed": MetadataValue.json({str(k): v["train_loss"] for k, v in per_seed.items()}),
            "examples": first["examples"], "steps": first["steps"],
            "seconds": sum(v["seconds"] for v in per_seed.values()), "device": compute.resolved_device(),
            "epochs": training.epochs, "learning_rate": training.learning_rate,
            "path": MetadataValue.path(str(layout.checkpoint(spec.name, cell)))})

    return finetuned_asset

