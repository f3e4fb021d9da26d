"""Every registered method names the public code it follows, and the documented method table is the
one rendered from the registry (so it cannot drift from the code)."""

from pathlib import Path

import pytest

from selection_assets.core.methods import registry
from selection_assets.core.methods.references import method_table, provenance
from selection_assets.reporting.results_section import document_holding

REPO = Path(__file__).resolve().parents[3]


def test_every_method_has_provenance_and_no_stale_entries():
    assert set(provenance()) == set(registry())
    assert all(entry.code and entry.departures and entry.cost for entry in provenance().values())


def test_the_documented_method_table_is_the_rendered_one():
    assert method_table(registry()) in document_holding(REPO, "methods").read_text(), (
        "the method table is stale: run `selection-assets results --section methods`")


def test_a_method_without_provenance_is_named():
    methods = dict(registry())
    methods["brand_new"] = methods["random"]
    with pytest.raises(KeyError, match="brand_new"):
        method_table(methods)
