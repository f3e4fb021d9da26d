"""The registry's method descriptions are typed: parameters are each module's `Params`, checked
when a spec is built, and what a method reads is a `Need`."""

import pytest

from selection_assets.core.methods import MethodSpec, Need, perplexity, random, registry


def test_params_refuse_a_value_their_type_does_not_list():
    assert perplexity.Params(variant="mid").as_kwargs() == {"variant": "mid", "loss": "answer"}
    with pytest.raises(ValueError, match=r"variant='middle': one of 'top', 'mid', 'bottom'"):
        perplexity.Params(variant="middle")


def test_a_spec_takes_only_its_own_module_params():
    with pytest.raises(TypeError, match="params must be selection_assets.core.methods.perplexity.Params"):
        MethodSpec(name="broken", module=perplexity, summary="", reference="")
    with pytest.raises(TypeError, match="random takes no params"):
        MethodSpec(name="broken", module=random, summary="", reference="", params=perplexity.Params(variant="top"))


def test_every_registered_method_reads_only_known_needs():
    for spec in registry().values():
        assert all(isinstance(need, Need) for need in spec.needs), spec.name

