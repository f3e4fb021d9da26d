"""Score assets, one per selection method (a factory): a score for every example of a pool, stored
as Parquet per (method, pool size) and queryable through DuckDB views (scores, scores_long)."""

import time
from types import ModuleType

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from selection_assets.assets._shared import source_version
from selection_assets.core import cost, similarity, store
from selection_assets.core import pool as pool_io
from selection_assets.core.methods import ScoringInputs, registry
from selection_assets.partitions import Grid
from selection_assets.resources import DataResource, StorageResource


def scoring_inputs(layout, rings: list[str], needs: frozenset[str], seed: int) -> ScoringInputs:
    """Everything a method may read about the pool made of `rings`."""
    frame = pool_io.pool_frame(layout, rings)
    inputs = ScoringInputs(pool=frame, seed=seed)
    if "embeddings" in needs:
        inputs.pool_embedding_blocks = lambda: pool_io.embedding_blocks(layout, rings)
    if "queries" in needs:
        queries = pd.read_parquet(layout.query_embeddings / "queries.parquet")
        inputs.query_embeddings = np.load(layout.query_embeddings / "embeddings.npy")
        inputs.query_tasks = queries["task"].to_numpy()
        inputs.query_ids = queries["query_id"].to_numpy()
    return inputs


def method_selection_cost(layout, method: ModuleType, rings: list[str], pool_examples: int,
                          mean_tokens: float, n_queries: int) -> dict:
    """FLOPs (cost model) and measured embedding seconds that a method's choice costs."""
    parameters = store.read_json(layout.base_model_ref)["parameters"]
    flops = cost.selection_flops(method.NEEDS, parameters, mean_tokens, pool_examples, n_queries)
    seconds = 0.0
    if "embeddings" in method.NEEDS:
        seconds = sum(store.read_json(layout.ring_embeddings(r) / "manifest.json")["embed_seconds"] for r in rings)
    return {"selection_flops": flops, "embedding_seconds": seconds}


def _build_one(grid: Grid, method: ModuleType):
    deps = ["pool"] + (["query_embeddings"] if "queries" in method.NEEDS else [])

    @asset(name=f"scores_{method.NAME}", group_name="scores", partitions_def=grid.pools_def, deps=deps,
           kinds={"duckdb", "parquet"}, code_version=source_version(method, similarity),
           description=f"{method.NAME} scores for every example of a pool. {(method.__doc__ or '').strip()}")
    def scores_asset(context: AssetExecutionContext, storage: StorageResource, data: DataResource) -> MaterializeResult:
        layout = storage.layout()
        pool_size = context.partition_key
        rings = grid.rings_of(pool_size)
        inputs = scoring_inputs(layout, rings, method.NEEDS, data.seed)
        began = time.perf_counter()
        scores = method.score(inputs)
        seconds = time.perf_counter() - began
        path = store.write_parquet(scores, layout.scores(method.NAME, pool_size))
        store.refresh_scores_views(layout)
        n_queries = 0 if inputs.query_embeddings is None else len(inputs.query_embeddings)
        costs = method_selection_cost(layout, method, rings, len(scores), float(inputs.pool["total_tokens"].mean()),
                                      n_queries)
        return MaterializeResult(metadata={
            "examples": len(scores), "score_seconds": seconds, **costs,
            "score_columns": ", ".join(c for c in scores.columns if c not in ("example_id", "source")),
            "preview": MetadataValue.md(scores.head(5).to_markdown(index=False)),
            "path": MetadataValue.path(str(path)), "duckdb": MetadataValue.path(str(layout.scores_db)),
        })

    return scores_asset


def build(grid: Grid) -> list:
    return [_build_one(grid, method) for method in registry().values()]
