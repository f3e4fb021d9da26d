"""A user's model is read from safetensors only unless the user opts in (core/weights.py): pickled
weights can run code when loaded. Opting in changes which file is read, never the numbers."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from selection_assets.core import weights
from selection_assets.core.preflight import base_model_problem


@pytest.fixture(scope="module")
def saved_both_ways(tmp_path_factory):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    model = LlamaForCausalLM(config)
    root = tmp_path_factory.mktemp("weights")
    model.save_pretrained(root / "safe")
    config.save_pretrained(root / "pickled")  # the same weights as a pickle, as older checkpoints ship them
    torch.save(model.state_dict(), root / "pickled" / "pytorch_model.bin")
    return root / "safe", root / "pickled"


def test_pickled_weights_are_refused_naming_the_setting_that_admits_them(saved_both_ways):
    _, pickled = saved_both_ways
    with pytest.raises(OSError, match="SELECTION_ASSETS_ALLOW_PICKLE_WEIGHTS=1"):
        weights.from_pretrained(AutoModelForCausalLM, str(pickled))
    assert "pickled weights only" in base_model_problem(str(pickled))
    assert base_model_problem(str(pickled), allow_pickle=True) is None


def test_the_same_weights_load_equal_from_either_file(saved_both_ways):
    """Why DataResource.allow_pickle_weights is output-neutral."""
    safe, pickled = saved_both_ways
    from_safe = weights.from_pretrained(AutoModelForCausalLM, str(safe)).state_dict()
    from_pickle = weights.from_pretrained(AutoModelForCausalLM, str(pickled), allow_pickle=True).state_dict()
    assert from_safe.keys() == from_pickle.keys()
    assert all(torch.equal(from_safe[name], from_pickle[name]) for name in from_safe)
