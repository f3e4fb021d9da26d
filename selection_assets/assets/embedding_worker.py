"""One process of a ring's embedding spread over `accelerate launch` (ComputeResource.processes > 1).

The asset's step writes the job (its space, settings and ring) to a work folder and launches this
module once per process; each process embeds its share of the ring's shards with
`embeddings.embed_ring_shards`, the function the step runs itself in one process, on the device
accelerate gives it, and writes its counts back to the work folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from selection_assets.assets.embeddings import SPACES, EmbeddingSpace, embed_ring_shards
from selection_assets.core import store
from selection_assets.core.keys import Ring
from selection_assets.core.store import Layout
from selection_assets.resources import ComputeResource, DataResource

JOB_FILE = "job.json"


def command(work: Path, layout: Layout, compute: ComputeResource, data: DataResource, space: EmbeddingSpace,
            ring: Ring) -> list[str]:
    """The `accelerate launch` command that embeds `ring` in `space` over `compute.processes`
    processes, its job written to `work` (where each process also leaves its counts)."""
    job = {"root": str(layout.root), "compute": compute.model_dump(), "data": data.model_dump(), "space": space.name,
           "ring": ring.key}
    store.write_json(job, work / JOB_FILE)
    return ["accelerate", "launch", "--num_processes", str(compute.processes),
            *(["--cpu"] if compute.resolved_device() == "cpu" else []), "-m", __name__, str(work)]


def rank_stats(work: Path) -> list[dict]:
    """The counts each process left in `work`, by rank."""
    return [store.read_json(path) for path in sorted(work.glob("rank-*.json"))]


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
