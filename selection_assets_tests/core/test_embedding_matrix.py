"""The bounded-memory embedding matrix (core/embedding_matrix.py) and the diversity methods on it:
whatever the memory budget, the same rows, neighbours and selections."""

import numpy as np
import pytest

from selection_assets.core.embedding_matrix import EmbeddingMatrix, nearest_rows
from selection_assets.core.methods import deita, diversity, instructmining


@pytest.fixture
def shard_files(tmp_path):
    """Unit vectors with exact duplicates, stored as float16 shards of uneven sizes (as embed.py stores them)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(230, 8))
    x[50:55] = x[10]  # ties for the neighbour searches
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    sizes, start, files = [64, 64, 64, 38], 0, []
    for index, size in enumerate(sizes):
        np.save(tmp_path / f"{index}.npy", x[start:start + size])
        files.append(tmp_path / f"{index}.npy")
        start += size
    return x.astype(np.float32), files


def _matrix(files, memory_bytes):
    return EmbeddingMatrix((np.load(f, mmap_mode="r") for f in files), memory_bytes)


@pytest.mark.parametrize("memory_bytes, kept_rows", [(0, 0), (64 * 8 * 4 * 2 + 100, 128), (1 << 30, 230)])
def test_blocks_and_rows_are_the_shards_whatever_is_kept(shard_files, memory_bytes, kept_rows):
    x, files = shard_files
    matrix = _matrix(files, memory_bytes)
    assert (len(matrix), matrix.dim) == x.shape
    assert matrix.kept_bytes == kept_rows * 8 * 4  # a leading run of whole shards
    np.testing.assert_array_equal(np.concatenate([b for _, b in matrix.blocks()]), x)
    picks = [229, 0, 63, 64, 65, 10, 10, 191, 192]
    np.testing.assert_array_equal(matrix.rows(picks), x[picks])
    np.testing.assert_array_equal(matrix.squared_norms(), np.einsum("ij,ij->i", x, x))
    np.testing.assert_array_equal(matrix.sample(40, seed=3), _matrix(files, 1 << 30).sample(40, seed=3))
    with pytest.raises(IndexError):
        matrix.rows([230])


def test_nearest_rows_equal_a_full_sort_with_ties_to_the_lower_row(shard_files):
    x, files = shard_files
    targets = x[[10, 3, 200]]
    distances, rows = nearest_rows(_matrix(files, 0), targets, 9)
    for target, found, found_distances in zip(targets, rows, distances):
        squared = ((x - target) ** 2).sum(axis=1)
        expected = np.lexsort((np.arange(len(x)), squared))[:9]
        np.testing.assert_allclose(found_distances, squared[expected], atol=1e-5)
        assert set(found[np.isclose(found_distances, 0, atol=1e-6)]) == set(expected[np.isclose(squared[expected], 0, atol=1e-6)])
    assert rows[0][:6].tolist() == [10, 50, 51, 52, 53, 54]  # six identical rows, lowest first


def _one_at_a_time_filter(x, ranking, k, threshold):
    """DEITA's filter restated plainly: take a candidate when no taken one is more similar than the threshold."""
    taken = []
    for index in ranking:
        if len(taken) == k:
            break
        if all(float(x[index] @ x[t]) <= threshold for t in taken):
            taken.append(int(index))
    return taken


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_deita_filter_in_batches_decides_as_one_candidate_at_a_time(shard_files, batch):
    x, files = shard_files
    ranking = np.random.default_rng(1).permutation(len(x))
    for threshold, k in [(0.5, 40), (0.2, 1000), (0.99, 12)]:
        got = deita.redundancy_filter(_matrix(files, 0), ranking, k, threshold, batch=batch)
        assert got.tolist() == _one_at_a_time_filter(x, ranking, k, threshold)


def test_diversity_methods_choose_the_same_whatever_the_memory_budget(shard_files):
    x, files = shard_files
    streamed, kept = _matrix(files, 0), _matrix(files, 1 << 30)
    assert diversity.kcenter_order(streamed, 30, seed=2).tolist() == diversity.kcenter_order(x, 30, seed=2).tolist()
    assert diversity.kmeans_order(streamed, 9, seed=1).tolist() == diversity.kmeans_order(kept, 9, seed=1).tolist()
    assert (diversity.kmeans_nearest_to_centroids(streamed, 12, seed=0).tolist()
            == diversity.kmeans_nearest_to_centroids(kept, 12, seed=0).tolist())
    np.testing.assert_array_equal(instructmining.knn_distance(streamed), instructmining.knn_distance(x))


def test_kmeans_trains_on_a_seeded_sample_past_its_points_per_centroid(shard_files, monkeypatch):
    x, files = shard_files
    monkeypatch.setattr(diversity, "MAX_POINTS_PER_CENTROID", 10)  # 3 clusters: train on 30 of 230 rows
    trained_on = []
    original = diversity._training_rows
    monkeypatch.setattr(diversity, "_training_rows", lambda *a: trained_on.append(original(*a)) or trained_on[-1])
    order = diversity.kmeans_order(_matrix(files, 0), 3, seed=5)
    assert sorted(order.tolist()) == list(range(230))
    assert trained_on[0].shape == (30, 8)


def test_an_in_memory_vector_is_one_row_per_value_not_an_empty_matrix():
    matrix = EmbeddingMatrix.of(np.arange(5.0))
    assert (len(matrix), matrix.dim) == (5, 1)
    np.testing.assert_array_equal(matrix.rows([4, 0]), [[4.0], [0.0]])
