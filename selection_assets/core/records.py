"""The conversation schema, readers for common instruction-data formats, and validation.

Every pool example is normalised to `id`, `source`, `messages` (a list of {"role", "content"} with
roles user/assistant/system, ending on an assistant turn). Optional labels `clean` and `noise`
(present in the embedded world, absent in real pools) are carried through. A record that cannot
be normalised is quarantined with the reason, never dropped: kept + quarantined == records in.

Accepted input shapes, detected per record:
- Tulu / OpenAI messages: {"id"?, "source"|"dataset"?, "messages": [{"role", "content"}, ...]}
- ShareGPT: {"id"?, "conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}
- Alpaca: {"instruction", "input"?, "output"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

import pandas as pd
import pyarrow as pa

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


class RecordError(ValueError):
    """A record that cannot be normalised; the message is the quarantine reason."""


@dataclass(frozen=True)
class ValidatedPool:
    """Outcome of validating a slice of raw records."""

    kept: pd.DataFrame  # id, source, messages (JSON string), clean, noise, source_index
    quarantined: pd.DataFrame  # source_index, id, reason, raw

    @property
    def n_in(self) -> int:
        return len(self.kept) + len(self.quarantined)


def _messages_from(record: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        raw = record["messages"]
        if not isinstance(raw, list):
            raise RecordError("'messages' is not a list")
        messages = []
        for pos, msg in enumerate(raw):
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise RecordError(f"message {pos} lacks 'role' or 'content'")
            messages.append({"role": msg["role"], "content": msg["content"]})
        return messages
    if "conversations" in record:
        raw = record["conversations"]
        if not isinstance(raw, list):
            raise RecordError("'conversations' is not a list")
        messages = []
        for pos, msg in enumerate(raw):
            if not isinstance(msg, dict) or "from" not in msg or "value" not in msg:
                raise RecordError(f"turn {pos} lacks 'from' or 'value'")
            role = SHAREGPT_ROLES.get(str(msg["from"]).lower())
            if role is None:
                raise RecordError(f"turn {pos} has unknown speaker {msg['from']!r}")
            messages.append({"role": role, "content": msg["value"]})
        return messages
    if "instruction" in record and "output" in record:
        prompt = record["instruction"]
        extra = record.get("input") or ""
        if not isinstance(prompt, str) or not isinstance(extra, str):
            raise RecordError("'instruction'/'input' is not text")
        if extra:
            prompt = f"{prompt}\n\n{extra}"
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    raise RecordError("no 'messages', 'conversations' or 'instruction'/'output' field")


def normalize_record(record: Any, source_index: int, default_source: str = "unknown") -> dict[str, Any]:
    """Normalise one raw record to the pool schema, or raise RecordError naming the reason."""
    if not isinstance(record, dict):
        raise RecordError(f"record is a {type(record).__name__}, not an object")
    messages = _messages_from(record)
    if not messages:
        raise RecordError("conversation has no turns")
    for pos, msg in enumerate(messages):
        if msg["role"] not in ROLES:
            raise RecordError(f"message {pos} has unknown role {msg['role']!r}")
        if not isinstance(msg["content"], str):
            raise RecordError(f"message {pos} content is {type(msg['content']).__name__}, not text")
    if messages[-1]["role"] != "assistant":
        raise RecordError("last turn is not from the assistant")
    if not any(m["role"] == "user" for m in messages):
        raise RecordError("conversation has no user turn")
    record_id = record.get("id")
    record_id = f"src-{source_index}" if record_id in (None, "") else str(record_id)
    source = record.get("source") or record.get("dataset") or default_source
    clean = record.get("clean")
    return {
        "id": record_id,
        "source": str(source),
        "messages": json.dumps(messages, ensure_ascii=False),
        "clean": None if clean is None else bool(clean),
        "noise": record.get("noise"),
        "source_index": int(source_index),
    }


def validate_raw(raw_json: Iterable[str], source_indices: Iterable[int], duplicate_of: Iterable[int],
                 default_source: str = "unknown") -> ValidatedPool:
    """Parse and normalise raw JSON strings; quarantine what fails with its reason.

    `duplicate_of` gives, per record, the source position of an earlier record with the same id
    (-1 when the id is new); such repeats are quarantined. See `declared_ids`/`first_occurrence`.
    """
    seen: set[str] = set()
    kept, quarantined = [], []
    for text, index, earlier in zip(raw_json, source_indices, duplicate_of):
        record = None
        try:
            try:
                record = json.loads(text)
            except (TypeError, json.JSONDecodeError) as err:
                raise RecordError(f"not valid JSON ({err})") from None
            row = normalize_record(record, int(index), default_source)
            if earlier >= 0 or row["id"] in seen:
                where = f" (first at source position {earlier})" if earlier >= 0 else ""
                raise RecordError(f"duplicate id {row['id']!r}{where}")
            seen.add(row["id"])
            kept.append(row)
        except RecordError as err:
            rid = record.get("id") if isinstance(record, dict) else None
            quarantined.append({"source_index": int(index), "id": None if rid is None else str(rid),
                                "reason": str(err), "raw": text if isinstance(text, str) else repr(text)})
    kept_df = pd.DataFrame(kept, columns=["id", "source", "messages", "clean", "noise", "source_index"])
    kept_df["clean"] = kept_df["clean"].astype("boolean")
    q_df = pd.DataFrame(quarantined, columns=["source_index", "id", "reason", "raw"])
    return ValidatedPool(kept=kept_df, quarantined=q_df)


def declared_ids(raw_json: Iterable[str]) -> list[str | None]:
    """The `id` each raw record declares (None when unparseable or absent), for duplicate checks."""
    ids: list[str | None] = []
    for text in raw_json:
        try:
            record = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            record = None
        value = record.get("id") if isinstance(record, dict) else None
        ids.append(None if value in (None, "") else str(value))
    return ids


def first_occurrence(ids: list[str | None]) -> list[int]:
    """Per position, the position of the first earlier record with the same id, or -1."""
    first: dict[str, int] = {}
    out = []
    for position, value in enumerate(ids):
        if value is None:
            out.append(-1)
        elif value in first:
            out.append(first[value])
        else:
            first[value] = position
            out.append(-1)
    return out


def read_raw_source(path_or_name: str) -> list[str]:
    """Read a pool source as a list of raw JSON strings, one per record, in file order.

    Accepts a local .jsonl/.json file, a .parquet file, a directory saved with
    `datasets.Dataset.save_to_disk`, or a Hugging Face dataset name (its "train" split).
    Records stay raw so that malformed ones can still be quarantined downstream.
    """
    path = Path(path_or_name)
    if path.suffix == ".jsonl" or (path.suffix == ".json" and path.is_file()):
        with open(path, encoding="utf-8") as handle:
            first = handle.read(1)
            handle.seek(0)
            if path.suffix == ".json" and first == "[":
                return list(iter_json_array(handle))
            return [line.rstrip("\n") for line in handle if line.strip()]
    if path.suffix == ".parquet":  # rows to JSON text inside DuckDB, not row by row in Python
        import duckdb

        with duckdb.connect() as con:
            rows = con.execute("SELECT to_json(t)::VARCHAR FROM read_parquet(?) t", [str(path)]).fetchall()
        return [row[0] for row in rows]
    import datasets  # heavy import, only for HF sources

    if path.is_dir():
        dataset = datasets.load_from_disk(str(path))
    else:
        dataset = datasets.load_dataset(path_or_name, split="train")
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset["train"]
    return _table_to_json(dataset.data.table if hasattr(dataset.data, "table") else dataset.to_arrow())


def iter_json_array(handle: TextIO, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """The elements of a JSON array, as JSON text one at a time, read `chunk_chars` at a time (a
    large file is never parsed whole). A file cut off inside an element (a truncated download)
    ends with that element's partial text, which fails validation and is quarantined with its
    reason rather than losing the whole file."""
    decoder = json.JSONDecoder()
    buffer, position, at_end = "", 0, False

    def fill() -> bool:
        nonlocal buffer, position
        chunk = handle.read(chunk_chars)
        buffer, position = buffer[position:] + chunk, 0
        return bool(chunk)

    def skip(characters: str) -> None:
        nonlocal position, at_end
        while True:
            while position < len(buffer) and buffer[position] in characters:
                position += 1
            if position < len(buffer) or not fill():
                at_end = at_end or position >= len(buffer)
                return

    skip(" \t\r\n")
    if at_end or buffer[position] != "[":
        raise ValueError("not a JSON array: the file does not start with '['")
    position += 1
    while True:
        skip(" \t\r\n,")
        if at_end or buffer[position] == "]":
            return
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                if fill():
                    continue
                yield buffer[position:]  # the file ends inside this element
                return
            if end >= len(buffer) and fill():  # a number cut at the chunk's end may go on
                continue
            yield json.dumps(value, ensure_ascii=False)
            position = end
            break


def _table_to_json(table: pa.Table) -> list[str]:
    return [json.dumps(row, ensure_ascii=False, default=str) for row in table.to_pylist()]

