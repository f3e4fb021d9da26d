"""RDS+ pooling: hand-checked weights, batch-invariance, and resumable shard writing."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from selection_assets.core import embed


def test_position_weights_ignore_padding():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # third position is padding
    mask = torch.tensor([[1, 1, 0]])
    # weights 1/3 and 2/3 over the two real tokens -> (1/3, 2/3), then normalised
    expected = torch.tensor([[1.0, 2.0]]) / np.sqrt(5.0)
    torch.testing.assert_close(embed.position_weighted_pool(hidden, mask), expected)


def _pooled_by_hand(states: list[list[float]], pooling: str) -> list[float]:
    """One example's real-token states pooled the reference's way, a token at a time: token i (from
    1) weighs i / (1 + ... + n) for RDS+, 1 / n for the mean; the last token alone; then L2-normalised."""
    n = len(states)
    if pooling == "last_token":
        vector = list(states[-1])
    else:
        vector = [0.0] * len(states[0])
        for i, state in enumerate(states, start=1):
            weight = i / (n * (n + 1) / 2) if pooling == "position_weighted" else 1 / n
            for j, value in enumerate(state):
                vector[j] += weight * value
    norm = sum(value * value for value in vector) ** 0.5
    return [value / norm for value in vector]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pooling", sorted(embed.POOLINGS))
def test_every_pooling_is_its_plain_restatement_over_real_tokens_whichever_side_pads(pooling, side):
    generator = torch.Generator().manual_seed(3)
    lengths, width, dim = [1, 4, 7, 2], 7, 5
    hidden = torch.randn(len(lengths), width, dim, generator=generator) * 3  # padding positions hold noise too
    mask = torch.zeros(len(lengths), width, dtype=torch.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1 if side == "right" else 0
        if side == "left":
            mask[row, width - length:] = 1
    pooled = embed.POOLINGS[pooling](hidden, mask)
    for row, length in enumerate(lengths):
        real = hidden[row][mask[row].bool()].tolist()
        assert len(real) == length
        torch.testing.assert_close(pooled[row], torch.tensor(_pooled_by_hand(real, pooling)), rtol=1e-5, atol=1e-6)


def test_length_buckets_respect_token_budget_and_cover_everything():
    lengths = [5, 50, 7, 49, 3, 51, 20]
    batches = embed.length_buckets(lengths, batch_tokens=100)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 100


def test_length_buckets_cap_attention_cells_for_long_sequences():
    lengths = [1000, 990, 980, 970, 300, 290, 280, 270, 5000]
    batches = embed.length_buckets(lengths, batch_tokens=100_000, attention_cells=2_000_000)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [1, 2, 2, 4]  # 5,000 alone; 2 x 1,000^2; 2 x 980^2; 4 x 300^2
    for batch in batches[1:]:
        assert max(lengths[i] for i in batch) ** 2 * len(batch) <= 2_000_000
    uncapped = embed.length_buckets(lengths, batch_tokens=100_000, attention_cells=None)
    assert [len(b) for b in uncapped] == [9]


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    return LlamaModel(config).eval()


@pytest.mark.parametrize("padding_mask", [True, False], ids=["masked (CPU default)", "causal only (CUDA default)"])
def test_batched_embeddings_equal_batch_size_one(tiny_model, padding_mask):
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 97, size=n).tolist() for n in (3, 17, 40, 8, 25, 1, 33)]
    batched = embed.embed_token_ids(tiny_model, sequences, pad_id=0, batch_tokens=10_000, padding_mask=padding_mask)
    single = np.concatenate([embed.embed_token_ids(tiny_model, [s], pad_id=0, batch_tokens=1) for s in sequences])
    assert np.abs(batched - single).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def write_embedding_shards(directory, plan, fingerprint, embed_rows):
    """The single-process sequence of the pool_embeddings asset."""
    embed.prepare_shard_dir(directory, fingerprint)
    stats = embed.embed_missing_shards(directory, plan, embed_rows)
    return {**embed.finalize_manifest(directory, plan, fingerprint), **stats}


def test_killed_run_resumes_at_first_missing_shard(tmp_path):
    data = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    calls = []

    def rows(start, end):
        calls.append(start)
        if len(calls) == 3 and fail["on"]:
            raise RuntimeError("killed")
        return data[start:end]

    fail = {"on": True}
    plan = embed.ShardPlan(n_rows=10, shard_size=3)
    with pytest.raises(RuntimeError):
        write_embedding_shards(tmp_path, plan, {"model": "m"}, rows)
    assert not (tmp_path / "manifest.json").exists()
    fail["on"] = False
    calls.clear()
    manifest = write_embedding_shards(tmp_path, plan, {"model": "m"}, rows)
    assert calls == [6, 9] and manifest["resumed_shards"] == 2
    resumed = np.concatenate(list(embed.iter_shards(tmp_path)))
    np.testing.assert_array_equal(resumed, data.astype(np.float16))
    calls.clear()
    write_embedding_shards(tmp_path, plan, {"model": "other"}, rows)  # new fingerprint: redo all
    assert calls == [0, 3, 6, 9]


def test_processes_striding_shards_give_the_single_process_result(tmp_path):
    data = np.random.default_rng(4).normal(size=(11, 3)).astype(np.float32)
    plan = embed.ShardPlan(n_rows=11, shard_size=2)
    fingerprint = {"model": "m"}
    embed.prepare_shard_dir(tmp_path / "multi", fingerprint)
    done = []
    for rank in (0, 1):  # what two accelerate processes do, one after the other here
        stats = embed.embed_missing_shards(tmp_path / "multi", plan, lambda s, e: done.append(s) or data[s:e],
                                           rank=rank, world_size=2)
        assert stats["resumed_shards"] == 0
    assert sorted(done) == [0, 2, 4, 6, 8, 10]
    embed.finalize_manifest(tmp_path / "multi", plan, fingerprint)
    single = write_embedding_shards(tmp_path / "single", plan, fingerprint, lambda s, e: data[s:e])
    assert len(single["shards"]) == 6
    np.testing.assert_array_equal(np.concatenate(list(embed.iter_shards(tmp_path / "multi"))),
                                  np.concatenate(list(embed.iter_shards(tmp_path / "single"))))


def test_manifest_refuses_missing_shards(tmp_path):
    plan = embed.ShardPlan(n_rows=4, shard_size=2)
    embed.prepare_shard_dir(tmp_path, {"model": "m"})
    embed.embed_missing_shards(tmp_path, plan, lambda s, e: np.zeros((e - s, 2)), rank=0, world_size=2)
    with pytest.raises(RuntimeError, match="shard 1"):
        embed.finalize_manifest(tmp_path, plan, {"model": "m"})
