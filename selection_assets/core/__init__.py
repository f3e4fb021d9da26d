"""Pure compute for selection_assets: numpy/torch/duckdb code with no Dagster import."""
