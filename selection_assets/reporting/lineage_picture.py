"""The lineage picture (docs/lineage.md), drawn from the asset graph so it cannot drift: a Mermaid flowchart
with one box per stage job (in run order) and one node per shared asset; each method's slice is one
chain of `<method>/...` nodes standing for every registered method."""

from __future__ import annotations

from dagster import AssetKey

from selection_assets.orchestration.operations import (CELLS_JOB, INPUTS_JOB, JOB_DESCRIPTIONS, POOLS_JOB, REPORTS_JOB, RINGS_JOB,
                                         Stages)

PARTITIONED_BY = {INPUTS_JOB: "unpartitioned", RINGS_JOB: "per ring of source positions",
                  POOLS_JOB: "per pool size", CELLS_JOB: "per pool size x budget",
                  REPORTS_JOB: "unpartitioned, over every cell"}


def _node(key: AssetKey, methods: set[str]) -> str:
    """The picture's name for `key`: a method's asset stands for its stage in every method."""
    path = key.path
    return f"<method>/{path[-1]}" if len(path) == 2 and path[0] in methods else key.to_user_string()


def _node_id(name: str) -> str:
    return name.replace("<method>/", "method_").replace("/", "_")


def lineage_mermaid(stages: Stages, methods: set[str]) -> str:
    """A Mermaid flowchart of `stages` (built over every method in `methods`), stage jobs as boxes."""
    names = {key: _node(key, methods) for key in stages.keys}
    lines = ["```mermaid", "flowchart LR"]
    for job in JOB_DESCRIPTIONS:
        members = list(dict.fromkeys(names[k] for k in stages.keys if stages.job_of[k] == job))
        lines.append(f'  subgraph {job}["{job}: {PARTITIONED_BY[job]}"]')
        lines += [f'    {_node_id(name)}["{name.replace("<", "&lt;").replace(">", "&gt;")}"]' for name in members]
        lines.append("  end")
    edges = dict.fromkeys((names[parent], names[key]) for key in stages.keys for parent in sorted(
        stages.parents[key], key=AssetKey.to_user_string) if parent in names and names[parent] != names[key])
    lines += [f"  {_node_id(parent)} --> {_node_id(child)}" for parent, child in edges]
    lines.append("```")
    count = len(methods)
    return "\n".join(lines) + (f"\n\n`<method>` stands for each of the {count} registered methods (the method table "
                               "below); a method reads only the embedding space and inputs it needs.\n")
