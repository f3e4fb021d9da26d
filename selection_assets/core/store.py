"""Where every artefact lives under the storage root, how it is written atomically, and the digest
of what was written (a step's content data version).

Assets never pass data through Dagster IO managers: each writes files at a path derived from its
partition key (the `Layout`), and downstream assets read those paths. Writes go to a temporary
sibling first, are flushed to disk (file, then the directory that names it) and are renamed into
place, so a killed run or a lost machine never leaves a half-written file that a later run would
trust; a directory is swapped with its older version in one step, so readers always find one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from selection_assets.core.keys import Cell, Ring

# Arrow allocates from the C library's malloc, not its default mimalloc, which keeps the buffers of
# every decoding thread for reuse: reading the pool frame of a million examples peaked 180-210 MiB above
# the process's start with mimalloc and about 120 MiB with malloc, in the same time (probes for the
# lineage at scale, benchmarks/RESULTS.md). The choice is the process's; the pipeline's Arrow reads go
# through this module or come after its import.
pa.set_memory_pool(pa.system_memory_pool())


def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the heap memory this process has freed back to the OS (glibc keeps it for reuse, so a
    step repeating large short-lived allocations stays as large as the most it ever freed). Nothing
    where the C library cannot."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass(frozen=True)
class Layout:
    """Paths of every artefact below one storage root."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # inputs -----------------------------------------------------------------------------------
    @property
    def source_pool(self) -> Path:
        return self.root / "source" / "pool.parquet"

    @property
    def eval_tasks(self) -> Path:
        return self.root / "source" / "eval_tasks.json"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "models" / "tokenizer"

    @property
    def base_model_dir(self) -> Path:
        """Where the world's pre-trained tiny LM is saved."""
        return self.root / "models" / "base"

    @property
    def base_model_ref(self) -> Path:
        """JSON naming the base model actually used (world checkpoint, HF name or path)."""
        return self.root / "models" / "base_model.json"

    @property
    def less_warmup(self) -> Path:
        """LESS's LoRA warm-up: per-epoch LoRA weights, Adam moments and learning rates."""
        return self.root / "models" / "less_warmup"

    # per ring ---------------------------------------------------------------------------------
    def ring_dir(self, ring: Ring) -> Path:
        return self.root / "pool" / "rings" / ring.key

    def ring_records(self, ring: Ring) -> Path:
        """The ring's kept records: a parted table (`write_part`), a part per validation chunk."""
        return self.ring_dir(ring) / "records"

    def ring_quarantine(self, ring: Ring) -> Path:
        """The ring's quarantined records with their reasons: a parted table, a part per chunk."""
        return self.ring_dir(ring) / "quarantine"

    def ring_tokens(self, ring: Ring) -> Path:
        return self.ring_dir(ring) / "tokens.parquet"

    def ring_answer_losses(self, ring: Ring) -> Path:
        return self.ring_dir(ring) / "answer_losses.parquet"

    def ring_embeddings(self, ring: Ring, space: str = "position_weighted") -> Path:
        return self.root / "embeddings" / space / "pool" / ring.key

    def query_embeddings(self, space: str = "position_weighted") -> Path:
        return self.root / "embeddings" / space / "queries"

    # per pool size / grid cell ----------------------------------------------------------------
    def pool_manifest(self, pool_size: int) -> Path:
        """The pool's view: the rings it is made of and its counts (`pool.pool_rings` reads the rings)."""
        return self.root / "pool" / "views" / f"{pool_size}.json"

    def scores(self, method: str, pool_size: int) -> Path:
        return self.root / "scores" / method / f"{pool_size}.parquet"

    def scores_cost(self, method: str, pool_size: int) -> Path:
        """What the method's choice over the pool cost: FLOPs and the seconds of the model passes it read."""
        return self.root / "scores" / method / f"{pool_size}.cost.json"

    @property
    def scores_db(self) -> Path:
        return self.root / "scores.duckdb"

    def selection(self, method: str, cell: Cell) -> Path:
        return self.root / "selections" / method / str(cell.pool_size) / f"{cell.budget}.parquet"

    def checkpoint(self, method: str, cell: Cell) -> Path:
        """The cell's checkpoints: one save_pretrained directory per replicate seed beneath."""
        return self.root / "checkpoints" / method / str(cell.pool_size) / str(cell.budget)

    def seed_checkpoint(self, method: str, cell: Cell, seed: int) -> Path:
        return self.checkpoint(method, cell) / f"seed-{seed}"

    def eval_report(self, method: str, cell: Cell) -> Path:
        return self.root / "reports" / "eval" / method / str(cell.pool_size) / f"{cell.budget}.json"

    def eval_items(self, method: str, cell: Cell) -> Path:
        """Per test item and seed: prediction, gold, correct, answer loss."""
        return self.root / "reports" / "items" / method / str(cell.pool_size) / f"{cell.budget}.parquet"

    @property
    def base_eval_report(self) -> Path:
        return self.root / "reports" / "base_model.json"

    @property
    def base_eval_items(self) -> Path:
        return self.root / "reports" / "base_model_items.parquet"

    @property
    def instructmining_rule(self) -> Path:
        return self.root / "reports" / "instructmining_rule.json"

    @property
    def comparison_dir(self) -> Path:
        return self.root / "reports" / "comparison"

    @property
    def comparison_json(self) -> Path:
        """The comparison report as data (`results_section` and the benchmarks read it)."""
        return self.comparison_dir / "comparison.json"

    def budget_search(self, method: str, pool_size: int) -> Path:
        """A subset-size search of `method` on one pool: its trial table, chosen size and curve."""
        return self.root / "reports" / "budget_search" / method / str(pool_size)


PARTIAL_FILE_SUFFIX, PARTIAL_DIR_SUFFIX = ".tmp", ".partial"  # what a write in progress is called


def remove_partial_writes(root: Path) -> list[Path]:
    """Delete the temporary files and directories that writes killed midway left under `root` (a
    dot-name ending in .tmp or .partial); returns them. Call only while no run can be writing."""
    root = Path(root)
    leftovers = sorted(p for pattern in (f".*{PARTIAL_FILE_SUFFIX}", f".*{PARTIAL_DIR_SUFFIX}")
                       for p in root.rglob(pattern))
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    return leftovers


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + PARTIAL_FILE_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(name)


ROW_GROUP_ROWS = 65_536  # rows a Parquet row group holds at most: a reader streaming a table holds one


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    """Write a DataFrame to Parquet atomically, in row groups of at most `ROW_GROUP_ROWS` rows."""
    tmp = _temp_sibling(Path(path))
    df.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)
    return move_into_place(tmp, path)


def fsync_file(path: Path) -> None:
    """Flush `path`'s bytes to the disk (what a rename alone does not promise after a power loss)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    """Flush `directory`'s entries to the disk, so a rename into it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(tmp: Path, path: Path) -> Path:
    """Flush the fully written file `tmp`, rename it to `path` (replacing any older one in one step)
    and flush the directory; returns `path`."""
    path = Path(path)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def arrow_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` as an Arrow table of `schema`'s column types (with pandas' dtypes in its metadata)."""
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


PART_FILE = "part-{:05d}.parquet"  # the name of part `index` of a table stored as a directory of parts


def write_part(directory: Path, index: int, table: pa.Table) -> Path:
    """Write `table` as part `index` of the parted table in `directory` (a temporary directory from
    `temp_dir_beside`, moved into place whole by `replace_dir` once every part is written, so each
    part can come from its own process and a killed run leaves no table a later run would trust)."""
    if not 0 <= index < 100_000:  # five digits keep the names' order the parts' order
        raise ValueError(f"part index {index} outside [0, 100000) in {directory}")
    path = Path(directory) / PART_FILE.format(index)
    pq.write_table(table, path)
    return path


def part_paths(directory: Path) -> list[Path]:
    """The part files of the parted table in `directory`, in part order. FileNotFoundError when
    there are none (the table was never written)."""
    parts = sorted(Path(directory).glob(PART_FILE.replace("{:05d}", "*")))
    if not parts:
        raise FileNotFoundError(f"no Parquet parts in {directory}")
    return parts


def read_parts(directory: Path, columns: list[str] | None = None) -> pa.Table:
    """Every row of the parted table in `directory`, in part order, as one Arrow table (pandas' dtypes
    from the first part's metadata: `to_pandas()` gives back nullable labels)."""
    return pa.concat_tables([pq.read_table(path, columns=columns) for path in part_paths(directory)])


def parts_rows(directory: Path) -> int:
    """Rows of the parted table in `directory`, from the parts' footers."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in part_paths(directory))


def iter_part_batches(directory: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The parted table's rows in order, at most `batch_rows` a batch (batches do not span parts)."""
    for path in part_paths(directory):
        yield from pq.ParquetFile(path).iter_batches(batch_rows, columns=columns)


class ParquetRows:
    """Rows [start, end) of a parted table (`write_part`) read by row range: only the row groups that
    hold them are decoded, and the last one decoded is kept for the next call (reads in row order
    decode each row group once)."""

    def __init__(self, directory: Path, columns: list[str]):
        footers = {path: pq.read_metadata(path) for path in part_paths(directory)}  # no file stays open
        self._groups = [(path, group) for path, footer in footers.items() for group in range(footer.num_row_groups)]
        self._schema = next(iter(footers.values())).schema.to_arrow_schema()
        self.columns = columns
        sizes = [footers[path].row_group(group).num_rows for path, group in self._groups]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._cached: tuple[int, pa.Table] | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _group(self, index: int) -> pa.Table:
        if self._cached is None or self._cached[0] != index:
            path, group = self._groups[index]
            self._cached = (index, pq.ParquetFile(path).read_row_group(group, columns=self.columns))
        return self._cached[1]

    def read(self, start: int, end: int) -> pa.Table:
        """Rows [start, end) as an Arrow table of the chosen columns."""
        if not 0 <= start <= end <= len(self):
            raise IndexError(f"rows [{start}, {end}) of {len(self)} in {self.columns}")
        group = int(np.searchsorted(self._starts, start, side="right")) - 1
        pieces = []
        while group < len(self._starts) - 1 and self._starts[group] < end:
            table = self._group(group)
            begin = max(start - int(self._starts[group]), 0)
            stop = min(end - int(self._starts[group]), table.num_rows)
            pieces.append(table.slice(begin, stop - begin))
            group += 1
        return pa.concat_tables(pieces) if pieces else self._schema.empty_table().select(self.columns)


def write_json(obj: Any, path: Path) -> Path:
    """Write JSON atomically (sorted keys, readable indentation)."""
    tmp = _temp_sibling(Path(path))
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    return move_into_place(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def without_durations(value: Any) -> Any:
    """`value` (parsed JSON) without the keys that name measured seconds: what two runs of the same
    work agree on, for fingerprints of finished work and for comparing runs."""
    if isinstance(value, dict):
        return {k: without_durations(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_durations(v) for v in value]
    return value


def content_digest(path: Path) -> str:
    """SHA-256 of what `path` holds: a file's bytes, or every file beneath a directory, each by its
    name relative to the directory and its bytes, in sorted order. Two writes with equal digests
    hold the same bytes, so a step whose rerun wrote the same digest changed nothing downstream."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: nothing written there to digest")
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            file_hash = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(f"{file.relative_to(path).as_posix() if file != path else ''}\0{file_hash}\n".encode())
    return digest.hexdigest()


def write_npy(array: np.ndarray, path: Path) -> Path:
    """Save a .npy file atomically (readable later with mmap_mode='r')."""
    tmp = _temp_sibling(Path(path), suffix=".npy")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    return move_into_place(tmp, path)


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux): swap two paths in one step
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the kernel,
    the C library or the file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(error, os.strerror(error), str(second))


def replace_dir(tmp_dir: Path, final_dir: Path) -> Path:
    """Move a fully written directory into place, replacing any older version, with every file and
    the directory entries flushed first. Where Linux can swap two paths in one step, a reader finds
    the old version or the new one at every moment; elsewhere the old version is renamed aside
    first, leaving `final_dir` absent for the moment between two renames. The old version ends under
    the temporary name (a partial write) and is removed; a crash before that leaves it for
    `remove_partial_writes`."""
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    for file in sorted(f for f in tmp_dir.rglob("*") if f.is_file()):
        fsync_file(file)
    for directory in sorted({f.parent for f in tmp_dir.rglob("*")} | {tmp_dir}):
        fsync_dir(directory)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    if final_dir.exists() and not _exchange(tmp_dir, final_dir):
        aside = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=PARTIAL_DIR_SUFFIX, dir=final_dir.parent))
        os.replace(final_dir, aside)
        os.replace(tmp_dir, final_dir)
        tmp_dir = aside
    elif not final_dir.exists():
        os.replace(tmp_dir, final_dir)
    fsync_dir(final_dir.parent)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir


def temp_dir_beside(final_dir: Path) -> Path:
    """A fresh temporary directory next to `final_dir`, for `replace_dir`."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=PARTIAL_DIR_SUFFIX, dir=final_dir.parent))


def refresh_scores_views(layout: Layout, wait_seconds: float = 120.0) -> None:
    """(Re)create the DuckDB views over every per-method score Parquet file.

    Several runs may score at once and DuckDB admits one writer per file, so writers take an
    exclusive lock on a sidecar file (same host) and retry while another process holds the
    database (e.g. a reader, or a writer on another host of a shared volume).

    `scores_long` has one row per (method, pool_size, example_id, column); `scores` pivots the
    method's main `score` column wide: one row per (pool_size, example_id), one column per method.
    The Parquet files are the source of truth; the DuckDB file only holds views, so concurrent
    score assets never contend for table writes.
    """
    layout.scores_db.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    with open(layout.scores_db.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        while True:
            try:
                return _create_score_views(layout)
            except duckdb.IOException as err:
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def sql_text(value: str) -> str:
    """`value` as a SQL string literal (quotes doubled), for the one place parameters cannot go: a
    view's definition, which DuckDB stores as text. Anything else passes values as parameters."""
    return "'" + str(value).replace("'", "''") + "'"


def _create_score_views(layout: Layout) -> None:
    files = sorted(layout.root.glob("scores/*/*.parquet"))
    with duckdb.connect(str(layout.scores_db)) as con:
        if not files:
            return
        union = " UNION ALL BY NAME ".join(
            f"SELECT {sql_text(f.parent.name)} AS method, {sql_text(f.stem)} AS pool_size, * "
            f"FROM read_parquet({sql_text(f.as_posix())})"
            for f in files
        )
        con.execute(f"CREATE OR REPLACE VIEW scores_all AS {union}")
        con.execute(
            "CREATE OR REPLACE VIEW scores_long AS "
            "UNPIVOT (SELECT method, pool_size, example_id, "
            "COLUMNS(* EXCLUDE (method, pool_size, example_id, source))::DOUBLE FROM scores_all) "
            "ON COLUMNS(* EXCLUDE (method, pool_size, example_id)) "
            "INTO NAME score_column VALUE score"
        )
        methods = ", ".join(sql_text(m) for m in sorted({f.parent.name for f in files}))
        con.execute(
            "CREATE OR REPLACE VIEW scores AS "
            "PIVOT (SELECT method, pool_size, example_id, score FROM scores_all) "
            f"ON method IN ({methods}) USING first(score) GROUP BY pool_size, example_id"
        )
