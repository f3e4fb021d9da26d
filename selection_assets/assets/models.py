"""Model assets: the tokenizer and the base causal LM (the world's tiny LM pre-trained on its prose
corpus, or a named HF model)."""

import itertools
import json
from typing import Iterator

import torch
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from selection_assets.assets.base_model_io import base_model_path, load_tokenizer
from selection_assets.assets.data_versions import content_version
from selection_assets.orchestration.labels import CONTENT_VERSIONED_TAGS, GPU_OP_TAGS, GPU_POOL, GPU_TAGS
from selection_assets.core import real_material
from selection_assets.core import preflight, store, tokenize, train
from selection_assets.core.store import Layout
from selection_assets.core import pool as pool_io
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, WorldResource
from selection_assets.world import generate
from selection_assets.world import models as world_models


def _pool_texts(layout, eos_token: str) -> Iterator[str]:
    """Chat-formatted text of every valid source record, a chunk of the source at a time (malformed
    ones are skipped here; the ring_records asset quarantines and counts them)."""
    return (tokenize.format_conversation(json.loads(m), eos_token) for m in pool_io.iter_valid_source_messages(layout))


def world_pretraining(layout: Layout, data: DataResource, world: WorldResource) -> tuple[train.TrainSettings, dict]:
    """The world's pre-training settings, and the identity of the model they make from the tokenizer
    at `layout` (`world.models.pretraining_identity`: what the shipped model is matched on)."""
    settings = train.TrainSettings(epochs=world.pretrain_epochs, learning_rate=world.pretrain_learning_rate,
                                   batch_size=world.pretrain_batch_size, max_length=data.max_length, seed=data.seed)
    return settings, world_models.pretraining_identity(layout.tokenizer_dir, world.shape(data.max_length), settings,
                                                       world.corpus_documents)


def _corpus(data: DataResource, world: WorldResource, eos_token: str) -> list[str]:
    """The world's plain-prose pre-training corpus, one document per string, each ending in EOS."""
    return [document + eos_token for document in generate.generate_corpus(world.corpus_documents, data.seed)]


def _packaged_path(name: str):
    """The file behind a packaged base-model name; a Failure naming the install command if absent."""
    try:
        return real_material.PACKAGED_MODELS[name].path()
    except FileNotFoundError as error:
        raise Failure(f"DataResource.base_model={name!r} (SELECTION_ASSETS_BASE_MODEL): {error}") from None


def build(grid: Grid) -> list:
    @asset(group_name="models", deps=["source_pool"], kinds={"huggingface"}, tags=CONTENT_VERSIONED_TAGS,
           description="Tokenizer: byte-level BPE trained on the world's pre-training corpus and pool text, "
                       "or the named base model's own tokenizer, as it is (without a chat template, conversations "
                       "take Tulu's format, its role markers tokenised as text, as open-instruct does).")
    def tokenizer(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                  world: WorldResource) -> MaterializeResult:
        layout = storage.layout()
        tmp = store.temp_dir_beside(layout.tokenizer_dir)
        if data.base_model == "world":
            texts = itertools.chain(_corpus(data, world, world_models.EOS), _pool_texts(layout, world_models.EOS))
            tok = world_models.train_tokenizer(texts, world.vocab_size, tmp)
        elif data.base_model in real_material.PACKAGED_MODELS:
            tok = real_material.load_gguf_tokenizer(_packaged_path(data.base_model))
            tok.save_pretrained(tmp)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(data.base_model)
            tok.save_pretrained(tmp)
        store.replace_dir(tmp, layout.tokenizer_dir)
        return MaterializeResult(metadata={"vocab_size": len(tok), "eos_token": str(tok.eos_token),
                                           "path": MetadataValue.path(str(layout.tokenizer_dir))},
                                 data_version=content_version(layout.tokenizer_dir))

    @asset(group_name="models", deps=["tokenizer", "source_pool"], pool=GPU_POOL,
           tags={**GPU_TAGS, **CONTENT_VERSIONED_TAGS}, op_tags=GPU_OP_TAGS,
           kinds={"pytorch"},
           description="Base causal LM: the world's tiny Llama-style model pre-trained on the world's "
                       "plain-prose corpus (knowledge and worked procedures, no chat turns; the default world's "
                       "ships pre-trained, so it is the same model on every machine), or the named "
                       "Hugging Face model (a reference to it).")
    def base_model(context: AssetExecutionContext, storage: StorageResource, data: DataResource,
                   world: WorldResource, compute: ComputeResource) -> MaterializeResult:
        layout = storage.layout()
        # a model made here is recorded relative to the storage root, so a moved storage keeps its fingerprints
        in_storage = {"path": str(layout.base_model_dir.relative_to(layout.root)), "in_storage": True}
        if data.base_model == "world":
            tok = load_tokenizer(layout)
            settings, identity = world_pretraining(layout, data, world)
            shipped = world_models.shipped_model(identity)
            if shipped is not None:  # the default world: the same model on every machine
                world_models.copy_shipped_model(shipped[0], layout.base_model_dir)
                stats = shipped[1]["pretrain"]
                context.log.info(f"base model: the shipped pre-trained world model (made on {shipped[1]['made_on']})")
            else:
                stats = world_models.pretrain_tiny_llama(tok, _corpus(data, world, tok.eos_token),
                                                         world.shape(data.max_length), settings,
                                                         layout.base_model_dir, compute.resolved_device(),
                                                         log=context.log.info)
            reference = {**in_storage, "parameters": stats["parameters"], "pretrain": stats,
                         **({"shipped": shipped[1]["made_on"]} if shipped is not None else {})}
        elif data.base_model in real_material.PACKAGED_MODELS:
            converted = real_material.dequantise_gguf(_packaged_path(data.base_model), layout.base_model_dir)
            reference = {**in_storage, "parameters": converted["parameters"], "packaged": data.base_model}
        else:
            from transformers import AutoConfig, AutoModelForCausalLM

            problem = preflight.base_model_problem(data.base_model, data.allow_pickle_weights)
            if problem:
                raise Failure(f"DataResource.base_model={data.base_model!r} (SELECTION_ASSETS_BASE_MODEL) cannot be "
                              f"fine-tuned: {problem}")
            config = AutoConfig.from_pretrained(data.base_model)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
            reference = {"path": data.base_model, "parameters": sum(p.numel() for p in model.parameters())}
        store.write_json(reference, layout.base_model_ref)
        path = base_model_path(layout)
        context.log.info(f"base model: {path} ({reference['parameters']:,} parameters)")
        # its data version: the reference as written, but for measured seconds, and a model written here
        written = [layout.base_model_dir] if reference.get("in_storage") else []
        return MaterializeResult(metadata={"path": path, "parameters": reference["parameters"],
                                           **({"pretrain_loss": reference["pretrain"]["train_loss"],
                                               "pretrain_seconds": reference["pretrain"]["seconds"]}
                                              if "pretrain" in reference else {})},
                                 data_version=content_version(*written, record=reference))

    return [tokenizer, base_model]

