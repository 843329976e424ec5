"""Oink's real kernels on a Blackwell GPU against native (marked ``gpu``)."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op_name", ["rms_norm", "fused_add_rms_norm"])
def test_oink_matches_native(op_name: str, dtype: torch.dtype) -> None:
    op = ir_core.get_op(op_name)
    impl = op.impls["oink"]
    ok, reason = impl.status()
    if not ok:
        pytest.skip(f"oink {op_name} unavailable: {reason}")
    admitted = 0
    for sample in op.sample_inputs(dtype, "cuda"):
        args = op.bind(sample.args, sample.kwargs)
        if impl.supports_args(*args):
            admitted += 1
            assert_matches_native(op, impl.fn, ir_core.Sample(args, label=sample.label))
    x = torch.randn(64, 7168, dtype=dtype, device="cuda")  # DeepSeek-V3 hidden size
    w = torch.randn(7168, dtype=dtype, device="cuda")
    args = (x, w, 1e-6) if op_name == "rms_norm" else (x, torch.randn_like(x), w, 1e-6)
    assert impl.supports_args(*args)
    assert_matches_native(op, impl.fn, ir_core.Sample(args, label="dsv3"))


@pytest.mark.gpu
def test_dispatch_picks_oink_on_blackwell() -> None:
    x = torch.randn(8, 4096, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    with ir_core.set_priority(rms_norm=["oink"]):
        assert ir_core.explain("rms_norm", x, w, 1e-6).provider == "oink"
