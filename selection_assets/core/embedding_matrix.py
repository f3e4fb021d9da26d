"""The pool's embeddings for the methods that need more than one pass or random rows (k-center,
k-means, DEITA's redundancy filter, InstructMining's KNN-6), in memory bounded whatever the pool.

`EmbeddingMatrix` holds the pool's float16 shards in pool order. The leading shards that fit its
memory budget are kept as float32; the others are opened again (memory-mapped, read, unmapped) on
every pass or gather, so the resident set is the budget plus one shard. Every product is taken one
shard at a time in float32, so results do not depend on the budget: only the time does.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import faiss
import numpy as np

DEFAULT_MEMORY_BYTES = 2 * 2**30  # float32 embeddings kept in RAM (ComputeResource.embedding_memory_mb)
ARRAY_BLOCK_ROWS = 65536  # rows per block when a matrix wraps an in-memory array


class EmbeddingMatrix:
    """Rows of float16 shards (memory-mapped .npy files, or arrays already in memory) as float32
    blocks: passes in pool order, and rows gathered by index."""

    def __init__(self, shards: Iterable[np.ndarray], memory_bytes: int = DEFAULT_MEMORY_BYTES):
        # per shard: its float32 rows when kept (or an in-memory array), else how to open its file again
        self._shards: list[np.ndarray | Callable[[], np.ndarray]] = []
        sizes, self.kept_bytes, self.dim, spilled = [], 0, 0, False
        for shard in shards:
            rows, self.dim = (shard.shape[0], shard.shape[1]) if shard.ndim == 2 else (0, self.dim)
            sizes.append(rows)
            spilled = spilled or self.kept_bytes + rows * self.dim * 4 > memory_bytes
            if not spilled:
                self._shards.append(np.ascontiguousarray(shard, dtype=np.float32))
                self.kept_bytes += rows * self.dim * 4
            else:
                self._shards.append(_reopener(shard))
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.n = int(self.starts[-1])

    @classmethod
    def of(cls, array: np.ndarray, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> "EmbeddingMatrix":
        """An in-memory (N, d) array, in blocks of ARRAY_BLOCK_ROWS."""
        array = np.asarray(array)
        if array.ndim != 2:
            array = array.reshape(len(array), -1)
        return cls([array[s:s + ARRAY_BLOCK_ROWS] for s in range(0, len(array), ARRAY_BLOCK_ROWS)] or [array],
                   memory_bytes)

    def __len__(self) -> int:
        return self.n

    def _shard(self, index: int) -> np.ndarray:
        """Shard `index`: its kept rows, or its file opened again (a memory map the caller drops,
        which unmaps it: its pages leave the resident set)."""
        shard = self._shards[index]
        return shard() if callable(shard) else shard

    def block(self, index: int) -> np.ndarray:
        """Shard `index` as float32 rows."""
        return np.asarray(self._shard(index), dtype=np.float32)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 rows) of every shard, in pool order."""
        for index in range(len(self._shards)):
            yield int(self.starts[index]), self.block(index)

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The float32 rows at `indices`, in the order given (each shard opened at most once)."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), self.dim), dtype=np.float32)
        if not len(indices):
            return out
        if indices.min() < 0 or indices.max() >= self.n:
            raise IndexError(f"rows outside [0, {self.n})")
        shard_of = np.searchsorted(self.starts, indices, side="right") - 1
        for shard in np.unique(shard_of):
            where = np.flatnonzero(shard_of == shard)
            out[where] = self._shard(shard)[indices[where] - self.starts[shard]]
        return out

    def squared_norms(self) -> np.ndarray:
        """||x||^2 of every row (float32)."""
        norms = np.empty(self.n, dtype=np.float32)
        for start, block in self.blocks():
            norms[start:start + len(block)] = np.einsum("ij,ij->i", block, block)
        return norms

    def sample(self, count: int, seed: int) -> np.ndarray:
        """`count` rows drawn without replacement by a seeded generator, in pool order (all rows, in
        order, when `count` >= N)."""
        if count >= self.n:
            return self.rows(np.arange(self.n))
        chosen = np.sort(np.random.default_rng(seed).choice(self.n, size=count, replace=False))
        return self.rows(chosen)


def nearest_rows(matrix: EmbeddingMatrix, targets: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per target row, the `count` rows of `matrix` nearest it (squared L2, ascending; ties: lower
    row first) and their distances, merged a shard at a time (memory: targets x count)."""
    targets = np.ascontiguousarray(targets, dtype=np.float32)
    count = min(count, len(matrix))
    best_distances = np.full((len(targets), 0), np.inf, dtype=np.float32)
    best = np.zeros((len(targets), 0), dtype=np.int64)
    for start, block in matrix.blocks():
        if not len(block):
            continue
        found_distances, found = faiss.knn(targets, block, min(count, len(block)))
        distances = np.concatenate([best_distances, found_distances], axis=1)
        rows = np.concatenate([best, found + start], axis=1)
        order = np.lexsort((rows, distances), axis=1)[:, :count]
        best_distances = np.take_along_axis(distances, order, axis=1)
        best = np.take_along_axis(rows, order, axis=1)
    return best_distances, best


def as_matrix(embeddings: np.ndarray | EmbeddingMatrix) -> EmbeddingMatrix:
    """`embeddings` as a matrix (an in-memory array is wrapped by `EmbeddingMatrix.of`)."""
    return embeddings if isinstance(embeddings, EmbeddingMatrix) else EmbeddingMatrix.of(embeddings)


def _reopener(shard: np.ndarray) -> np.ndarray | Callable[[], np.ndarray]:
    """How to get a shard that is not kept again: reopen its file when memory-mapped (holding no
    pages in between), else the array itself."""
    filename = getattr(shard, "filename", None)
    if isinstance(shard, np.memmap) and filename:
        return lambda: np.load(filename, mmap_mode="r")
    return shard
