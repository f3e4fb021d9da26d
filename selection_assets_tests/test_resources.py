"""How the compute resource resolves its "auto" settings for the device a step runs on."""

import pytest

from selection_assets.resources import ComputeResource


@pytest.mark.parametrize("device, embed_compile, compiled", [
    ("cpu", None, False), ("cuda", None, True), ("cuda:1", None, True), ("mps", None, False),
    ("cuda", False, False), ("cpu", True, True)])
def test_embedding_compiles_on_cuda_unless_told_otherwise(device, embed_compile, compiled):
    compute = ComputeResource(device=device, embed_compile=embed_compile)
    assert compute.resolved_compile() is compiled
    assert compute.embedding_numerics()["compiled"] is compiled


def test_embedding_precision_is_bfloat16_on_cuda_and_float32_elsewhere_unless_told():
    assert ComputeResource(device="cuda").embedding_numerics() == {"dtype": "bfloat16", "compiled": True}
    assert ComputeResource(device="cpu").embedding_numerics() == {"dtype": "float32", "compiled": False}
    assert ComputeResource(device="cuda", embed_dtype="float32").embedding_numerics()["dtype"] == "float32"
