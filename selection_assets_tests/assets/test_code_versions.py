"""Code versions are derived (assets/versions.py), never listed, and held against what really runs.

- Comments, docstrings and layout change nothing; any change of code does.
- The oracle: while the small lineage materialises, a trace records every project function each
  asset runs and every resource setting it reads (code_trace.py); each must be in that asset's
  derived reach.
- A change to tokenisation, made in a copy of the package, changes exactly the versions of the
  assets that tokenise conversations, and agrees with the trace on which ones ran that code.
- Settings enter the version with their values; those declared output-neutral do not, and each
  declaration names the test that shows the bytes do not move.
"""

import json
import shutil
import subprocess
import sys

import pytest
from dagster import AssetKey

from selection_assets.assets import versions
from selection_assets.definitions import build_assets
from selection_assets.orchestration.partitions import Grid
from selection_assets.resources import ComputeResource, DataResource, StorageResource, TrainResource, WorldResource
from selection_assets_tests.conftest import LINEAGE_METHODS, REPO, TINY_GRID

FUNCTION = '''
def top(scores, budget):
    """Highest first."""
    return scores[:budget]  # ties: earlier row first
'''


def test_comments_docstrings_and_layout_keep_the_version_and_code_changes_it():
    same = FUNCTION.replace('    """Highest first."""\n', "").replace("  # ties: earlier row first", "")
    same = same.replace("scores[:budget]", "scores[ : budget ]") + "\n# a trailing comment\n"
    assert versions.behaviour(same) == versions.behaviour(FUNCTION)
    assert versions.behaviour(FUNCTION.replace("[:budget]", "[-budget:]")) != versions.behaviour(FUNCTION)
    assert versions.behaviour(FUNCTION.replace("budget]", "budget + 0]")) != versions.behaviour(FUNCTION)


def _assets(resources: dict | None = None, grid: Grid = Grid((100, 200), (50,))) -> dict[str, object]:
    return {key.to_user_string(): a for a in build_assets(grid, resources) for key in a.keys}


def _version(assets: dict, key: str) -> str:
    return assets[key].get_asset_spec(AssetKey.from_user_string(key)).code_version


def _reach(assets: dict, key: str) -> versions.Reach:
    return versions.reach(versions.compute_function(assets[key]))


def test_a_method_reaches_its_own_procedure_and_no_other_methods():
    assets = _assets()
    rds = _reach(assets, "rds_plus/scores").code
    assert "selection_assets.core.methods.rds:score" in rds and "selection_assets.core.similarity:group_max_scores" in rds
    assert not [unit for unit in rds if ".methods.perplexity" in unit or ".methods.diversity" in unit]
    # a method's needs are read through the input table entry by entry: no other input's loader
    assert {unit for unit in rds if unit.startswith("selection_assets.assets.score_inputs:") and unit.endswith(".load")} == {
        "selection_assets.assets.score_inputs:PoolEmbeddings.load", "selection_assets.assets.score_inputs:QueryEmbeddings.load"}
    # a branch on the method's own needs is walked only where it goes: random reads no embeddings
    random = _reach(assets, "random/scores")
    assert "selection_assets.core.pool:embedding_blocks" not in random.code
    assert not [unit for unit in random.code if "score_inputs" in unit]
    assert (TrainResource, "epochs") not in random.settings  # only a method that fine-tunes reads the recipe
    assert (TrainResource, "epochs") in _reach(assets, "kcenter_diverseevol/scores").settings
    # the encoder space's embeddings never reach the base LM's tokenisation
    assert "selection_assets.core.tokenize:encode_conversations" not in _reach(assets, "ring_embeddings_encoder").code


def test_settings_enter_the_version_with_their_values_and_output_neutral_ones_do_not():
    defaults = {"storage": StorageResource(root="/a"), "compute": ComputeResource(), "data": DataResource(),
                "world": WorldResource(), "training": TrainResource()}
    before = _assets(defaults)
    recipe = _assets({**defaults, "training": TrainResource(epochs=2.0)})
    changed = {key for key in before if _version(before, key) != _version(recipe, key)}
    assert {"random/finetuned", "rds_plus/finetuned", "kcenter_diverseevol/scores"} <= changed
    assert not changed & {"ring_records", "ring_embeddings_position_weighted", "random/selection", "less_warmup",
                          "rds_plus/scores", "random/eval_report", "comparison_report"}
    assert json.loads(recipe["random/finetuned"].get_asset_spec(AssetKey(["random", "finetuned"]))
                      .metadata["settings"].value["TrainResource.epochs"]) == 2.0
    neutral = _assets({**defaults, "storage": StorageResource(root="/elsewhere"),
                       "compute": ComputeResource(cpu_workers=1, processes=2, embedding_memory_mb=64),
                       "data": DataResource(allow_pickle_weights=True)})
    assert {key: _version(neutral, key) for key in neutral} == {key: _version(before, key) for key in before}


def test_each_output_neutral_setting_names_the_test_that_shows_its_bytes_do_not_move():
    declared = {(cls.__name__, name): test for cls in (StorageResource, ComputeResource, DataResource, WorldResource,
                                                       TrainResource)
                for name, test in versions.output_neutral_fields(cls).items()}
    assert {name for _, name in declared} == {"root", "cpu_workers", "processes", "embedding_memory_mb",
                                          "allow_pickle_weights"}
    for setting, test in declared.items():
        path, _, name = test.partition("::")
        assert (REPO / path).exists() and f"\ndef {name}(" in (REPO / path).read_text(), (setting, test)


def test_everything_an_asset_runs_and_every_setting_it_reads_is_in_its_derived_version(traced_lineage):
    *_, resources, _, trace = traced_lineage
    assets = _assets(resources, TINY_GRID)
    assert set(trace.functions) >= {f"{method}/{stage}" for method in LINEAGE_METHODS
                                    for stage in ("scores", "selection", "finetuned", "eval_report")}
    missed = {}
    for key, ran in trace.functions.items():
        found = _reach(assets, key)
        uncovered = {f"{module}:{name}" for module, name in ran
                     if name != "<module>" and module != "selection_assets.orchestration.log_filters"  # a logging filter
                     and not found.covers(module, name)}
        unread = {setting for setting in trace.settings[key]
                  if setting not in {(cls.__name__, name) for cls, name in found.settings}}
        if uncovered or unread:
            missed[key] = (sorted(uncovered), sorted(unread))
    assert missed == {}


TRUNCATION = ("    return out if max_length is None else truncate(out, max_length)\n",
              "    return out if max_length is None else truncate(out, max_length - 1)\n")
PRINT_VERSIONS = ("import json, warnings; warnings.filterwarnings('ignore'); "
                  "from selection_assets.definitions import build_assets; from selection_assets.orchestration.partitions import Grid; "
                  "print(json.dumps({k.to_user_string(): a.get_asset_spec(k).code_version "
                  "for a in build_assets(Grid((100, 200), (50,))) for k in a.keys}))")


def _versions_of_copy(tmp_path, name: str, edits: dict[str, tuple[str, str]] | None = None) -> dict:
    """The code version of every asset, built in a fresh process from a copy of the package with
    `edits` made (file inside the package -> (old text, new text))."""
    copy = tmp_path / name
    shutil.copytree(REPO / "selection_assets", copy / "selection_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for file, (old, new) in (edits or {}).items():
        path = copy / "selection_assets" / file
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
    result = subprocess.run([sys.executable, "-c", PRINT_VERSIONS], cwd=copy, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(copy), "HOME": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def versions_before(tmp_path_factory) -> dict[str, str]:
    return _versions_of_copy(tmp_path_factory.mktemp("versions"), "before")


# the assets that tokenise conversations with encode_conversations themselves (the rest read its
# effects as data): token counts, the base-LM embeddings and their queries, answer losses, LESS's
# warm-up and features, every fine-tune and evaluation, DiverseEvol's fine-tuning rounds and the
# pre-experienced IFD's warm-up
TOKENISING = ({"ring_token_counts", "ring_answer_losses", "less_warmup", "eval_report_base", "kcenter_diverseevol/scores",
               "ifd_pre_experienced/scores"}
              | {f"{kind}_embeddings_{space}" for kind in ("ring", "query")
                 for space in ("position_weighted", "mean", "last_token", "less_features")})


def _methods(versions_by_key: dict) -> set[str]:
    return {key.split("/")[0] for key in versions_by_key if "/" in key}


def test_a_tokenisation_change_changes_exactly_the_versions_of_what_tokenises(tmp_path, versions_before,
                                                                               traced_lineage):
    trace = traced_lineage[4]
    after = _versions_of_copy(tmp_path, "after", {"core/tokenize.py": TRUNCATION})
    # built in two processes (two hash seeds): whatever the edit does not reach keeps its version
    changed = {key for key in versions_before if after[key] != versions_before[key]}
    expected = TOKENISING | {f"{m}/{stage}" for m in _methods(after) for stage in ("finetuned", "eval_report")}
    assert changed == expected, (sorted(changed - expected), sorted(expected - changed))
    # and the trace agrees: of the assets that ran, those that ran encode_conversations changed
    ran_it = {key for key, ran in trace.functions.items()
              if ("selection_assets.core.tokenize", "encode_conversations") in ran}
    assert ran_it == changed & set(trace.functions)


def test_a_shipped_harness_task_is_part_of_every_evaluation_and_an_unread_constant_of_nothing(tmp_path,
                                                                                               versions_before):
    after = _versions_of_copy(tmp_path, "after", {
        "harness_tasks/exact_answer.yaml": ("max_gen_toks: 24", "max_gen_toks: 25"),
        "core/methods/random.py": ("SHORTLIST = Shortlist()", "UNREAD = True  # nothing reads it\nSHORTLIST = Shortlist()")})
    changed = {key for key in versions_before if after[key] != versions_before[key]}
    assert changed == {"eval_report_base"} | {f"{m}/eval_report" for m in _methods(after)}
