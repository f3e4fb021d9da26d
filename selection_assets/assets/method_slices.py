"""One vertical slice per method: its scores (per pool size), selection, fine-tuned checkpoints and
eval report (per cell), with their checks, as one Definitions. Every key is prefixed by the
method's name (`rds_plus/scores`, `rds_plus/selection`, ...: `labels.method_key`), so the UI folds
a method's slice together and the code that builds a key is found by its stage's name. Adding a
method is a registry entry (core/methods); its slice follows from it."""

from dagster import Definitions

from selection_assets.assets.reports import build_eval_report
from selection_assets.assets.scores import build_scores
from selection_assets.assets.selections import build_selection
from selection_assets.assets.training import build_finetuned
from selection_assets.core.methods import MethodSpec
from selection_assets.orchestration.partitions import Grid


def method_slice(grid: Grid, spec: MethodSpec) -> Definitions:
    """`spec`'s own assets over `grid`, in lineage order."""
    return Definitions(assets=[build_scores(grid, spec), build_selection(grid, spec), build_finetuned(grid, spec),
                               build_eval_report(grid, spec)])
