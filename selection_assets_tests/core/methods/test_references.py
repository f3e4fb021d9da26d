"""Every registered method names the public code it follows, and the README's method table is the
one rendered from the registry (so it cannot drift from the code)."""

from pathlib import Path

import pytest

from selection_assets.core.methods import registry
from selection_assets.core.methods.references import PROVENANCE, method_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_method_has_provenance_and_no_stale_entries():
    assert set(PROVENANCE) == set(registry())
    assert all(entry.code and entry.departures and entry.cost for entry in PROVENANCE.values())


def test_the_readme_method_table_is_the_rendered_one():
    assert method_table(registry()) in README.read_text(), (
        "README's method table is stale: run `selection-assets results --section methods`")


def test_a_method_without_provenance_is_named():
    methods = dict(registry())
    methods["brand_new"] = methods["random"]
    with pytest.raises(KeyError, match="brand_new"):
        method_table(methods)
