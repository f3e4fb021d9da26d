"""One process of a ring's embedding spread over `accelerate launch` (ComputeResource.processes > 1).

The asset's step (`embeddings._embed_with_accelerate`) writes the job (its space, settings and ring)
to a work folder and launches this module once per process; each process embeds its share of the
ring's shards with `embeddings.embed_ring_shards`, the function the step runs itself in one process,
on the device accelerate gives it, and writes its counts back to the work folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from selection_assets.assets.embeddings import JOB_FILE, SPACES, embed_ring_shards
from selection_assets.core import store
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.resources import ComputeResource, DataResource


def main(work: Path) -> None:
    """Embed this process's share of the job in `work` on the device accelerate assigned it."""
    from accelerate import PartialState

    state = PartialState()
    job = store.read_json(work / JOB_FILE)
    compute = ComputeResource(**{**job["compute"], "device": str(state.device)})
    stats = embed_ring_shards(Layout(job["root"]), compute, DataResource(**job["data"]), SPACES[job["space"]],
                              Ring.parse(job["ring"]), rank=state.process_index, world_size=state.num_processes)
    store.write_json(stats, work / f"rank-{state.process_index:03d}.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
