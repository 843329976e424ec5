"""Gated activations, rotary embedding and fp8 quant ops of ``xpu_kernels`` and ``ipex``,
against the recorders of ``recording_xpu`` (vllm-xpu-kernels' schemas and arithmetic, IPEX's
CPU functions): what the vendors receive, what is declined and why, results against native."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from recording_xpu import FP8, RecordingIpexFunctional, RecordingXpuOps

import ir_core
from ir_core.catalogue.rotary import cos_sin_cache
from ir_core.testing import assert_matches_native
from ir_provider_xpu import ipex_ops, xpu_kernels_norm, xpu_kernels_ops, xpu_kernels_quant

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
KERNELS = xpu_kernels_norm.probe(RecordingXpuOps().ops)


def _t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(shape).to(dtype)


def _e(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


def _matches(op_name: str, dtype: torch.dtype, supported: Callable[..., bool], call) -> int:
    op = ir_core.get_op(op_name)
    admitted = 0
    for sample in op.sample_inputs(dtype):
        args = op.bind(sample.args, sample.kwargs)
        if supported(*args):
            admitted += 1
            assert_matches_native(op, call, ir_core.Sample(args, label=sample.label))
    return admitted


# -- xpu_kernels: gated activations -------------------------------------------------------------


def test_gated_gets_a_fresh_aligned_contiguous_input() -> None:
    rec = RecordingXpuOps()
    x = _t(4, 2 * 64 + 8)[:, 8:]  # strided rows, 16 bytes into the storage
    out = xpu_kernels_ops.call_gated(rec.ops, "silu_and_mul", x)
    ((name, (out_arg, x_arg)),) = rec.calls
    assert name == "silu_and_mul" and x_arg.is_contiguous() and x_arg.data_ptr() % 16 == 0
    assert torch.equal(x_arg, x) and out_arg.data_ptr() == out.data_ptr()


def test_a_contiguous_but_misaligned_input_is_copied() -> None:
    x = torch.randn(4 * 64 + 1).to(torch.bfloat16)[1:].view(4, 64)  # 2 bytes in
    assert x.is_contiguous() and x.data_ptr() % 16
    y = xpu_kernels_ops.fresh_contiguous(x)
    assert y.data_ptr() % 16 == 0 and torch.equal(x, y)
    aligned = _t(4, 64)
    assert xpu_kernels_ops.fresh_contiguous(aligned) is aligned


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_xpu_kernels_activations_match_native(dtype: torch.dtype) -> None:
    """16-bit included: the kernel's extra rounding of the activation stays within the op's
    tolerance (see xpu_kernels_ops), which these samples (saturating gates too) check."""
    ops = RecordingXpuOps().ops
    silu = _matches(
        "silu_and_mul",
        dtype,
        lambda x: xpu_kernels_ops.gated_supported(KERNELS, x),
        lambda x: xpu_kernels_ops.call_gated(ops, "silu_and_mul", x),
    )
    gelu = _matches(
        "gelu_and_mul",
        dtype,
        lambda x, approximate: xpu_kernels_ops.gated_supported(KERNELS, x),
        lambda x, approximate: xpu_kernels_ops.call_gated(
            ops, xpu_kernels_ops.GELU_ENTRIES[approximate], x
        ),
    )
    assert silu >= 8 and gelu >= 16


# -- xpu_kernels: rotary -------------------------------------------------------------------------


def test_xpu_rotary_runs_in_place_on_owned_flat_copies() -> None:
    rec = RecordingXpuOps()
    cache = cos_sin_cache(64, 32)
    positions = torch.tensor([[3, 9], [0, 63]], dtype=torch.int32)  # (B, S), int32
    q, k = _t(2, 2, 4, 64, dtype=torch.float32), _t(2, 2, 2, 64, dtype=torch.float32)
    q0 = q.clone()
    out_q, out_k = xpu_kernels_ops.call_rotary_embedding(rec.ops, positions, q, k, 64, cache, False)
    ((name, (pos, q_arg, k_arg, head_size, cache_arg, is_neox)),) = rec.calls
    assert name == "rotary_embedding" and pos.dtype == torch.int64 and pos.shape == (4,)
    assert q_arg.shape == (4, 4 * 64) and q_arg.data_ptr() == out_q.data_ptr()
    assert k_arg.shape == (4, 2 * 64) and k_arg.data_ptr() == out_k.data_ptr()
    assert (head_size, is_neox) == (64, False) and cache_arg is cache
    assert torch.equal(q, q0)
    native = ir_core.get_op("rotary_embedding").native(positions, q, k, 64, cache, False)
    torch.testing.assert_close(out_q, native[0])
    torch.testing.assert_close(out_k, native[1])


def test_xpu_rotary_declines() -> None:
    pos, cache = _e(4, dtype=torch.int64), _e(8, 64, dtype=torch.float32)
    ok = xpu_kernels_ops.rotary_supported
    f32 = torch.float32
    assert ok(KERNELS, pos, _e(4, 128, dtype=f32), _e(4, 64, dtype=f32), 64, cache)
    # arithmetic in the element type: 16-bit declined
    assert not ok(KERNELS, pos, _e(4, 128), _e(4, 64), 64, cache.bfloat16())
    assert not ok(KERNELS, pos, _e(4, 128, dtype=f32), _e(4, 64, dtype=f32), 64, cache.half())
    assert not ok(KERNELS, pos, _e(4, 192, dtype=f32), _e(4, 128, dtype=f32), 64, cache)  # GQA
    assert not ok(KERNELS, pos, _e(4, 64, dtype=f32), _e(4, 64, dtype=f32), 64, cache.t())
    assert not ok(None, pos, _e(4, 64, dtype=f32), _e(4, 64, dtype=f32), 64, cache)


def test_xpu_rotary_matches_native_in_fp32() -> None:
    ops = RecordingXpuOps().ops
    admitted = _matches(
        "rotary_embedding",
        torch.float32,
        lambda p, q, k, hs, c, neox: xpu_kernels_ops.rotary_supported(KERNELS, p, q, k, hs, c),
        lambda *args: xpu_kernels_ops.call_rotary_embedding(ops, *args),
    )
    assert admitted >= 10


# -- xpu_kernels: fp8 quant ------------------------------------------------------------------------


QUANT_CASES: list[tuple[str, Callable[..., bool], Callable[..., Any]]] = [
    (
        "fp8_quant_static",
        lambda x, s, fp8: KERNELS is not None and fp8 == FP8 and x.dtype in DTYPES,
        lambda ops: lambda x, s, fp8: xpu_kernels_quant.call_fp8_quant_static(ops, x, s),
    ),
    (
        "fp8_quant_dynamic",
        lambda x, per_token, ub, fp8: per_token and fp8 == FP8 and x.dtype in DTYPES,
        lambda ops: (
            lambda x, per_token, ub, fp8: xpu_kernels_quant.call_fp8_quant_dynamic(ops, x, ub)
        ),
    ),
    (
        "rms_norm_fp8_quant_static",
        lambda x, w, eps, s, wb, fp8: xpu_kernels_quant._norm_ok(KERNELS, x, w, wb, fp8),
        lambda ops: (
            lambda x, w, eps, s, wb, fp8: xpu_kernels_quant.call_rms_norm_fp8_quant_static(
                ops, x, w, eps, s
            )
        ),
    ),
    (
        "fused_add_rms_norm_fp8_quant_static",
        lambda x, r, w, eps, s, wb, fp8: (
            xpu_kernels_quant._residual_ok(x, r)
            and xpu_kernels_quant._norm_ok(KERNELS, x, w, wb, fp8)
        ),
        lambda ops: (
            lambda x, r, w, eps, s, wb, fp8: (
                xpu_kernels_quant.call_fused_add_rms_norm_fp8_quant_static(ops, x, r, w, eps, s)
            )
        ),
    ),
    (
        "rms_norm_fp8_quant_dynamic",
        lambda x, w, eps, wb, ub, fp8: xpu_kernels_quant._norm_ok(KERNELS, x, w, wb, fp8),
        lambda ops: (
            lambda x, w, eps, wb, ub, fp8: xpu_kernels_quant.call_rms_norm_fp8_quant_dynamic(
                ops, x, None, w, eps, ub
            )
        ),
    ),
    (
        "fused_add_rms_norm_fp8_quant_dynamic",
        lambda x, r, w, eps, wb, ub, fp8: (
            xpu_kernels_quant._residual_ok(x, r)
            and xpu_kernels_quant._norm_ok(KERNELS, x, w, wb, fp8, (torch.float32,))
        ),
        lambda ops: (
            lambda x, r, w, eps, wb, ub, fp8: xpu_kernels_quant.call_rms_norm_fp8_quant_dynamic(
                ops, x, r, w, eps, ub
            )
        ),
    ),
    (
        "silu_and_mul_fp8_quant_static",
        lambda x, s, fp8: fp8 == FP8 and x.dtype in (torch.float16, torch.bfloat16),
        lambda ops: (
            lambda x, s, fp8: xpu_kernels_quant.call_silu_and_mul_fp8_quant_static(ops, x, s)
        ),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("op_name", "supported", "call"), QUANT_CASES, ids=[c[0] for c in QUANT_CASES]
)
def test_xpu_quant_matches_native(op_name: str, supported, call, dtype: torch.dtype) -> None:
    ops = RecordingXpuOps().ops
    admitted = _matches(op_name, dtype, supported, call(ops))
    declines_16_bit = op_name == "fused_add_rms_norm_fp8_quant_dynamic"
    takes_16_bit_only = op_name == "silu_and_mul_fp8_quant_static"
    if (declines_16_bit and dtype != torch.float32) or (
        takes_16_bit_only and dtype == torch.float32
    ):
        assert admitted == 0
    else:
        assert admitted >= 1


def test_the_predicates_registered_are_the_ones_tested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xpu_kernels_quant, "KERNELS", SimpleNamespace(loaded=lambda: KERNELS))
    x, w, s = _e(4, 64), _e(64), torch.ones(1)
    assert xpu_kernels_quant.rms_norm_fp8_quant_static_supports(x, w, 1e-6, s)
    assert not xpu_kernels_quant.rms_norm_fp8_quant_static_supports(
        x, w, 1e-6, s, dtype=torch.float8_e4m3fnuz
    )
    assert not xpu_kernels_quant.fp8_quant_dynamic_supports(x)  # per tensor: no scale floor
    assert xpu_kernels_quant.fp8_quant_dynamic_supports(x, True)
    assert not xpu_kernels_quant.fused_add_rms_norm_fp8_quant_dynamic_supports(x, x, w, 1e-6)
    x32 = x.float()
    assert xpu_kernels_quant.fused_add_rms_norm_fp8_quant_dynamic_supports(
        x32, x32, w.float(), 1e-6
    )
    assert not xpu_kernels_quant.silu_and_mul_fp8_quant_static_supports(x32, s)
    assert not xpu_kernels_quant.rms_norm_fp8_quant_dynamic_supports(x, None, 1e-6)


def test_the_16_bit_fused_add_dynamic_scale_is_off_by_more_than_the_tolerance() -> None:
    """Why the 16-bit fused add + dynamic quant is declined: the kernel normalises the sum
    rounded to bf16, and the per-token scale moves by more than 1e-5."""
    ops = RecordingXpuOps().ops
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 256, generator=g).to(torch.bfloat16)
    r = torch.randn(8, 256, generator=g).to(torch.bfloat16)
    w = torch.randn(256, generator=g).to(torch.bfloat16)
    _, scale, _ = xpu_kernels_quant.call_rms_norm_fp8_quant_dynamic(ops, x, r, w, 1e-6, None)
    _, native_scale, _ = ir_core.get_op("fused_add_rms_norm_fp8_quant_dynamic").native(
        x, r, w, 1e-6
    )
    assert ((scale - native_scale).abs() / native_scale).max() > 1e-5


# -- ipex on CPU (recorder) ----------------------------------------------------------------------


def test_ipex_gated_passes_the_two_halves_as_views() -> None:
    rec = RecordingIpexFunctional()
    x = _t(3, 128)
    out = ipex_ops.call_gated(rec, x, "tanh")
    ((name, (gate, up, out_arg, approximate)),) = rec.calls
    assert name == "gelu_mul" and out_arg is None and approximate == "tanh"
    assert gate.data_ptr() == x.data_ptr() and up.data_ptr() == x[:, 64:].data_ptr()
    torch.testing.assert_close(out, ir_core.get_op("gelu_and_mul").native(x, "tanh"))


def test_ipex_rotary_gets_owned_copies_sin_before_cos_and_padding() -> None:
    rec = RecordingIpexFunctional()
    cache = cos_sin_cache(32, 32, torch.bfloat16)  # partial rotary: rot 32 of head_size 64
    positions = torch.tensor([4, 1, 30])
    q, k = _t(3, 2 * 64), _t(3, 64)
    q0 = q.clone()
    out_q, out_k = ipex_ops.call_rotary_embedding(rec, positions, q, k, 64, cache, False)
    ((name, (q_arg, k_arg, sin, cos, rot, rotary_half)),) = rec.calls
    assert name == "rotary_embedding" and q_arg.shape == (3, 2, 64) and k_arg.shape == (3, 1, 64)
    assert q_arg.data_ptr() == out_q.data_ptr() and torch.equal(q, q0)  # written: the copy
    assert sin.shape == cos.shape == (3, 32) and (rot, rotary_half) == (32, False)
    assert torch.equal(sin[:, :16], cache[positions, 16:]) and not sin[:, 16:].any()
    native = ir_core.get_op("rotary_embedding").native(positions, q, k, 64, cache, False)
    torch.testing.assert_close(out_q, native[0])
    torch.testing.assert_close(out_k, native[1])


def test_ipex_rotary_declines_odd_head_size() -> None:
    assert ipex_ops.rotary_supported(_e(3, 66), _e(3, 33), 33) is False
    assert ipex_ops.rotary_supported(_e(3, 64), _e(3, 64, dtype=torch.float32), 64) is True
    assert ipex_ops.rotary_supported(_e(3, 64, dtype=torch.float64), _e(3, 64), 64) is False


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ipex_ops_match_native_with_the_recorder(dtype: torch.dtype) -> None:
    rec = RecordingIpexFunctional()
    silu = _matches(
        "silu_and_mul", dtype, lambda x: True, lambda x: ipex_ops.call_gated(rec, x, None)
    )
    gelu = _matches(
        "gelu_and_mul", dtype, lambda x, a: True, lambda x, a: ipex_ops.call_gated(rec, x, a)
    )
    rotary = _matches(
        "rotary_embedding",
        dtype,
        lambda p, q, k, hs, c, neox: ipex_ops.rotary_supported(q, k, hs),
        lambda *args: ipex_ops.call_rotary_embedding(rec, *args),
    )
    assert silu >= 8 and gelu >= 16 and rotary >= 15
