"""Both providers' real kernels on an Intel GPU against native (marked ``xpu``)."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_xpu.plugin import IPEX_NORMS, XPU_KERNELS_IMPLS

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


CASES = [("xpu_kernels", op) for op in sorted(XPU_KERNELS_IMPLS)] + [
    ("ipex", op) for op in sorted(IPEX_NORMS)
]


@pytest.mark.xpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("provider", "op_name"), CASES)
def test_matches_native_on_xpu(op_name: str, dtype: torch.dtype, provider: str) -> None:
    op = ir_core.get_op(op_name)
    impl = op.impls[provider]
    ok, reason = impl.status()
    if not ok:
        pytest.skip(f"{provider} unavailable: {reason}")
    for sample in op.sample_inputs(dtype, "xpu"):
        args = op.bind(sample.args, sample.kwargs)
        if impl.supports_args(*args):
            assert_matches_native(op, impl.fn, ir_core.Sample(args, label=sample.label))


@pytest.mark.xpu
def test_xpu_platform_prefers_xpu_kernels() -> None:
    x = torch.randn(4, 4096, dtype=torch.bfloat16, device="xpu")
    w = torch.randn(4096, dtype=torch.bfloat16, device="xpu")
    order = ir_core.explain("rms_norm", x, w, 1e-6).priority
    assert order.index("xpu_kernels") < order.index("ipex") < order.index("native")
