"""Streaming readers of pool sources: every record's exact bytes, in file order, in time linear in
the input and memory bounded by a read chunk and the largest record kept.

Nothing is decoded or parsed here beyond finding where each record ends, so a record with invalid
UTF-8, a NUL byte or nesting too deep to parse still arrives, and `records.validate_raw`
quarantines it with its reason. Every byte of a file belongs to exactly one record the reader
yields (blank lines, array brackets and the commas between elements aside), so the records that come
in are counted from the file's own bytes:

- JSON lines: one record per non-blank line (the CR of a CRLF ending dropped); a file cut off
  mid-line ends with that partial record.
- JSON array: one record per element, found by the array's structure alone (brackets outside
  strings), so one element with bad syntax is one record: where a container closes on the wrong
  bracket, the element is cut before the first comma at its own top level that is followed by an
  object or array, which starts the next element (`[a, {bad, d, e]` is a, {bad, d, e). Bytes that
  are no element (a stray byte between elements, text between two arrays) are records of their own,
  and a second array after the first is read on. A file cut off inside an element ends with it.
- A record over `max_record_bytes` is carried as `oversize_record`: its size and its first
  OVERSIZE_HEAD bytes, which validation quarantines with that reason.
- .gz, .bz2, .zst and .lz4 files are read as streams of the file they compress (`pool.jsonl.gz`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Iterator

MAX_RECORD_BYTES = 64 * 2**20  # DataResource.max_record_bytes's default
OVERSIZE_HEAD = 64 * 2**10  # the bytes of an oversize record its quarantine keeps
OVERSIZE_MARK = b"\x00selection_assets: oversize record\x00"  # no record of a JSON file starts so
RESYNC_LIMIT = 2**20  # a bad element longer than this is not searched for the next element inside it
STREAM_ROWS = 10_000  # rows per batch when streaming a Parquet or Hugging Face source
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
TEXT_SUFFIXES = (".jsonl", ".json")


def oversize_record(head: bytes, size: int, limit: int) -> bytes:
    """The record that stands for one of `size` bytes over `limit`: the mark, the sizes, its head."""
    return OVERSIZE_MARK + json.dumps({"size": size, "limit": limit}).encode() + b"\x00" + head[:OVERSIZE_HEAD]


def read_oversize(raw: bytes) -> tuple[int, int, bytes] | None:
    """(size, limit, head) of an `oversize_record`; None for any other record."""
    if not raw.startswith(OVERSIZE_MARK):
        return None
    sizes, _, head = raw[len(OVERSIZE_MARK):].partition(b"\x00")
    numbers = json.loads(sizes)
    return numbers["size"], numbers["limit"], head


def source_format(path: Path) -> tuple[str, str | None]:
    """(the format of the records, the compression) a pool file's name says: `pool.jsonl.gz` is
    JSON lines in gzip."""
    compression = COMPRESSED.get(path.suffix)
    inner = Path(path.stem) if compression else path
    return inner.suffix, compression


def iter_raw_records(path_or_name: str, chunk_bytes: int = 1 << 20,
                     max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """Stream a pool source as raw records, the exact bytes of each, in file order (module docstring).

    Accepts a local .jsonl/.json file (compressed or not), a .parquet file, a directory saved with
    `datasets.Dataset.save_to_disk`, or a Hugging Face dataset name (its "train" split). A missing
    local file, or a compressed file of another format, is refused at once (FileNotFoundError,
    ValueError), before any record is read."""
    path = Path(path_or_name)
    suffix, compression = source_format(path)
    if (suffix in (*TEXT_SUFFIXES, ".parquet") or compression) and not path.is_file():
        raise FileNotFoundError(f"no pool file at {path}")
    if compression and suffix not in TEXT_SUFFIXES:
        raise ValueError(f"{path}: a compressed pool must be JSON lines or a JSON array (.jsonl or .json inside), "
                         f"not {suffix or 'a file without a suffix'}")
    return _stream_records(path, path_or_name, suffix, compression, chunk_bytes, max_record_bytes)


def _stream_records(path: Path, path_or_name: str, suffix: str, compression: str | None, chunk_bytes: int,
                    max_record_bytes: int) -> Iterator[bytes]:
    if suffix in TEXT_SUFFIXES:
        import pyarrow as pa

        try:
            with (pa.input_stream(str(path), compression=compression) if compression else open(path, "rb")) as handle:
                head = handle.read(64)
                rest = _prepend(head, handle.read)
                if suffix == ".json" and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                    yield from iter_json_array(rest, chunk_bytes, max_record_bytes)
                else:
                    yield from iter_json_lines(rest, chunk_bytes, max_record_bytes)
        except (OSError, pa.ArrowException) as error:  # a damaged compressed stream: what follows is lost
            raise ValueError(f"{path} cannot be read to its end ({error})") from None
        return
    if suffix == ".parquet":  # rows to JSON text inside DuckDB, a batch at a time
        import duckdb

        try:
            with duckdb.connect() as con:
                cursor = con.execute("SELECT to_json(t)::VARCHAR FROM read_parquet(?) t", [str(path)])
                while rows := cursor.fetchmany(STREAM_ROWS):
                    yield from (_sized(row[0].encode("utf-8"), max_record_bytes) for row in rows)
        except duckdb.Error as error:  # a damaged file: which rows it held cannot be told
            raise ValueError(f"{path} is not a readable Parquet file ({str(error).splitlines()[0]})") from None
        return
    import datasets  # heavy import, only for HF sources

    dataset = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(path_or_name,
                                                                                            split="train")
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset["train"]
    table = dataset.data.table if hasattr(dataset.data, "table") else dataset.to_arrow()
    for batch in table.to_batches(max_chunksize=STREAM_ROWS):
        for row in batch.to_pylist():
            yield _sized(json.dumps(row, ensure_ascii=False, default=str).encode("utf-8"), max_record_bytes)


def _prepend(first: bytes, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """`read` that returns `first` before what the stream holds next."""
    pending = [first]

    def read_more(size: int) -> bytes:
        if pending:
            return pending.pop() or read(size)
        return read(size)

    return read_more


def _sized(record: bytes, limit: int) -> bytes:
    return oversize_record(record, len(record), limit) if len(record) > limit else record


class _Pending:
    """The bytes of the record being read: all of them up to the limit, past it only its size and
    head (memory stays bounded whatever the record)."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.size = limit, [], 0

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size <= self.limit:
            self.parts.append(piece)
        elif self.parts and sum(map(len, self.parts)) > OVERSIZE_HEAD:
            self.parts = [b"".join(self.parts)[:OVERSIZE_HEAD]]

    @property
    def whole(self) -> bool:
        return self.size <= self.limit

    def bytes(self) -> bytes:
        return b"".join(self.parts)

    def record(self) -> bytes:
        data = self.bytes()
        return data if self.whole else oversize_record(data, self.size, self.limit)


def iter_json_lines(read: Callable[[int], bytes], chunk_bytes: int = 1 << 20,
                    max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The non-blank lines of a byte stream (`read(n)`), without their line endings."""
    line = _Pending(max_record_bytes)
    while chunk := read(chunk_bytes):
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            line.add(chunk[start:newline])
            record = _line_record(line)
            if record is not None:
                yield record
            line, start = _Pending(max_record_bytes), newline + 1
        line.add(chunk[start:])
    record = _line_record(line)
    if record is not None:
        yield record


def _line_record(line: _Pending) -> bytes | None:
    if not line.whole:
        return line.record()
    data = line.bytes().removesuffix(b"\r")
    return data if data.strip(_WHITESPACE) else None


_STRUCTURE = re.compile(rb'["\[\]{}]')
_STRING_END = re.compile(rb'["\\\n]')  # a raw line break cannot be in a JSON string: the element broke
_SCALAR_END = re.compile(rb"[,\] \t\r\n]")  # JSON's whitespace is these four, not \v or \f
_BETWEEN = re.compile(rb"[ \t\r\n,]*")
_OUTSIDE = re.compile(rb"[ \t\r\n]*")
BOM = b"\xef\xbb\xbf"
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}
_WHITESPACE = b" \t\r\n"


def iter_json_array(read: Callable[[int], bytes], chunk_bytes: int = 1 << 20,
                    max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The elements of one or more JSON arrays in a byte stream (`read(n)`), each element's exact
    bytes, and every stretch of bytes that is no element as a record of its own (module docstring)."""
    scanner = _ArrayScanner(max_record_bytes)
    start = b""
    while len(start) < len(BOM) and (more := read(chunk_bytes)):
        start += more
    yield from scanner.feed(start.removeprefix(BOM))  # a byte-order mark opens the file, it is no record
    while chunk := read(chunk_bytes):
        yield from scanner.feed(chunk)
    yield from scanner.finish()


class _ArrayScanner:
    """The state of `iter_json_array` between chunks: where it is (outside an array, between
    elements, in an element, in one of its strings, in a scalar element, in stray bytes), the
    brackets open in the element, and the element's bytes so far."""

    def __init__(self, limit: int):
        self.limit = limit
        self.mode = "outside"  # outside, between, element, string, scalar, junk_outside, junk_between
        self.stack: list[int] = []  # the closers the element's open brackets expect
        self.escape = False  # a backslash ended the last chunk inside a string
        self.pending = _Pending(limit)
        self.resync: int | None = None  # offset in the element of the first ", {" at its top level
        self.after_comma = False  # at the element's top level: a comma, and only whitespace since

    def _start(self, mode: str) -> None:
        self.mode, self.stack, self.pending = mode, [], _Pending(self.limit)
        self.resync, self.after_comma = None, False

    def _end(self, then: str = "between") -> bytes:
        record = self.pending.record()
        self.mode, self.pending = then, _Pending(self.limit)
        return record

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The records `data` completes, given what came before it."""
        position = 0
        while position < len(data):
            mode = self.mode
            if mode == "outside":
                position = _OUTSIDE.match(data, position).end()
                if position < len(data):
                    if data[position] == ord("["):
                        self.mode, position = "between", position + 1
                    else:
                        self._start("junk_outside")
            elif mode == "between":
                position = _BETWEEN.match(data, position).end()
                if position < len(data):
                    byte = data[position]
                    if byte == ord("]"):
                        self.mode, position = "outside", position + 1
                    elif byte == ord('"'):
                        self._start("string")
                        self.pending.add(data[position:position + 1])
                        position += 1
                    else:
                        self._start("element" if byte in _CLOSER else "scalar")
            elif mode in ("junk_outside", "junk_between", "scalar"):
                stop = (data.find(b"[", position) if mode == "junk_outside"
                        else next((m.start() for m in [_SCALAR_END.search(data, position)] if m), -1))
                if stop < 0:
                    self.pending.add(data[position:])
                    position = len(data)
                    continue
                self.pending.add(data[position:stop])
                if mode == "scalar":
                    yield self._end()
                    position = self._after_element(data, stop)
                else:
                    record = self._end("outside" if mode == "junk_outside" else "between")
                    if record.strip(_WHITESPACE):
                        yield record
                    position = stop
            elif mode == "string":
                position = yield from self._string(data, position)
            else:
                position, rescan = yield from self._element(data, position)
                if rescan is not None:
                    data, position = rescan + data[position:], 0

    def _string(self, data: bytes, position: int) -> Iterator[bytes]:
        """Through a string, escapes included; a string element ends with it."""
        if self.escape:
            self.pending.add(data[position:position + 1])
            self.escape = False
            return position + 1
        end = _STRING_END.search(data, position)
        if end is None:
            self.pending.add(data[position:])
            return len(data)
        if data[end.start()] == ord("\\"):
            self.pending.add(data[position:end.start() + 1])
            self.escape = True
            return end.start() + 1
        if data[end.start()] == ord("\n"):  # a line break in a string: this element is broken
            self.pending.add(data[position:end.start()])
            yield self._cut_at_line_end()
            return end.start()
        self.pending.add(data[position:end.end()])
        self.mode = "element"
        if self.stack:
            return end.end()
        yield self._end()
        return self._after_element(data, end.end())

    def _element(self, data: bytes, position: int) -> Iterator[bytes]:
        """Through an array or object element, to its next bracket or string; (where to go on,
        bytes to scan again first when it broke)."""
        found = _STRUCTURE.search(data, position)
        if found is None:
            self._watch_top_level(data[position:])
            self.pending.add(data[position:])
            return len(data), None
        at = found.start()
        self._watch_top_level(data[position:at])
        byte = data[at]
        if byte == ord('"'):
            self.pending.add(data[position:at + 1])
            self.mode, self.after_comma = "string", False
            return at + 1, None
        if byte in _CLOSER:
            if len(self.stack) == 1 and self.after_comma and self.resync is None:
                self.resync = self.pending.size + (at - position)  # where a next element may start
                if self.pending.whole:
                    # a record's top level holds keys after its commas, never a bracket: it broke (an
                    # array element, which is never a record, is cut the same way)
                    self.pending.add(data[position:at])
                    rescan = yield from self._broken()
                    return at, rescan
            self.after_comma = False
            self.stack.append(_CLOSER[byte])
            self.pending.add(data[position:at + 1])
            return at + 1, None
        if self.stack and self.stack[-1] == byte:  # the bracket it expects
            self.stack.pop()
            self.pending.add(data[position:at + 1])
            if self.stack:
                return at + 1, None
            yield self._end()
            return self._after_element(data, at + 1), None
        # a closing bracket it does not expect: with a place where the next element may start, the
        # element ends before it; without one the bracket is part of the (bad) element
        if self.resync is None or not self.pending.whole:
            self.pending.add(data[position:at + 1])
            return at + 1, None
        self.pending.add(data[position:at])
        rescan = yield from self._broken()
        return at, rescan

    def _cut_at_line_end(self) -> bytes:
        """The element so far, up to a comma that ends its line (the comma a separator): a record."""
        whole = self.pending.bytes() if self.pending.whole else None
        if whole is not None and whole.rstrip(b" \t\r").endswith(b","):
            self.pending = _Pending(self.limit)
            self.pending.add(whole.rstrip(b" \t\r")[:-1])
        return self._end()

    def _watch_top_level(self, text: bytes) -> None:
        """Note, at the element's own top level, whether a comma came last (whitespace aside)."""
        if len(self.stack) != 1 or not text:
            return
        comma = text.rfind(b",")
        if comma >= 0:
            self.after_comma = not text[comma + 1:].strip(_WHITESPACE)
        elif text.strip(_WHITESPACE):
            self.after_comma = False

    def _broken(self) -> Iterator[bytes]:
        """The element does not close: it is one record up to its first top-level comma followed
        by an object or array, whose bytes are scanned again as the next elements (returned);
        past RESYNC_LIMIT the whole element so far is the record."""
        whole = self.pending.bytes()
        if len(whole) > RESYNC_LIMIT:
            yield self._end()
            return b""
        cut = self.resync
        head = whole[:cut].rstrip(_WHITESPACE)  # what stands before the comma may be stray bytes too
        self.pending = _Pending(self.limit)
        self.pending.add(head[:-1] if head.endswith(b",") else head)
        yield self._end()
        return whole[cut:]

    def _after_element(self, data: bytes, position: int) -> int:
        """After an element: whitespace, then a comma or the array's end; anything else starts a
        record of stray bytes (to the next comma or bracket)."""
        while position < len(data) and data[position] in _WHITESPACE:
            position += 1
        if position < len(data) and data[position] not in b",]":
            self._start("junk_between")
        return position

    def finish(self) -> Iterator[bytes]:
        """What the stream left open: an element (or stray bytes) cut off by the end of the file,
        cut before its first top-level ", {" when it has one (the rest read as more elements)."""
        while self.mode in ("element", "string") and self.resync is not None and self.pending.whole:
            rescan = yield from self._broken()
            yield from self.feed(rescan)
        if self.mode not in ("outside", "between") and self.pending.size:
            record = self.pending.record()
            if record.strip(_WHITESPACE):
                yield record
