"""Reading a pool back from its rings (core/pool.py): the label-free frame methods score, the streamed
summary and the filtered row reads agree with the whole pool they stand in for."""

import json

import numpy as np
import pandas as pd
import pytest

from selection_assets.core import ingest, store
from selection_assets.core import pool as pool_io
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.world import generate

RINGS = [Ring(0, 300), Ring(300, 700)]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Two rings of a world pool in which every fifth record has no `clean` label, with token counts."""
    layout = Layout(tmp_path_factory.mktemp("pool"))

    def lines():
        for index, line in enumerate(generate.iter_pool(700, seed=5)):
            if index % 5 == 0 and '"clean": ' in line and not line.startswith('{"id": "broken'):
                record = json.loads(line)
                del record["clean"]
                line = json.dumps(record)
            yield line.encode()

    ingest.write_shuffled_source(lines(), layout.source_pool, seed=5)
    rng = np.random.default_rng(5)
    for ring in RINGS:
        kept = pool_io.write_ring_records(layout, ring, 1, chunk_rows=64).kept
        total = rng.integers(10, 500, kept)
        store.write_parquet(pd.DataFrame({"total_tokens": total, "answer_tokens": total // 2,
                                          "truncated": total > 400}), layout.ring_tokens(ring))
    return layout


def _whole_pool(layout) -> pd.DataFrame:
    """Every column of every ring's records, with its token counts: what the streamed reads stand in for."""
    return pd.concat([pd.concat([store.read_parts(layout.ring_records(ring)).to_pandas(),
                                 pd.read_parquet(layout.ring_tokens(ring))], axis=1) for ring in RINGS],
                     ignore_index=True).rename(columns={"id": "example_id"})


def test_the_pool_frame_methods_score_carries_no_label(layout):
    frame = pool_io.pool_frame(layout, RINGS)
    assert list(frame.columns) == pool_io.POOL_COLUMNS and not {"clean", "noise"} & set(frame.columns)
    pd.testing.assert_frame_equal(frame, _whole_pool(layout)[pool_io.POOL_COLUMNS])


def test_the_streamed_pool_summary_equals_counts_over_the_whole_pool(layout):
    frame = _whole_pool(layout)
    summary = pool_io.pool_summary(layout, RINGS)
    assert frame["clean"].isna().sum() > 0 and frame["clean"].notna().sum() > 0  # both kinds are counted
    assert summary.examples == len(frame)
    assert summary.mean_tokens == float(frame["total_tokens"].mean())
    assert dict(summary.per_source) == frame["source"].value_counts().to_dict()
    assert summary.clean_share == float(frame["clean"].astype("Float64").mean())
    assert pool_io.pool_summary(layout, []).clean_share is None


def test_the_rows_of_chosen_ids_are_their_rows_of_the_whole_pool(layout):
    frame = _whole_pool(layout)
    chosen = frame["example_id"].iloc[[650, 3, 400, 3, 120]].tolist()  # both rings, out of order, a repeat
    rows = pool_io.pool_rows(layout, RINGS, chosen, ["clean", "noise", "messages"])
    expected = frame.set_index("example_id").loc[chosen, ["clean", "noise", "messages"]].rename_axis("id")
    pd.testing.assert_frame_equal(rows, expected)
    conversations = pool_io.records_for(layout, RINGS, chosen)
    assert conversations == [json.loads(m) for m in expected["messages"]] and conversations[1] == conversations[3]
    with pytest.raises(KeyError, match="1 selected ids are not in the pool"):
        pool_io.records_for(layout, RINGS, [chosen[0], "no-such-id"])
    with pytest.raises(KeyError, match="1 selected ids are not in the pool"):
        pool_io.pool_rows(layout, RINGS, ["no-such-id"], ["clean"])
