"""Adding a method is adding one module: a toy method written to a temporary directory on the
methods package's path is registered, gets its own slice of the lineage, its row in the method
table, its paper's claims and its place in the comparison, with nothing else edited."""

import sys

import pytest
from dagster import AssetKey

import selection_assets.core.methods as methods_package
from selection_assets.assets.method_slices import method_slice
from selection_assets.core.methods import choose_methods, registry
from selection_assets.core.methods.references import head_to_head_rivals, method_table, paper_claims
from selection_assets.definitions import build_definitions
from selection_assets.orchestration.partitions import Grid

TOY = '''"""A toy method: the shortest conversations first."""

import pandas as pd

from selection_assets.core.methods import MethodSpec, Provenance, ScoringInputs, Shortlist, base_frame, top_k


def score(inputs: ScoringInputs) -> pd.DataFrame:
    return base_frame(inputs, -inputs.pool["total_tokens"].to_numpy())


SHORTLIST = Shortlist()


def select(scores: pd.DataFrame, budget: int) -> pd.DataFrame:
    return top_k(scores, budget)


SPECS = (MethodSpec(name="toy_shortest", summary="the shortest conversations first", reference="a test"),)
PROVENANCE = {"toy_shortest": Provenance(code="none", departures="none", cost="0")}
CLAIMS = {"toy_shortest": "a toy paper finds the shortest first beats random"}
OUTPERFORMS = {"toy_shortest": ("random_balanced",)}
'''
GRID = Grid((100, 200), (50,))


@pytest.fixture
def toy_method(tmp_path, monkeypatch):
    (tmp_path / "toy_shortest.py").write_text(TOY)
    monkeypatch.setattr(methods_package, "__path__", [*methods_package.__path__, str(tmp_path)])
    methods_package._registry.cache_clear()
    yield registry()["toy_shortest"]
    sys.modules.pop("selection_assets.core.methods.toy_shortest", None)
    monkeypatch.undo()
    methods_package._registry.cache_clear()


def test_a_new_module_is_a_registered_method_with_its_slice_table_row_and_comparison_place(toy_method):
    assert toy_method.module.__name__ == "selection_assets.core.methods.toy_shortest"
    names = list(registry())
    assert names[:2] == ["random", "random_balanced"] and "toy_shortest" in names  # baselines first
    assert "toy_shortest" in choose_methods("all")
    assert {key.to_user_string() for asset in method_slice(GRID, toy_method).assets for key in asset.keys} == {
        "toy_shortest/scores", "toy_shortest/selection", "toy_shortest/finetuned", "toy_shortest/eval_report"}
    assert "| `toy_shortest` | the shortest conversations first | a test | none | none | 0 |" in method_table(registry())
    # the paper's claims: set beside a finding against random, and each rival tested directly
    assert paper_claims()["toy_shortest"].startswith("a toy paper")
    assert head_to_head_rivals()["toy_shortest"] == ("random_balanced",)
    graph = build_definitions(GRID, methods=["random", "toy_shortest"]).resolve_asset_graph()
    assert AssetKey(["toy_shortest", "eval_report"]) in graph.get(AssetKey("comparison_report")).parent_keys


def test_without_the_module_the_method_is_gone_and_a_name_registered_twice_is_refused(toy_method, tmp_path):
    (tmp_path / "toy_twice.py").write_text(TOY)  # a second module declaring the same name
    methods_package._registry.cache_clear()
    with pytest.raises(TypeError, match="registered twice: toy_shortest"):
        registry()
    (tmp_path / "toy_twice.py").unlink()
    sys.modules.pop("selection_assets.core.methods.toy_twice", None)
    methods_package._registry.cache_clear()
    assert "toy_shortest" in registry()
