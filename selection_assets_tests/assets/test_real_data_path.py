"""The same assets run on a user's pool file, eval file and Hugging Face model directory."""

import json
import shutil

import pandas as pd
from dagster import DagsterInstance, materialize

from selection_assets.cli import run_lineage
from selection_assets.core.keys import Cell, Ring
from selection_assets.core.store import Layout
from selection_assets.definitions import build_assets
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource
from selection_assets.world import generate
from selection_assets_tests.conftest import TINY_WORLD


def test_named_pool_eval_file_and_model_directory(lineage, tmp_path):
    _, world_root, _, _ = lineage
    model_dir = Layout(world_root).base_model_dir  # a save_pretrained directory, as from the Hub
    lines = generate.generate_pool(180, seed=11)
    alpaca = [json.dumps({"instruction": f"Say {i}.", "output": str(i), "dataset": "alpaca"}) for i in range(20)]
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("\n".join(lines + alpaca) + "\n")
    eval_file = tmp_path / "tasks.json"
    eval_file.write_text(json.dumps(generate.generate_eval_tasks(3, n_dev=3, n_test=4, skills=("fact_lookup",))))
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(pool=str(pool_file), eval_tasks=str(eval_file), base_model=str(model_dir),
                                      max_length=128, shard_size=50),
                 "world": TINY_WORLD, "training": TrainResource(epochs=1.0, batch_size=8)}
    run_lineage(Grid((100, 200), (30,)), resources, DagsterInstance.ephemeral(), echo=lambda _: None)
    layout = Layout(tmp_path / "storage")
    assert json.loads(layout.base_model_ref.read_text())["path"] == str(model_dir)
    kept = sum(len(pd.read_parquet(layout.ring_records(r))) for r in (Ring(0, 100), Ring(100, 200)))
    quarantined = sum(len(pd.read_parquet(layout.ring_quarantine(r))) for r in (Ring(0, 100), Ring(100, 200)))
    assert kept + quarantined == 200
    report = json.loads(layout.eval_report("rds_plus", Cell(200, 30)).read_text())
    assert [t["task"] for t in report["tasks"]] == ["fact_lookup"]
    # one eval task: RDS+ round-robins over its individual queries
    assert {c for c in pd.read_parquet(layout.scores("rds_plus", 200)).columns if c.startswith("group__")} == {
        "group__fact_lookup/0", "group__fact_lookup/1", "group__fact_lookup/2"}


def test_a_quantized_base_model_is_refused_before_any_fine_tuning(lineage, tmp_path):
    _, world_root, _, _ = lineage
    quantized = tmp_path / "quantized"
    shutil.copytree(Layout(world_root).base_model_dir, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (quantized / "config.json").write_text(json.dumps(config))
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(base_model=str(quantized), max_length=128), "world": TINY_WORLD,
                 "training": TrainResource(epochs=1.0, batch_size=8)}
    result = materialize(build_assets(Grid((100,), (30,))), resources=resources, selection=["tokenizer", "base_model"],
                         raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "SELECTION_ASSETS_BASE_MODEL" in message and "quantized (gptq)" in message


def _base_model_without_chat_markers(directory):
    """A tiny Llama-style model directory whose tokenizer knows nothing of the Tulu role markers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["the user asks and the assistant answers 12 + 30 = 42"] * 20,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return len(tokenizer)


def test_a_base_model_without_chat_template_reads_the_role_markers_as_text(tmp_path):
    """As open-instruct (and the RDS+ reference) tokenise Tulu's format for a base model: the role
    markers are ordinary text, the tokenizer and the model are used as they are, and the answer
    tokens are still exactly the assistant's content and end of turn."""
    from selection_assets.core import tokenize

    vocabulary = _base_model_without_chat_markers(tmp_path / "base")
    resources = {"storage": StorageResource(root=str(tmp_path / "storage")), "compute": ComputeResource(device="cpu"),
                 "data": DataResource(base_model=str(tmp_path / "base"), max_length=128), "world": TINY_WORLD,
                 "training": TrainResource(epochs=1.0, batch_size=8)}
    materialize(build_assets(Grid((100,), (30,))), resources=resources, selection=["tokenizer", "base_model"])
    layout = Layout(tmp_path / "storage")
    reference = json.loads(layout.base_model_ref.read_text())
    assert reference["path"] == str(tmp_path / "base") and not reference.get("in_storage")  # the model as it is
    from selection_assets.assets.base_model_io import load_tokenizer

    tokenizer = load_tokenizer(layout)
    assert len(tokenizer) == vocabulary and "<|user|>" not in tokenizer.all_special_tokens
    assert len(tokenizer("<|user|>", add_special_tokens=False)["input_ids"]) > 1  # text, several tokens
    conversation = [{"role": "user", "content": "the user asks"}, {"role": "assistant", "content": "42"}]
    [encoded] = tokenize.encode_conversations(tokenizer, [conversation], 128)
    answer = [t for t, keep in zip(encoded.input_ids, encoded.answer_mask) if keep]
    assert answer == tokenizer("42", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _failure_message(resources: dict, selection: list[str]) -> str:
    result = materialize(build_assets(Grid((100,), (30,))), resources=resources, selection=selection,
                         raise_on_error=False)
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message


def test_unreadable_eval_tasks_and_unknown_harness_tasks_are_refused_naming_the_setting(tmp_path):
    common = {"storage": StorageResource(root=str(tmp_path / "storage")), "world": TINY_WORLD,
              "compute": ComputeResource(device="cpu"), "training": TrainResource()}
    missing = _failure_message({**common, "data": DataResource(eval_tasks=str(tmp_path / "no_tasks.json"))},
                               ["eval_tasks"])
    assert "SELECTION_ASSETS_EVAL_TASKS" in missing and "cannot be read" in missing
    unknown = _failure_message({**common, "data": DataResource(harness_tasks="no_such_harness_task")},
                               ["eval_tasks"])
    assert "[data] harness_tasks" in unknown and "no_such_harness_task: not a task" in unknown
    # a task name becomes a file name: one that could leave its folder is refused
    escaping = tmp_path / "escaping_tasks.json"
    tasks = generate.generate_eval_tasks(3, n_dev=3, n_test=4, skills=("fact_lookup",))
    tasks["tasks"][0]["name"] = "../../outside"
    escaping.write_text(json.dumps(tasks))
    refused = _failure_message({**common, "data": DataResource(eval_tasks=str(escaping))}, ["eval_tasks"])
    assert "name '../../outside' must be letters" in refused
