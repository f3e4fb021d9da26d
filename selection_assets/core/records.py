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

import codecs
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import pandas as pd
import pyarrow as pa

ROLES = ("system", "user", "assistant")
STREAM_ROWS = 10_000  # rows per batch when streaming a Parquet or Hugging Face source
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
    if messages[-1]["role"] != "assistant":
        raise RecordError("last turn is not from the assistant")
    if not any(m["role"] == "user" for m in messages):
        raise RecordError("conversation has no user turn")
    record_id = record.get("id")
    if record_id is not None and not isinstance(record_id, (str, int)):
        raise RecordError(f"'id' is not a string or integer but {type(record_id).__name__}")
    record_id = f"src-{source_index}" if record_id in (None, "") else str(record_id)
    source = record.get("source") or record.get("dataset") or default_source
    if not isinstance(source, str):
        raise RecordError(f"'source' is not text but {type(source).__name__}")
    clean = record.get("clean")
    if clean is not None and not isinstance(clean, bool):
        raise RecordError(f"'clean' is not a boolean but {type(clean).__name__}")
    if record.get("noise") is not None and not isinstance(record["noise"], str):
        raise RecordError(f"'noise' is not text but {type(record['noise']).__name__}")
    return {
        "id": record_id,
        "source": str(source),
        "messages": json.dumps(messages, ensure_ascii=False),
        "clean": None if clean is None else bool(clean),
        "noise": record.get("noise"),
        "source_index": int(source_index),
    }


def parse_raw(raw: bytes | str) -> Any:
    """The JSON value of one raw record, or RecordError naming why it has none: bytes that are not
    UTF-8, text that is not JSON (a NUL byte, a cut-off record), nesting too deep to parse. A
    leading byte-order mark is ignored."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
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
            quarantined.append({"source_index": int(index), "id": None if rid is None else str(rid),
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


def iter_raw_records(path_or_name: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Stream a pool source as raw records, the exact bytes of each, in file order.

    Accepts a local .jsonl/.json file, a .parquet file, a directory saved with
    `datasets.Dataset.save_to_disk`, or a Hugging Face dataset name (its "train" split). Nothing is
    decoded or parsed here beyond finding where each record ends, so a record with invalid UTF-8,
    a NUL byte or nesting too deep to parse still arrives and is quarantined with its reason by
    `validate_raw`. JSON lines: one record per non-blank line (its CR of a CRLF ending dropped); a
    file cut off mid-line ends with that partial record. JSON array: one record per element; a file
    cut off inside an element ends with that element's partial text. Memory is bounded by
    `chunk_bytes` and the longest record, not by the file. A missing local file is refused at once
    (FileNotFoundError), before any record is read.
    """
    path = Path(path_or_name)
    if path.suffix in (".jsonl", ".json", ".parquet") and not path.is_file():
        raise FileNotFoundError(f"no pool file at {path}")
    return _stream_records(path, path_or_name, chunk_bytes)


def _stream_records(path: Path, path_or_name: str, chunk_bytes: int) -> Iterator[bytes]:
    if path.suffix in (".jsonl", ".json"):
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
            handle.seek(0)
            if path.suffix == ".json" and head.startswith(b"["):
                yield from iter_json_array(handle, chunk_bytes)
            else:
                yield from iter_json_lines(handle, chunk_bytes)
        return
    if path.suffix == ".parquet":  # rows to JSON text inside DuckDB, a batch at a time
        import duckdb

        with duckdb.connect() as con:
            cursor = con.execute("SELECT to_json(t)::VARCHAR FROM read_parquet(?) t", [str(path)])
            while rows := cursor.fetchmany(STREAM_ROWS):
                yield from (row[0].encode("utf-8") for row in rows)
        return
    import datasets  # heavy import, only for HF sources

    dataset = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(path_or_name,
                                                                                            split="train")
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset["train"]
    table = dataset.data.table if hasattr(dataset.data, "table") else dataset.to_arrow()
    for batch in table.to_batches(max_chunksize=STREAM_ROWS):
        for row in batch.to_pylist():
            yield json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")


def iter_json_lines(handle: BinaryIO, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The non-blank lines of a binary stream, without their line endings, `chunk_bytes` at a time."""
    pending, more = b"", True
    while more:
        chunk = handle.read(chunk_bytes)
        more = bool(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if more else b""  # a line may go on in the next chunk
        for line in lines:
            line = line.removesuffix(b"\r")
            if line.strip():
                yield line


def iter_json_array(handle: BinaryIO, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The elements of a JSON array, the exact bytes of each, read `chunk_bytes` at a time (a large
    file is never parsed whole). Invalid UTF-8 is carried through (surrogate escapes) so that only
    its own element fails; an element nested too deeply for the parser is delimited by bracket
    counting instead; a file cut off inside an element ends with that element's partial text."""
    decoder = json.JSONDecoder()
    reader = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buffer, position, exhausted = "", 0, False

    def fill() -> bool:
        nonlocal buffer, position, exhausted
        if exhausted:
            return False
        chunk = handle.read(chunk_bytes)
        exhausted = not chunk
        buffer, position = buffer[position:] + reader.decode(chunk, final=exhausted), 0
        return bool(chunk)

    def skip(characters: str) -> bool:
        """Skip `characters`; False at the end of the input."""
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in characters:
                position += 1
            if position < len(buffer):
                return True
            if not fill():
                return False

    if not skip("\ufeff \t\r\n") or buffer[position] != "[":
        raise ValueError("not a JSON array: the file does not start with '['")
    position += 1
    while skip(" \t\r\n,") and buffer[position] != "]":
        while True:
            try:
                end = decoder.raw_decode(buffer, position)[1]
            except json.JSONDecodeError:
                if fill():
                    continue
                end = len(buffer)  # the file ends inside this element
            except RecursionError:
                end = _bracketed_end(buffer, position)
                if end is None:
                    if fill():
                        continue
                    end = len(buffer)
            if end >= len(buffer) and fill():  # a number cut at the chunk's end may go on
                continue
            yield buffer[position:end].encode("utf-8", "surrogateescape")
            position = end
            break


def _bracketed_end(text: str, start: int) -> int | None:
    """End of the bracketed JSON value starting at `start`, by counting brackets outside strings
    (for values nested too deeply for the parser); None if `text` ends first."""
    depth, index, in_string = 0, start, False
    special = re.compile(r'["\\\[\]{}]')
    while match := special.search(text, index):
        char, index = match.group(), match.end()
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return index
    return None
