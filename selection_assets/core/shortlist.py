"""A score table's shortlist: the rows a method's `select` can reach at a budget, found by streaming
the table a row group at a time (`store.write_parquet` bounds them), so a selection holds rows in
proportion to the budget, not the pool.

Why selecting from the shortlist is exact. Every method's `select` (its `Shortlist` says which)
takes rows from rankings, best first: the `budget` best of one ranking (top-k), or turns across
several rankings (RDS+'s tasks, random_balanced's sources) where each turn takes the ranking's best
row not yet taken. A ranking's turns only pass rows that end up chosen, at most `budget` of them,
so no turn reaches past the ranking's `budget`-th row. The shortlist keeps, for every ranking, its
`budget` best rows, in pool order; `select` run on it sees every ranking's head unchanged (ties keep
their pool order) and returns the same rows in the same order as on the whole table. The union over
replicate seeds serves every replicate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from selection_assets.core.methods import MethodSpec
from selection_assets.core.ranking import best_first


def read_shortlist(spec: MethodSpec, path: Path, budget: int, seeds: tuple[int, ...]) -> pd.DataFrame:
    """The rows of the score table at `path` that `spec.select` can choose at `budget` for any of
    the replicate `seeds`, in pool order, with the columns `select` reads
    (`MethodSpec.selected_columns`); `spec.select` on it equals `spec.select` on the whole table."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    rankings = spec.ranking_columns(names, seeds, budget)
    rows = shortlist_rows(parquet, rankings, budget, spec.shortlist.per_source, spec.shortlist.later_rows_first)
    return _take_rows(parquet, rows, spec.selected_columns(names, seeds, budget))


def shortlist_rows(parquet: pq.ParquetFile, rankings: list[str], budget: int, per_source: bool,
                   later_rows_first: bool) -> np.ndarray:
    """Sorted pool rows that are among the `budget` best of any ranking column (of each source, with
    `per_source`): highest value first, NaN after every number, ties to the earlier row (the later
    one with `later_rows_first`)."""
    if not rankings:
        return np.empty(0, dtype=np.int64)
    best: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}  # (ranking, source) -> (values, rows)
    start = 0
    for group in _row_groups(parquet, [*rankings, *(["source"] if per_source else [])]):
        rows = np.arange(start, start + group.num_rows, dtype=np.int64)
        start += group.num_rows
        if per_source:
            codes, names = pd.factorize(group.column("source").to_pandas(), use_na_sentinel=False)
            by_source = [(str(name), codes == code) for code, name in enumerate(names)]
        else:
            by_source = [("", None)]
        for ranking in rankings:
            values = group.column(ranking).to_numpy(zero_copy_only=False)
            for source, mask in by_source:
                mine = (values, rows) if mask is None else (values[mask], rows[mask])
                if (ranking, source) in best:
                    kept = best[(ranking, source)]
                    mine = (np.concatenate([kept[0], mine[0]]), np.concatenate([kept[1], mine[1]]))
                keep = best_first(mine[0], budget, -mine[1] if later_rows_first else mine[1])
                best[(ranking, source)] = (mine[0][keep], mine[1][keep])
    if not best:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate([rows for _, rows in best.values()]))


def _row_groups(parquet: pq.ParquetFile, columns: list[str]):
    """`columns` of each row group in turn, as Arrow tables (read whole: in a probe at a million rows,
    `iter_batches` left about three times the memory behind)."""
    for group in range(parquet.num_row_groups):
        yield parquet.read_row_group(group, columns=columns)


def _take_rows(parquet: pq.ParquetFile, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """`columns` of the sorted pool `rows`, read a row group at a time, as a frame in pool order."""
    pieces, start = [], 0
    for group in _row_groups(parquet, columns):
        inside = rows[(rows >= start) & (rows < start + group.num_rows)] - start
        if len(inside):
            pieces.append(group.take(pa.array(inside)))
        start += group.num_rows
    schema = parquet.schema_arrow
    table = pa.concat_tables(pieces) if pieces else schema.empty_table().select(columns)
    return table.to_pandas()
