"""The conversation schema, readers for common instruction-data formats, and validation.

Every pool example is normalised to `id`, `source`, `messages` (a list of {"role", "content"} with
roles user/assistant/system, ending on an assistant turn). Optional labels `clean` and `noise`
(present in the embedded world, absent in real pools) are carried through. A record that cannot
be normalised is quarantined with the reason, never dropped: kept + quarantined == records in.

Accepted input shapes, detected per record:
- Tulu / OpenAI messages: {"id"?, "source"|"dataset"?, "messages": [{"role", "content"}, ...]}
- ShareGPT: {"id"?, "conversations": [{"from": "human"|"gpt"|"system", "value"}, ...]}
- Alpaca: {"instruction", "input"?, "output"}

The readers that stream a source's raw records live in `readers.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa

from selection_assets.core import readers

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


class RecordError(ValueError):
    """A record that cannot be normalised; the message is the quarantine reason."""


# the Parquet schemas of kept and quarantined records, fixed so a ring written a chunk at a time has
# one schema whatever a chunk holds (a chunk without a labelled record would otherwise type `clean` null)
KEPT_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("messages", pa.string()),
                         ("clean", pa.bool_()), ("noise", pa.string()), ("source_index", pa.int64())])
QUARANTINE_SCHEMA = pa.schema([("source_index", pa.int64()), ("id", pa.string()), ("reason", pa.string()),
                               ("raw", pa.binary())])


@dataclass(frozen=True)
class ValidatedPool:
    """Outcome of validating a slice of raw records."""

    kept: pd.DataFrame  # id, source, messages (JSON string), clean, noise, source_index
    quarantined: pd.DataFrame  # source_index, id, reason, raw (the record's exact bytes)

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
    for pos, msg in enumerate(messages):
        _check_encodable(msg["content"], f"message {pos} content")
    if messages[-1]["role"] != "assistant":
        raise RecordError("last turn is not from the assistant")
    if not any(m["role"] == "user" for m in messages):
        raise RecordError("conversation has no user turn")
    record_id = record.get("id")
    if record_id is not None and not isinstance(record_id, (str, int)):
        raise RecordError(f"'id' is not a string or integer but {type(record_id).__name__}")
    record_id = f"src-{source_index}" if record_id in (None, "") else str(record_id)
    _check_encodable(record_id, "'id'")
    source = record.get("source") or record.get("dataset") or default_source
    if not isinstance(source, str):
        raise RecordError(f"'source' is not text but {type(source).__name__}")
    _check_encodable(source, "'source'")
    clean = record.get("clean")
    if clean is not None and not isinstance(clean, bool):
        raise RecordError(f"'clean' is not a boolean but {type(clean).__name__}")
    if record.get("noise") is not None and not isinstance(record["noise"], str):
        raise RecordError(f"'noise' is not text but {type(record['noise']).__name__}")
    if record.get("noise") is not None:
        _check_encodable(record["noise"], "'noise'")
    return {
        "id": record_id,
        "source": str(source),
        "messages": json.dumps(messages, ensure_ascii=False),
        "clean": None if clean is None else bool(clean),
        "noise": record.get("noise"),
        "source_index": int(source_index),
    }


def _check_encodable(text: str, where: str) -> None:
    """RecordError when `text` holds a lone surrogate (a JSON "\\ud83d" escape, half of a cut emoji),
    which no UTF-8 table can store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RecordError(f"{where} holds a lone surrogate (U+{ord(text[err.start]):04X}) at character "
                          f"{err.start}") from None


def parse_raw(raw: bytes | str) -> Any:
    """The JSON value of one raw record, or RecordError naming why it has none: a record over the
    maximum size (`readers.oversize_record`), bytes that are not UTF-8, text that is not JSON (a NUL
    byte, a cut-off record), nesting too deep to parse, a number too long to convert. A leading
    byte-order mark is ignored."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        oversize = readers.read_oversize(raw)
        if oversize is not None:
            size, limit, head = oversize
            raise RecordError(f"record of {size:,} bytes is over the maximum record size ({limit:,} bytes, "
                              f"DataResource.max_record_bytes); its first {len(head):,} bytes are kept")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RecordError(f"invalid UTF-8 at byte {err.start} ({err.reason})") from None
    if not isinstance(raw, str):
        raise RecordError(f"not valid JSON (a {type(raw).__name__}, not text)")
    try:
        return json.loads(raw.removeprefix("\ufeff"))
    except json.JSONDecodeError as err:
        raise RecordError(f"not valid JSON ({err})") from None
    except RecursionError:
        raise RecordError("nested too deeply to parse") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise RecordError(f"a value cannot be read ({str(err).split(';')[0]})") from None


def _storable(text: str) -> str:
    """`text` with any lone surrogate written as its escape, so that a quarantine row can hold it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def raw_bytes(raw: bytes | str) -> bytes:
    """A raw record as the bytes it arrived as (text is UTF-8 encoded, invalid bytes restored)."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    return str(raw).encode("utf-8", "surrogateescape")


def validate_raw(raw_json: Iterable[bytes | str], source_indices: Iterable[int], duplicate_of: Iterable[int],
                 default_source: str = "unknown") -> ValidatedPool:
    """Parse and normalise raw records (bytes or text); quarantine what fails with its reason and
    the record's exact bytes (`raw`).

    `duplicate_of` gives, per record, the source position of an earlier record with the same id
    (-1 when the id is new); such repeats are quarantined. See `declared_ids`; ingest.py resolves them.
    """
    seen: set[str] = set()
    kept, quarantined = [], []
    for text, index, earlier in zip(raw_json, source_indices, duplicate_of):
        record = None
        try:
            record = parse_raw(text)
            row = normalize_record(record, int(index), default_source)
            if earlier >= 0 or row["id"] in seen:
                where = f" (first at source position {earlier})" if earlier >= 0 else ""
                raise RecordError(f"duplicate id {row['id']!r}{where}")
            seen.add(row["id"])
            kept.append(row)
        except RecordError as err:
            rid = record.get("id") if isinstance(record, dict) else None
            quarantined.append({"source_index": int(index), "id": None if rid is None else _storable(str(rid)),
                                "reason": str(err), "raw": raw_bytes(text) if text is not None else b""})
    kept_df = pd.DataFrame(kept, columns=["id", "source", "messages", "clean", "noise", "source_index"])
    kept_df["clean"] = kept_df["clean"].astype("boolean")
    q_df = pd.DataFrame(quarantined, columns=["source_index", "id", "reason", "raw"])
    return ValidatedPool(kept=kept_df, quarantined=q_df)


def validate_source_slice(source: pd.DataFrame) -> ValidatedPool:
    """`validate_raw` over rows of the shuffled source (columns raw, position, duplicate_of)."""
    return validate_raw(source["raw"], source["position"], source["duplicate_of"])


def declared_ids(raw_json: Iterable[bytes | str]) -> list[str | None]:
    """The `id` each raw record declares (None when unparseable or absent), for duplicate checks."""
    ids: list[str | None] = []
    for text in raw_json:
        try:
            record = parse_raw(text)
        except RecordError:
            record = None
        value = record.get("id") if isinstance(record, dict) else None
        ids.append(None if value in (None, "") else str(value))
    return ids
