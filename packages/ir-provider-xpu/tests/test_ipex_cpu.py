"""IPEX's real CPU kernels behind the ``ipex`` provider (needs IPEX matching the torch).

``nox -s ipex`` runs these in an environment with torch 2.8 and IPEX 2.8; elsewhere they are
skipped with the version pair as the reason. Each test proves IPEX ran: dispatch explains
``ipex`` as the chosen provider, and a counting wrapper around the IPEX function (which still
calls the real one) sees the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native, mismatch
from ir_provider_xpu import ipex_norm

EPS = 1e-6
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


class Counting:
    """Wraps a vendor function: counts calls, then calls the real function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted(ipex: ipex_norm.IpexApi, monkeypatch: pytest.MonkeyPatch) -> dict[str, Counting]:
    """Counting wrappers installed on ipex.llm.functional for the duration of a test."""
    wrappers = {}
    for name in ("rms_norm", "add_rms_norm"):
        wrappers[name] = Counting(getattr(ipex.functional, name))
        monkeypatch.setattr(ipex.functional, name, wrappers[name])
    return wrappers


def _inputs(dtype: torch.dtype, *shape: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    h = shape[-1]
    x = torch.randn(shape, generator=g).mul(2).to(dtype)
    r = torch.randn(shape, generator=g).to(dtype)
    w = torch.randn(h, generator=g).mul(0.5).add(1).to(dtype)
    return x, r, w


def _assert_close(op: str, actual: torch.Tensor, expected: torch.Tensor) -> None:
    problem = mismatch(ir_core.get_op(op), actual, expected)
    assert problem is None, problem


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rms_norm_dispatches_to_ipex_and_matches_native(
    dtype: torch.dtype, counted: dict[str, Counting]
) -> None:
    x, _, w = _inputs(dtype, 7, 4096)
    with ir_core.set_priority(rms_norm=["ipex"]):
        assert ir_core.explain("rms_norm", x, w, EPS).provider == "ipex"
        out = ir_core.ops.rms_norm(x, w, EPS)
    assert counted["rms_norm"].calls == 1
    _assert_close("rms_norm", out, ir_core.get_op("rms_norm").native(x, w, EPS))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_add_dispatches_to_ipex_and_matches_native(
    dtype: torch.dtype, counted: dict[str, Counting]
) -> None:
    x, r, w = _inputs(dtype, 2, 5, 4096)
    x0, r0 = x.clone(), r.clone()
    with ir_core.set_priority(fused_add_rms_norm=["ipex"]):
        assert ir_core.explain("fused_add_rms_norm", x, r, w, EPS).provider == "ipex"
        out, residual_out = ir_core.ops.fused_add_rms_norm(x, r, w, EPS)
    assert counted["add_rms_norm"].calls == 1
    assert torch.equal(x, x0) and torch.equal(r, r0), "an input was written"
    native_out, native_res = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    _assert_close("fused_add_rms_norm", out, native_out)
    # residual_out is one rounding of the fp32 sum: equal, not just close
    assert torch.equal(residual_out, native_res)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", ["rms_norm", "fused_add_rms_norm"])
def test_ipex_matches_native_on_the_op_samples(
    op_name: str, dtype: torch.dtype, counted: dict[str, Counting]
) -> None:
    """Every catalogue sample IPEX accepts (odd H, 3-D, strided rows, zero tokens, ...)."""
    op = ir_core.get_op(op_name)
    impl = op.impls["ipex"]
    assert impl.status() == (True, "")
    admitted = 0
    for sample in op.sample_inputs(dtype, "cpu"):
        args = op.bind(sample.args, sample.kwargs)
        if impl.supports_args(*args):
            admitted += 1
            assert_matches_native(op, impl.fn, ir_core.Sample(args, label=sample.label))
    assert admitted >= 5
    kernel = counted["rms_norm" if op_name == "rms_norm" else "add_rms_norm"]
    assert kernel.calls > 0  # zero-token samples return early, the rest reach IPEX


def test_what_ipex_declines_goes_to_native(ipex: ipex_norm.IpexApi) -> None:
    x, _, w = _inputs(torch.bfloat16, 3, 64)
    declined = [
        ((x, w, EPS), {"weight_bias": 1.0}),  # Gemma: no IPEX variant
        ((x, w, EPS), {"variance_size": 32}),
        ((x, w.float(), EPS), {}),  # fp32 weight with bf16 x
        ((x, None, EPS), {}),
    ]
    with ir_core.set_priority(rms_norm=["ipex"]):
        for args, kwargs in declined:
            explanation = ir_core.explain("rms_norm", *args, **kwargs)
            assert explanation.provider == "native", kwargs
            assert ("ipex", "supports_args declined these arguments") in explanation.skipped


def test_ipex_version_pairs_with_torch(ipex: ipex_norm.IpexApi) -> None:
    ipex_version, torch_version = ipex_norm.installed_versions()
    assert ipex_version == ipex.version
    assert ipex_norm.version_mismatch(ipex.version, torch_version) is None
