"""What each input a method declares (a `Need`) brings to the method's scores asset: the assets it
depends on, how it is read into `ScoringInputs`, whether reading it runs models (the gpu pool), and
what it cost the choice (the model passes behind it, `core.cost.Spent`). One class per kind of
input, one entry per `Need` in `INPUTS`; a scores asset walks its method's needs through this table,
so a new input is one class and one entry here."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from dagster import AssetDep, Failure

from selection_assets.assets.base_model_io import load_base_model, load_tokenizer
from selection_assets.assets.embeddings import SPACES
from selection_assets.core import embed, evaluate, store, tokenize, train, weights
from selection_assets.core import pool as pool_io
from selection_assets.core.cost import Pass, Spent
from selection_assets.core.keys import Ring
from selection_assets.core.methods import MethodSpec, Need, ScoringInputs, deita, diverse_evol, ifd
from selection_assets.core.store import Layout
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, TrainResource


def pool_tokens(layout: Layout, pool_size: int) -> tuple[float, int]:
    """The mean tokens per example and the examples of a pool (its manifest)."""
    manifest = store.read_json(layout.pool_manifest(pool_size))
    return manifest["mean_tokens"], manifest["examples"]


def lm_parameters(layout: Layout) -> int:
    """The base model's parameter count."""
    return store.read_json(layout.base_model_ref)["parameters"]


class ScoreInput:
    """One kind of input. `load` fills its fields of `inputs` for the pool of `pool_size` (rings
    `rings`) and returns what it cost the choice; every argument is passed by keyword, and each
    input reads the ones it needs."""

    runs_models = False  # reading it runs models inside the scores asset: the asset joins the gpu pool

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        """The assets it reads (ring-partitioned ones through `ring_mapping`)."""
        raise NotImplementedError

    def load(self, inputs: ScoringInputs, **context) -> Spent:
        raise NotImplementedError


class PoolEmbeddings(ScoreInput):
    """The pool's vectors in the method's embedding space, read lazily, shard by shard."""

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        return [AssetDep(SPACES[spec.space].pool_asset, partition_mapping=ring_mapping)]

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], spec: MethodSpec, pool_size: int,
             **_) -> Spent:
        inputs.pool_embedding_blocks = lambda: pool_io.embedding_blocks(layout, rings, spec.space)
        seconds, parameters = 0.0, 0
        for ring in rings:
            manifest = store.read_json(layout.ring_embeddings(ring, spec.space) / "manifest.json")
            seconds += manifest["embed_seconds"]
            parameters = manifest["fingerprint"]["parameters"]
        tokens, examples = pool_tokens(layout, pool_size)
        return Spent(tuple(SPACES[spec.space].passes(layout, parameters, tokens, examples)), seconds)


class QueryEmbeddings(ScoreInput):
    """The eval tasks' queries in the same space, with their task and id."""

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        return [SPACES[spec.space].query_asset]

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], spec: MethodSpec, pool_size: int,
             **_) -> Spent:
        directory = layout.query_embeddings(spec.space)
        queries = pd.read_parquet(directory / "queries.parquet")
        inputs.query_embeddings = np.load(directory / "embeddings.npy")
        inputs.query_tasks = queries["task"].to_numpy()
        inputs.query_ids = queries["query_id"].to_numpy()
        # the cost model counts queries at the pool's mean length
        parameters = store.read_json(layout.ring_embeddings(rings[-1], spec.space) / "manifest.json")["fingerprint"]["parameters"]
        tokens, _ = pool_tokens(layout, pool_size)
        return Spent(tuple(SPACES[spec.space].passes(layout, parameters, tokens, len(queries))))


class AnswerLosses(ScoreInput):
    """The base model's answer losses per example (`ring_answer_losses`): CE(A | Q), and CE(A) alone
    (`alone`, IFD's denominator). Both come from one asset; each is one LM pass over the pool, and
    the asset's measured seconds count once, with CE(A | Q)."""

    def __init__(self, alone: bool):
        self.alone = alone

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        return [AssetDep("ring_answer_losses", partition_mapping=ring_mapping), "base_model"]

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], pool_size: int, **_) -> Spent:
        if inputs.answer_losses is None:
            inputs.answer_losses = pd.concat([pd.read_parquet(layout.ring_answer_losses(r)) for r in rings],
                                             ignore_index=True)
        seconds = 0.0 if self.alone else sum(
            store.read_json(layout.ring_answer_losses(r).with_suffix(".json"))["seconds"] for r in rings)
        tokens, examples = pool_tokens(layout, pool_size)
        return Spent((Pass(lm_parameters(layout), tokens, examples),), seconds)


class ReadsConversations(ScoreInput):
    """An input made from the pool's conversations (`ring_records`), with the assets `also_reads`
    names (the tokenizer and base model a fine-tune in the scores asset starts from)."""

    also_reads: tuple[str, ...] = ()

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        return [AssetDep("ring_records", partition_mapping=ring_mapping), *self.also_reads]


class Messages(ReadsConversations):
    """The conversations themselves, read when the method asks."""

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], **_) -> Spent:
        inputs.messages = lambda: pool_io.messages(layout, rings)
        return Spent()


class RewardScores(ReadsConversations):
    """A reward model's score of each example's (instruction, response) pair
    (DataResource.reward_model), computed here."""

    runs_models = True

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], data: DataResource,
             compute: ComputeResource, **_) -> Spent:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        conversations, device = pool_io.messages(layout, rings), compute.resolved_device()
        began = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(data.reward_model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = weights.from_pretrained(AutoModelForSequenceClassification, data.reward_model,
                                        allow_pickle=data.allow_pickle_weights).to(device).eval()
        inputs.reward_scores, tokens = evaluate.reward_scores(model, tokenizer, conversations,
                                                              max_length=data.max_length, device=device)
        parameters = sum(p.numel() for p in model.parameters())
        return Spent((Pass(parameters, tokens, 1),), time.perf_counter() - began)


def deita_scorer_names(data: DataResource) -> tuple[str, str]:
    """DEITA's (complexity, quality) scorer models from DataResource.deita_scorers."""
    names = [part.strip() for part in data.deita_scorers.split(",") if part.strip()]
    if len(names) != 2:
        raise Failure("deita needs its two scorer models: set DataResource.deita_scorers "
                      "(SELECTION_ASSETS_DEITA_SCORERS) to 'complexity-scorer,quality-scorer' (names or paths), "
                      f"got {data.deita_scorers!r}")
    return names[0], names[1]


class DeitaScores(ReadsConversations):
    """Each conversation's DEITA evol score: per turn, complexity x quality from the two scorer
    models (DataResource.deita_scorers), computed here."""

    runs_models = True

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], data: DataResource,
             compute: ComputeResource, **_) -> Spent:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        conversations, device = pool_io.messages(layout, rings), compute.resolved_device()
        began = time.perf_counter()
        complexity_prompts, quality_prompts, owner = deita.scorer_prompts(conversations)
        per_turn, passes = [], []
        for name, prompts in zip(deita_scorer_names(data), (complexity_prompts, quality_prompts)):
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = weights.from_pretrained(AutoModelForCausalLM, name,
                                            allow_pickle=data.allow_pickle_weights).to(device).eval()
            scores, tokens = evaluate.expected_digit_scores(model, tokenizer, prompts, device=device)
            per_turn.append(scores)
            passes.append(Pass(sum(p.numel() for p in model.parameters()), tokens, 1))
        inputs.deita_scores = deita.evol_scores(per_turn[0], per_turn[1], owner, len(conversations))
        return Spent(tuple(passes), time.perf_counter() - began)


class FinetuneRounds(ReadsConversations):
    """DiverseEvol's rounds: a function that fine-tunes a fresh base model on pool rows and returns
    every pool example's mean-pooled embedding under it. Its cost is counted from the rounds each
    budget of the pool runs (their seconds are inside the method's own scoring time)."""

    runs_models = True
    also_reads = ("tokenizer", "base_model")

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], grid: Grid, pool_size: int,
             data: DataResource, compute: ComputeResource, training: TrainResource, log=None, **_) -> Spent:
        inputs.train_and_embed = _train_and_embed(layout, pool_io.messages(layout, rings), data, training,
                                                  compute, log)
        tokens, examples = pool_tokens(layout, pool_size)
        return Spent(tuple(diverse_evol.round_passes(lm_parameters(layout), tokens, examples,
                                                     grid.budgets_below(pool_size), training.epochs)))


def _train_and_embed(layout: Layout, conversations: list, data: DataResource, training: TrainResource,
                     compute: ComputeResource, log=None) -> Callable[[np.ndarray], np.ndarray]:
    """rows -> every pool example's mean-pooled embedding under a fresh base model fine-tuned on
    those rows (DiverseEvol's round); the round's checkpoint lives in a temporary directory inside
    the storage root and is removed after."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(layout)
    pool_ids = [e.input_ids for e in tokenize.encode_conversations(tokenizer, conversations, data.max_length)]
    settings = training.settings(data.max_length, data.seed)
    device = compute.resolved_device()

    def train_and_embed(rows: np.ndarray) -> np.ndarray:
        model = load_base_model(layout, data, dtype=compute.resolved_dtype())
        examples = train.sft_examples(tokenizer, [conversations[i] for i in rows], data.max_length)
        with tempfile.TemporaryDirectory(prefix=".diverse-evol-", suffix=store.PARTIAL_DIR_SUFFIX, dir=layout.root) as work:
            train.train_causal_lm(model, tokenizer, examples, settings, Path(work) / "round", device, log=log,
                                  label=f"DiverseEvol round on {len(rows)} examples")
            trained = AutoModel.from_pretrained(Path(work) / "round", dtype=compute.resolved_dtype()).to(device).eval()
            return embed.embed_token_ids(trained, pool_ids, pad_id=tokenizer.pad_token_id,
                                         batch_tokens=compute.embed_batch_tokens, device=device, pooling="mean")

    return train_and_embed


class PreExperiencedLosses(ReadsConversations):
    """Answer losses under Cherry LLM's pre-experienced model, computed here for the pool: the base
    model reads each instruction alone, a k-means, middle-perplexity sample of the pool is drawn
    from that (core.methods.ifd), the base model is fine-tuned on it for one epoch in a temporary
    directory inside the storage root, and the fine-tuned model gives CE(A | Q) and CE(A)."""

    runs_models = True
    also_reads = ("tokenizer", "base_model")

    def load(self, inputs: ScoringInputs, *, layout: Layout, rings: list[Ring], pool_size: int, data: DataResource,
             compute: ComputeResource, training: TrainResource, log=None, **_) -> Spent:
        from transformers import AutoModelForCausalLM

        conversations, device, dtype = pool_io.messages(layout, rings), compute.resolved_device(), compute.resolved_dtype()
        began = time.perf_counter()
        tokenizer = load_tokenizer(layout)
        model = load_base_model(layout, data, dtype=dtype).to(device).eval()
        perplexity, vectors, instruction_tokens = evaluate.instruction_statistics(
            model, tokenizer, conversations, max_length=data.max_length, batch_tokens=compute.embed_batch_tokens,
            device=device)
        labels = ifd.cluster_labels(vectors, ifd.pre_experience_clusters(len(conversations)), data.seed)
        sample = ifd.middle_perplexity_sample(labels, perplexity)
        examples = train.sft_examples(tokenizer, [conversations[i] for i in sample], data.max_length)
        settings = dataclasses.replace(training.settings(data.max_length, data.seed), epochs=ifd.PRE_EXPERIENCE_EPOCHS)
        with tempfile.TemporaryDirectory(prefix=".pre-experience-", suffix=store.PARTIAL_DIR_SUFFIX, dir=layout.root) as work:
            train.train_causal_lm(model, tokenizer, examples, settings, Path(work) / "model", device, log=log,
                                  label=f"pre-experience on {len(sample)} examples")
            experienced = AutoModelForCausalLM.from_pretrained(Path(work) / "model", dtype=dtype).to(device).eval()
            inputs.answer_losses = evaluate.answer_losses(experienced, tokenizer, conversations,
                                                          max_length=data.max_length,
                                                          batch_tokens=compute.embed_batch_tokens, device=device, log=log)
        if log:
            log(f"pre-experienced model: {len(sample)} examples from {labels.max() + 1} clusters")
        parameters, (tokens, examples_in_pool) = lm_parameters(layout), pool_tokens(layout, pool_size)
        trained_tokens = sum(len(e["input_ids"]) for e in examples)
        passes = (Pass(parameters, instruction_tokens, 1), Pass(parameters, trained_tokens, settings.epochs, factor=6.0),
                  Pass(parameters, tokens, examples_in_pool), Pass(parameters, tokens, examples_in_pool))
        return Spent(passes, time.perf_counter() - began)


class LessWarmup(ScoreInput):
    """LESS's LoRA warm-up behind its gradient features (the features themselves are the method's
    embedding space): the warm-up's training passes and seconds count in the choice's cost."""

    def deps(self, spec: MethodSpec, ring_mapping) -> list:
        return ["less_warmup", "base_model"]

    def load(self, inputs: ScoringInputs, *, layout: Layout, **_) -> Spent:
        warmup = store.read_json(layout.less_warmup / "manifest.json")
        return Spent((Pass(lm_parameters(layout), warmup["tokens"], 1, factor=6.0),), warmup["seconds"])


INPUTS: dict[Need, ScoreInput] = {
    Need.EMBEDDINGS: PoolEmbeddings(),
    Need.QUERIES: QueryEmbeddings(),
    Need.ANSWER_LOSSES: AnswerLosses(alone=False),
    Need.ANSWER_LOSSES_ALONE: AnswerLosses(alone=True),
    Need.MESSAGES: Messages(),
    Need.REWARD_SCORES: RewardScores(),
    Need.DEITA_SCORES: DeitaScores(),
    Need.FINETUNE_ROUNDS: FinetuneRounds(),
    Need.GRADIENTS: LessWarmup(),
    Need.PRE_EXPERIENCED_LOSSES: PreExperiencedLosses(),
}
