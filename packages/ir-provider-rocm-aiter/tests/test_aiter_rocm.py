"""AITER's real kernels against native, on an AMD GPU (marked ``rocm``; skipped elsewhere)."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_rocm_aiter import aiter_api, aiter_norm
from ir_provider_rocm_aiter.plugin import IMPLS


@pytest.mark.rocm
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op_name", sorted(IMPLS))
def test_aiter_matches_native_on_the_op_samples(op_name: str, dtype: torch.dtype) -> None:
    op = ir_core.get_op(op_name)
    impl = op.impls["aiter"]
    ok, reason = impl.status()
    if not ok:
        pytest.skip(f"aiter {op_name} unavailable: {reason}")
    admitted = 0
    for sample in op.sample_inputs(dtype, "cuda"):
        args = op.bind(sample.args, sample.kwargs)
        if impl.supports_args(*args):
            admitted += 1
            assert_matches_native(op, impl.fn, ir_core.Sample(args, label=sample.label))
    if dtype == torch.float32 and admitted == 0:
        pytest.skip(f"aiter {op_name} takes no fp32 sample")
    assert admitted > 0


@pytest.mark.rocm
def test_dispatch_picks_aiter_on_rocm() -> None:
    x = torch.randn(4, 4096, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(4096, dtype=torch.bfloat16, device="cuda")
    with ir_core.set_priority(rms_norm=["aiter"]):
        assert ir_core.explain("rms_norm", x, w, 1e-6).provider == "aiter"
        out = ir_core.ops.rms_norm(x, w, 1e-6)
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, 1e-6))


@pytest.mark.rocm
def test_probed_gemma_matches_the_installed_release() -> None:
    api = aiter_api.loaded_api()
    assert api is not None
    assert api.gemma_rmsnorm is aiter_api.at_least(api.version, (0, 1, 17))
    x = torch.empty(2, 8193, dtype=torch.bfloat16, device="cuda")
    w = torch.empty(8193, dtype=torch.bfloat16, device="cuda")
    assert aiter_norm.rms_norm_supports(x, w, 1e-6, 1.0) is api.opus
