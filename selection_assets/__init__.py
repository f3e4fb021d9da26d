"""selection_assets: instruction-data selection methods as a lineage of Dagster assets.

Pure compute lives in `selection_assets.core` and `selection_assets.world` (no Dagster import);
`selection_assets.assets` wires it into software-defined assets; `selection_assets.definitions`
holds the one Definitions object.
"""
