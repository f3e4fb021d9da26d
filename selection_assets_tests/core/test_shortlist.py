"""A selection read from its shortlist (core/shortlist.py) equals the method's own selection over the
whole score table, for every registered method, on tables full of ties, NaN and -inf, split into
many small row groups; and the shortlist holds rows in proportion to the budget, not the pool."""

import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selection_assets.core import shortlist
from selection_assets.core.methods import MethodSpec, budget_column, registry, seed_column

SEEDS = (0, 1)
BUDGETS = (1, 7, 40, 150)
SOURCES = ("alpaca", "dolly", "flan", "tiny")  # "tiny" has fewer rows than most budgets


def score_table(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every column any method's select reads: values drawn from few levels (many ties), with NaN
    and -inf among them (similarities are finite, but round-robin ranks NaN last all the same)."""
    def tied() -> np.ndarray:
        values = rng.integers(0, 12, rows).astype(np.float64) / 4
        values[rng.random(rows) < 0.1] = np.nan
        values[rng.random(rows) < 0.05] = -np.inf
        return values

    source = rng.choice(SOURCES[:3], rows)
    source[rng.choice(rows, 5, replace=False)] = SOURCES[3]
    frame = pd.DataFrame({"example_id": [f"ex-{i:04d}" for i in range(rows)], "source": source, "score": tied()})
    for seed in SEEDS:
        frame[seed_column(seed)] = tied()
    for budget in BUDGETS:
        frame[budget_column(budget)] = tied()
    for task in ("arithmetic", "facts", "choice"):
        frame[f"group__{task}"] = tied().astype(np.float32)
    return frame


def selection_or_error(spec: MethodSpec, scores: pd.DataFrame, budget: int, seed: int):
    try:
        return spec.select(scores, budget, seed)
    except ValueError as err:
        return str(err)


@pytest.mark.parametrize("name", list(registry()))
def test_selecting_from_the_shortlist_equals_selecting_from_the_whole_table(name, tmp_path):
    spec = registry()[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    whole = score_table(400, rng)
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pandas(whole, preserve_index=False), path, row_group_size=13)
    for budget in BUDGETS:
        short = shortlist.read_shortlist(spec, path, budget, SEEDS)
        rankings = len(spec.ranking_columns(whole.columns, SEEDS, budget))
        assert len(short) <= rankings * budget * (len(SOURCES) if spec.shortlist.per_source else 1)
        for seed in SEEDS:
            expected = selection_or_error(spec, whole, budget, seed)
            got = selection_or_error(spec, short, budget, seed)
            if isinstance(expected, str):
                assert got == expected, (name, budget, seed)
            else:
                pd.testing.assert_frame_equal(got, expected, obj=f"{name} budget {budget} seed {seed}")


def test_a_shortlist_is_the_budget_best_of_each_ranking_and_source(tmp_path):
    scores = pd.DataFrame({"example_id": list("abcdefgh"), "source": list("xxxxyyyy"),
                           "score": [1.0, np.nan, 3.0, 3.0, 0.5, 2.0, np.nan, 2.0]})
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pandas(scores, preserve_index=False), path, row_group_size=3)
    parquet = pq.ParquetFile(path)
    assert shortlist.shortlist_rows(parquet, ["score"], 2, per_source=False, later_rows_first=False).tolist() == [2, 3]
    assert shortlist.shortlist_rows(parquet, ["score"], 3, per_source=False, later_rows_first=True).tolist() == [2, 3, 7]
    # within each source: x keeps 3.0, 3.0; y keeps 2.0, 2.0
    assert shortlist.shortlist_rows(parquet, ["score"], 2, per_source=True, later_rows_first=False).tolist() == [2, 3, 5, 7]


def test_a_method_module_must_say_how_its_select_walks_the_table():
    module = types.ModuleType("selection_assets.core.methods.undeclared")
    module.score = module.select = lambda *args: None
    with pytest.raises(TypeError, match="must declare SHORTLIST"):
        MethodSpec(name="undeclared", module=module, summary="", reference="")


def test_a_seeded_per_budget_method_keeps_the_seed_columns_its_select_checks(tmp_path):
    from selection_assets.core.methods import random

    spec = MethodSpec(name="seeded_per_budget", module=random, summary="", reference="", seeded=True, per_budget=True)
    whole = score_table(200, np.random.default_rng(5))
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pandas(whole, preserve_index=False), path, row_group_size=13)
    short = shortlist.read_shortlist(spec, path, 40, SEEDS)
    assert spec.ranking_columns(whole.columns, SEEDS, 40) == [budget_column(40)]
    for seed in SEEDS:
        pd.testing.assert_frame_equal(spec.select(short, 40, seed), spec.select(whole, 40, seed))
