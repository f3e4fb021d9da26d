"""Settings refused with their reason and fix before any work starts (core/preflight.py): a base
model that cannot be fine-tuned or loaded, a pool that cannot be read, storage without room, a
harness item whose answer cannot fit the model's context; contexts the harness cuts are counted."""

import json

import pytest
from transformers import LlamaConfig, T5Config

from selection_assets.core.preflight import base_model_problem, hub_failure, pool_refusals, storage_refusals


def _llama_config(**extra) -> LlamaConfig:
    return LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, **extra)


def test_a_trainable_model_directory_passes(world_lm):
    _, model_dir, _ = world_lm
    assert base_model_problem(str(model_dir)) is None


def test_quantized_wrong_architecture_missing_weights_and_missing_path_are_refused(tmp_path):
    quantized = tmp_path / "quantized"
    _llama_config(quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}).save_pretrained(quantized)
    (quantized / "model.safetensors").write_bytes(b"")
    assert "quantized (bitsandbytes)" in base_model_problem(str(quantized))

    encoder_decoder = tmp_path / "encoder_decoder"
    T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2).save_pretrained(encoder_decoder)
    assert "'t5' is not a causal LM" in base_model_problem(str(encoder_decoder))

    no_weights = tmp_path / "no_weights"
    _llama_config().save_pretrained(no_weights)
    assert "holds no weights" in base_model_problem(str(no_weights))

    assert "config cannot be loaded" in base_model_problem(str(tmp_path / "nowhere"))


def test_hub_failures_say_gated_offline_or_not_found():
    import types

    from huggingface_hub import errors

    response = types.SimpleNamespace(headers={}, status_code=403, request=None, url="https://huggingface.co/m")
    causes = {"gated": errors.GatedRepoError("Access to model m is restricted", response=response),
              "not found": errors.RepositoryNotFoundError("404 Repository Not Found", response=response),
              "offline": errors.OfflineModeIsEnabled("offline mode is enabled")}
    for word, cause in causes.items():
        try:
            raise OSError("m is not a loadable model") from cause
        except OSError as error:
            assert hub_failure(error).startswith(f"{word}:"), (word, hub_failure(error))
    assert hub_failure(OSError("disk on fire")) == "disk on fire"


def test_pools_of_unknown_format_missing_or_unreadable_are_refused_with_the_setting(tmp_path):
    setting = "DataResource.pool (SELECTION_ASSETS_POOL)"
    (tmp_path / "pool.jsonl").write_text("{}\n")
    (tmp_path / "pool.csv").write_text("a,b\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "pool.parquet.gz").write_bytes(b"x")
    assert pool_refusals(setting, "x", str(tmp_path / "pool.jsonl")) == []
    assert pool_refusals(setting, "x", "allenai/tulu-v2-sft-mixture") == []  # a dataset name: its loader checks
    for source, words in [("missing.jsonl", "no pool file"), ("pool.csv", "neither a pool file of a known format"),
                          ("folder", "not one `datasets.save_to_disk` wrote"),
                          ("pool.parquet.gz", "must be .jsonl or .json inside")]:
        [refusal] = pool_refusals(setting, "x", str(tmp_path / source))
        assert refusal.setting == setting and words in refusal.problem and refusal.fix, source


def test_storage_that_cannot_be_written_or_lacks_room_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("")
    [unwritable] = storage_refusals("root", tmp_path / "a_file" / "storage", 0)
    assert "not writable" in unwritable.problem
    [full] = storage_refusals("root", tmp_path / "storage", 2**62)
    assert "GiB are needed" in full.problem and "free" in full.problem
    assert storage_refusals("root", tmp_path / "storage", 1) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "a_file"]  # the probe file is gone, nothing created


def test_an_answer_that_cannot_fit_the_context_is_refused_naming_task_and_item(world_lm, tmp_path):
    from selection_assets.core import harness

    tokenizer, _, _ = world_lm
    rows = [{"q": "Which is a fruit?", "choices": ["mango", "drill"], "label": 0},
            {"q": "Which is long?", "choices": ["mango " * 200, "drill"], "label": 1}]
    _choice_task(tmp_path, "long_choice", rows)
    tasks = [{"name": "long_choice", "harness_task": "long_choice", "dev": [], "test": []}]
    with pytest.raises(harness.ContextTooShort, match=r"'long_choice', item 1: an answer choice of \d+ tokens"):
        harness.contexts_to_cut(tokenizer, tasks, 128, harness_include=str(tmp_path))


def test_contexts_the_harness_must_cut_are_counted_before_and_during_evaluation(world_lm, tmp_path):
    from transformers import AutoModelForCausalLM

    from selection_assets.core import evaluate, harness

    tokenizer, model_dir, _ = world_lm
    rows = [{"q": "Which is a fruit?", "choices": ["mango", "drill"], "label": 0},
            {"q": "Which is a fruit? " + "Think of orchards. " * 60, "choices": ["mango", "drill"], "label": 0},
            {"q": "Which is a tool?", "choices": ["mango", "drill"], "label": 1}]
    _choice_task(tmp_path, "long_context", rows)
    tasks = [{"name": "long_context", "harness_task": "long_context", "dev": [], "test": []}]
    assert harness.contexts_to_cut(tokenizer, tasks, 128, harness_include=str(tmp_path)) == {"long_context": 1}
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = evaluate.evaluate_items(model, tokenizer, tasks, max_length=128, harness_include=str(tmp_path))
    assert items.sort_values("item")["context_cut"].tolist() == [False, True, False]
    assert evaluate.task_summary(items)["contexts_cut"].tolist() == [1]


def _choice_task(directory, name: str, rows: list[dict]) -> None:
    """A multiple-choice harness task as the README tells users to write one: JSON lines and a YAML."""
    (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    train: {directory / f'{name}.jsonl'}\n    test: {directory / f'{name}.jsonl'}\n"
        "test_split: test\nfewshot_split: train\noutput_type: multiple_choice\n"
        "doc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\ndoc_to_target: '{{label}}'\n"
        "metric_list:\n  - metric: acc\n")
