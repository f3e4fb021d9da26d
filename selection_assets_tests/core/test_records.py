"""Record normalisation: accepted formats, quarantine reasons, and counts that add up."""

import json

import pytest

from selection_assets.core import readers, records
from selection_assets_tests.conftest import first_occurrence


def _validate(raw):
    return records.validate_raw(raw, range(len(raw)), first_occurrence(records.declared_ids(raw)))


def test_accepts_messages_sharegpt_and_alpaca():
    raw = [json.dumps({"id": "m", "source": "s", "messages": [{"role": "user", "content": "q"},
                                                             {"role": "assistant", "content": "a"}]}),
           json.dumps({"id": "g", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
           json.dumps({"instruction": "do", "input": "this", "output": "done", "dataset": "alpaca"})]
    result = _validate(raw)
    assert len(result.quarantined) == 0
    assert result.kept["id"].tolist() == ["m", "g", "src-2"]
    assert result.kept["source"].tolist() == ["s", "unknown", "alpaca"]
    assert json.loads(result.kept["messages"][2])[0]["content"] == "do\n\nthis"


@pytest.mark.parametrize("raw, reason", [
    ('{"id": "x", "messages": [', "not valid JSON"),
    (json.dumps({"id": "x"}), "no 'messages'"),
    (json.dumps({"id": "x", "messages": [{"role": "user", "content": "hi"}]}), "last turn is not from the assistant"),
    (json.dumps({"id": "x", "messages": [{"role": "bot", "content": "a"}, {"role": "assistant", "content": "b"}]}),
     "unknown role 'bot'"),
    (json.dumps({"id": "x", "messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}]}),
     "content is int"),
    (json.dumps([1, 2]), "record is a list"),
])
def test_malformed_records_are_quarantined_with_reason(raw, reason):
    result = _validate([raw])
    assert len(result.kept) == 0 and len(result.quarantined) == 1
    assert reason in result.quarantined["reason"][0]
    assert result.quarantined["raw"][0] == raw.encode()  # the record's exact bytes


def test_repeated_id_is_quarantined_and_counts_add_up():
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    raw = [json.dumps({"id": "a", **good}), json.dumps({"id": "b", **good}), json.dumps({"id": "a", **good}), "junk"]
    result = _validate(raw)
    assert result.kept["id"].tolist() == ["a", "b"]
    assert result.quarantined["source_index"].tolist() == [2, 3]
    assert "duplicate id 'a' (first at source position 0)" in result.quarantined["reason"][0]
    assert result.n_in == len(raw)


def test_reads_jsonl_and_parquet_sources(tmp_path):
    import pandas as pd

    rows = [{"id": str(i), "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            for i in range(3)]
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parquet = tmp_path / "pool.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for path in (jsonl, parquet):
        result = _validate(list(readers.iter_raw_records(str(path))))
        assert result.kept["id"].tolist() == ["0", "1", "2"], path
