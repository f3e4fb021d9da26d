"""Dagster wiring, one module per lineage stage. Each module's `build(grid)` returns its assets;
the compute itself lives in `selection_assets.core` and `selection_assets.world`."""
