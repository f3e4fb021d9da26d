"""A ring's validation and tokenisation over worker processes (core/parallel.py): the same rows,
counts and order as in one process."""

import json
from collections import Counter

import numpy as np
import pytest

from selection_assets.core import ingest, parallel, store, tokenize
from selection_assets.core import pool as pool_io
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.world import generate


def test_ordered_map_keeps_the_order_of_the_items_whatever_the_workers():
    items = list(range(23))
    assert list(parallel.ordered_map(abs, (-i for i in items), 3)) == items
    assert list(parallel.ordered_map(abs, [], 2)) == []
    with pytest.raises(ValueError, match="workers"):
        parallel.resolve_workers(-1)
    assert parallel.resolve_workers(0) == parallel.available_cpus() >= 1


def test_a_ring_summary_from_worker_chunks_agrees_with_the_parts_they_wrote(tmp_path):
    layout = Layout(tmp_path)
    lines = (line.encode() for line in generate.iter_pool(900, seed=3))
    ingest.write_shuffled_source(lines, layout.source_pool, seed=3)
    summary = pool_io.write_ring_records(layout, Ring(0, 900), 2, chunk_rows=128)
    kept = store.read_parts(layout.ring_records(Ring(0, 900))).to_pandas()
    quarantined = store.read_parts(layout.ring_quarantine(Ring(0, 900))).to_pandas()
    assert (summary.kept, summary.quarantined) == (len(kept), len(quarantined)) and len(quarantined) > 0
    assert kept["source_index"].tolist() == sorted(kept["source_index"])  # chunks joined in source order
    assert summary.per_source == Counter(kept["source"]) and sum(summary.reasons.values()) == len(quarantined)
    assert summary.first_quarantined["source_index"] == quarantined["source_index"].min()


def test_a_token_counter_reloads_a_tokenizer_that_was_trained_again(tmp_path):
    from selection_assets.world.models import train_tokenizer

    messages = [json.dumps([{"role": "user", "content": "hello there, general"},
                            {"role": "assistant", "content": "kenobi, you are a bold one"}])]
    texts = ["hello there general kenobi you are a bold one " * 20]
    train_tokenizer(texts, 300, tmp_path / "tokenizer")
    counter = tokenize.TokenCounter(str(tmp_path / "tokenizer"))
    finer_total, _ = counter(messages)
    train_tokenizer(texts, 270, tmp_path / "tokenizer")  # fewer merges: more tokens for the same text
    coarser_total, _ = counter(messages)
    assert coarser_total[0] > finer_total[0]


def test_a_ring_written_and_counted_by_workers_equals_one_process_and_a_short_source_leaves_no_files(tmp_path):
    # ComputeResource.cpu_workers is declared output-neutral on this test (assets/versions.py)
    one, two = Layout(tmp_path / "one"), Layout(tmp_path / "two")
    for layout in (one, two):
        ingest.write_shuffled_source((line.encode() for line in generate.iter_pool(900, seed=4)), layout.source_pool,
                                     seed=4)
    ring = Ring(0, 900)
    alone = pool_io.write_ring_records(one, ring, 1, chunk_rows=128)
    spread = pool_io.write_ring_records(two, ring, 2, chunk_rows=128)
    assert (alone.read, alone.kept, alone.quarantined) == (spread.read, spread.kept, spread.quarantined) == \
        (900, alone.kept, 900 - alone.kept)
    assert alone.reasons == spread.reasons and alone.per_source == spread.per_source
    for written in ("ring_records", "ring_quarantine"):  # the same parts, byte for byte
        alone_parts, spread_parts = (store.part_paths(getattr(layout, written)(ring)) for layout in (one, two))
        assert [p.name for p in alone_parts] == [p.name for p in spread_parts] and len(alone_parts) == 8
        assert [p.read_bytes() for p in alone_parts] == [p.read_bytes() for p in spread_parts]

    # token counts: a part per task, read by the worker; the same as one counter over every record
    from selection_assets.world.models import EOS, train_tokenizer

    layout = two
    messages = store.read_parts(layout.ring_records(ring)).column("messages").to_pylist()
    train_tokenizer((tokenize.format_conversation(json.loads(m), EOS) for m in messages), 300, layout.tokenizer_dir)
    expected_total, expected_answer = tokenize.TokenCounter(str(layout.tokenizer_dir))(messages)
    for workers in (1, 2):
        total, answer = pool_io.count_ring_tokens(layout, ring, workers, batch_rows=50)
        np.testing.assert_array_equal(total, expected_total)
        np.testing.assert_array_equal(answer, expected_answer)
    with pytest.raises(ValueError, match="1000 positions, 900 read"):
        pool_io.write_ring_records(layout, Ring(0, 1000), 2, chunk_rows=128)
    assert not layout.ring_records(Ring(0, 1000)).exists() and not layout.ring_quarantine(Ring(0, 1000)).exists()
    assert not store.remove_partial_writes(layout.root)  # and no temporary parts left behind
