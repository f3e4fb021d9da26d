"""The packaged real material: ShareGPT's truncated JSON read as a stream with its broken tail
quarantined, GSM8K split into dev and test, and SmolLM2's GGUF turned into a float model directory
that can be fine-tuned."""

import json

import pytest

from selection_assets.core import real_material
from selection_assets.core import readers, records
from selection_assets.core.preflight import base_model_problem
from selection_assets_tests.conftest import first_occurrence


def test_a_missing_package_names_its_install_command():
    missing = real_material.PackagedFile("no_such_package_here", "data.json", "pip install no-such-package")
    with pytest.raises(FileNotFoundError, match="pip install no-such-package"):
        missing.path()


def test_sharegpt_cut_mid_record_keeps_every_complete_conversation(tmp_path):
    # the packaged file itself ends inside a record; its first 200 kB do the same, faster
    head = real_material.SHAREGPT_JSON.path().read_bytes()[:200_000].decode("utf-8", errors="ignore")
    cut = tmp_path / "sharegpt_head.json"
    cut.write_text(head, encoding="utf-8")
    raw = list(readers.iter_raw_records(str(cut)))
    complete = raw[:-1]
    assert all(isinstance(json.loads(text), dict) for text in complete)
    assert raw[-1].startswith(b"{") and head.encode().endswith(raw[-1])  # the file's own last, partial text
    validated = records.validate_raw(raw, range(len(raw)), first_occurrence(records.declared_ids(raw)))
    assert len(validated.kept) + len(validated.quarantined) == len(raw)
    tail = validated.quarantined[validated.quarantined["source_index"] == len(raw) - 1]
    assert len(tail) == 1 and tail["reason"].iloc[0].startswith("not valid JSON")
    # ShareGPT's human/gpt turns arrive as user/assistant messages
    first = json.loads(validated.kept["messages"].iloc[0])
    assert first[0]["role"] == "user" and first[-1]["role"] == "assistant"


def test_gsm8k_splits_into_disjoint_seeded_dev_and_test_items_scored_as_gsm8k():
    tasks = real_material.gsm8k_tasks(seed=3, n_dev=5, n_test=20, max_new_tokens=64)["tasks"]
    assert len(tasks) == 1 and tasks[0]["scoring"] == "gsm8k" and tasks[0]["max_new_tokens"] == 64
    dev, test = tasks[0]["dev"], tasks[0]["test"]
    assert (len(dev), len(test)) == (5, 20)
    questions = [ex["messages"][0]["content"] for ex in dev + test]
    assert len(set(questions)) == 25  # no question in both splits
    assert all(ex["answer"].rsplit("####", 1)[1].strip().replace(",", "").lstrip("-").isdigit() for ex in dev + test)
    assert real_material.gsm8k_tasks(seed=3, n_dev=5, n_test=20)["tasks"][0]["test"] == test  # seeded
    with pytest.raises(ValueError, match="1319 questions"):
        real_material.gsm8k_tasks(seed=0, n_dev=1000, n_test=1000)


def test_smollm2_gguf_becomes_a_float_model_directory_that_can_be_fine_tuned(tmp_path):
    converted = real_material.dequantise_gguf(real_material.SMOLLM2_GGUF.path(), tmp_path / "smollm2")
    assert converted["parameters"] == 134_515_008 and converted["architecture"] == "LlamaForCausalLM"
    config = json.loads((tmp_path / "smollm2" / "config.json").read_text())
    assert "quantization_config" not in config
    assert base_model_problem(str(tmp_path / "smollm2")) is None
    assert (tmp_path / "smollm2" / "chat_template.jinja").exists()
