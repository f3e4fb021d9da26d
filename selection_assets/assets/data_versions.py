"""Content data versions: an asset's Dagster data version as the digest of the files it wrote, so a
rerun that writes the same bytes leaves its children fresh (operations.staleness)."""

import hashlib
import json

from dagster import DataVersion

from selection_assets.core import store

def content_version(*paths, record: dict | None = None) -> DataVersion:
    """The data version of an asset that wrote `paths` (files or directories) and `record` (a JSON
    record, its measured seconds left out): their content digest (one path alone: its own)."""
    digests = [store.content_digest(path) for path in paths]
    if record is not None:
        text = json.dumps(store.without_durations(record), sort_keys=True, default=str)
        digests.append(hashlib.sha256(text.encode()).hexdigest())
    return DataVersion(digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest())
