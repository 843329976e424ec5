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
    for name in ("rms_norm", "add_rms_norm", "silu_mul", "gelu_mul", "rotary_embedding"):
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


#: Our op -> the ipex.llm.functional function its impl calls.
IPEX_FUNCTION = {
    "rms_norm": "rms_norm",
    "fused_add_rms_norm": "add_rms_norm",
    "silu_and_mul": "silu_mul",
    "gelu_and_mul": "gelu_mul",
    "rotary_embedding": "rotary_embedding",
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", list(IPEX_FUNCTION))
def test_ipex_matches_native_on_the_op_samples(
    op_name: str, dtype: torch.dtype, counted: dict[str, Counting]
) -> None:
    """Every catalogue sample IPEX accepts (odd H, 3-D, strided rows, zero tokens; for rotary
    partial rotary, GPT-J pairs, (B, S) positions, int32 positions, a 16-bit cache, ...)."""
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
    assert counted[IPEX_FUNCTION[op_name]].calls > 0  # zero-token samples return early


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gated_activations_dispatch_to_ipex(
    dtype: torch.dtype, counted: dict[str, Counting]
) -> None:
    x = torch.randn(5, 2 * 1024, generator=torch.Generator().manual_seed(1)).mul(3).to(dtype)
    with ir_core.set_priority(silu_and_mul=["ipex"], gelu_and_mul=["ipex"]):
        assert ir_core.explain("silu_and_mul", x).provider == "ipex"
        silu = ir_core.ops.silu_and_mul(x)
        gelu = ir_core.ops.gelu_and_mul(x, approximate="tanh")
    assert counted["silu_mul"].calls == 1 and counted["gelu_mul"].calls == 1
    _assert_close("silu_and_mul", silu, ir_core.get_op("silu_and_mul").native(x))
    _assert_close("gelu_and_mul", gelu, ir_core.get_op("gelu_and_mul").native(x, "tanh"))


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("rot_dim", [128, 64], ids=["full", "partial"])
def test_rotary_dispatches_to_ipex(
    is_neox: bool, rot_dim: int, counted: dict[str, Counting]
) -> None:
    from ir_core.catalogue.rotary import cos_sin_cache

    g = torch.Generator().manual_seed(2)
    positions = torch.randint(0, 4096, (7,), generator=g)
    q = torch.randn(7, 8 * 128, generator=g).to(torch.bfloat16)
    k = torch.randn(7, 2 * 128, generator=g).to(torch.bfloat16)
    cache = cos_sin_cache(4096, rot_dim)
    q0, k0 = q.clone(), k.clone()
    args = (positions, q, k, 128, cache, is_neox)
    with ir_core.set_priority(rotary_embedding=["ipex"]):
        assert ir_core.explain("rotary_embedding", *args).provider == "ipex"
        out_q, out_k = ir_core.ops.rotary_embedding(*args)
    assert counted["rotary_embedding"].calls == 1
    assert torch.equal(q, q0) and torch.equal(k, k0), "IPEX rotates in place: inputs written"
    native = ir_core.get_op("rotary_embedding").native(*args)
    _assert_close("rotary_embedding", out_q, native[0])
    _assert_close("rotary_embedding", out_k, native[1])


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
