"""Fine-tuned checkpoint assets, one per method (a factory), partitioned pool_size x budget:
supervised fine-tuning of the base LM on the selected subset, loss on assistant tokens only."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import GPU_OP_TAGS, GPU_POOL, GPU_TAGS, base_model_path, grid_keys, load_tokenizer, source_version
from selection_assets.core import cost, store, train
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import MethodSpec, registry
from selection_assets.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource


def _build_one(grid: Grid, spec: MethodSpec):
    @asset(name=f"finetuned_{spec.name}", group_name="training", partitions_def=grid.grid_def,
           deps=[f"selection_{spec.name}", "base_model"], pool=GPU_POOL, tags=GPU_TAGS, op_tags=GPU_OP_TAGS,
           kinds={"pytorch", "huggingface"}, code_version=source_version(train),
           description=f"The base model fine-tuned on the {spec.name} selection (save_pretrained).")
    def finetuned_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                        compute: ComputeResource, training: TrainResource) -> MaterializeResult:
        from transformers import AutoModelForCausalLM

        layout = storage.layout()
        pool_size, budget = grid_keys(context)
        selected = pd.read_parquet(layout.selection(spec.name, pool_size, budget))
        conversations = pool_io.records_for(layout, grid.rings_of(pool_size), selected["example_id"].tolist())
        tokenizer = load_tokenizer(layout)
        settings = training.settings(data.max_length)
        examples = train.sft_examples(tokenizer, conversations, data.max_length)
        model = AutoModelForCausalLM.from_pretrained(base_model_path(layout))
        out = layout.checkpoint(spec.name, pool_size, budget)
        stats = train.train_causal_lm(model, tokenizer, examples, settings, out, compute.resolved_device())
        parameters = store.read_json(layout.base_model_ref)["parameters"]
        stats["training_flops"] = cost.training_flops(parameters, stats["tokens"] / max(settings.epochs, 1e-9) / len(examples),
                                                      len(examples), settings.epochs)
        store.write_json(stats, out / "train_stats.json")
        return MaterializeResult(metadata={**stats, "device": compute.resolved_device(),
                                           "path": MetadataValue.path(str(out))})

    return finetuned_asset


def build(grid: Grid) -> list:
    return [_build_one(grid, spec) for spec in registry().values()]
