"""``x + residual -> rms_norm  =>  fused_add_rms_norm`` on decoder-like graphs."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_fusions import fused_add_rms_norm_pass

ir = torch.ops.ir_core
BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32


def decoder(h, residual, n1, n2, w_attn, w_mlp):
    """Two pre-norm sub-blocks: the residual stream is added to and normalized twice."""
    r1 = h + residual
    x1 = ir.rms_norm(r1, n1, 1e-6)
    r2 = x1 @ w_attn + r1
    x2 = ir.rms_norm(r2, n2, 1e-5, 1.0)  # Gemma's (1 + weight)
    return x2 @ w_mlp, r2


def _inputs(dtype, weight_dtype=None, h=32, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight_dtype = weight_dtype or dtype

    def rnd(*shape, dt=dtype, scale=1.0):
        return (torch.randn(shape, generator=g) * scale).to(dt)

    return (
        rnd(t, h),
        rnd(t, h),
        rnd(h, dt=weight_dtype, scale=0.3) + 1,
        rnd(h, dt=weight_dtype, scale=0.3),
        rnd(h, h, scale=h**-0.5),
        rnd(h, h, scale=h**-0.5),
    )


def _reference_norm(s32, weight, eps, bias):
    """RMSNorm of an fp32 tensor, written out here (not taken from ir_core)."""
    var = s32.pow(2).mean(-1, keepdim=True)
    return s32 / torch.sqrt(var + eps) * (weight.double().float() + bias)


def test_decoder_fp32_is_rewritten_twice_and_bitwise_equal(trace, ops):
    args = _inputs(FP32)
    gm = trace(decoder, *args)
    expected = gm(*args)
    assert fused_add_rms_norm_pass(gm) == 2
    assert "rms_norm" not in ops(gm) and "add" not in ops(gm)
    assert ops(gm).count("fused_add_rms_norm") == 2
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [BF16, FP16])
def test_decoder_16bit_residual_is_bitwise_and_norm_within_one_ulp(trace, dtype):
    args = _inputs(dtype, weight_dtype=FP32)
    h, residual, n1 = args[0], args[1], args[2]

    def block(h, residual, n1):
        s = h + residual
        return ir.rms_norm(s, n1, 1e-6), s

    gm = trace(block, h, residual, n1)
    unfused_out, unfused_s = gm(h, residual, n1)
    assert fused_add_rms_norm_pass(gm) == 1
    out, s = gm(h, residual, n1)

    assert torch.equal(s, unfused_s)  # aten.add also sums in fp32 and rounds once
    # The fused op normalizes the unrounded fp32 sum (docs/contract.md), the unfused graph the
    # rounded one: at most one ulp apart, inside the op's tolerance.
    reference = _reference_norm(h.float() + residual.float(), n1, 1e-6, 0.0).to(dtype)
    torch.testing.assert_close(out, reference, atol=0, rtol=0)
    ulp = torch.finfo(dtype).eps
    assert (
        (out.float() - unfused_out.float()).abs() <= ulp * unfused_out.float().abs() + 1e-6
    ).all()
    atol, rtol = ir_core.get_op("fused_add_rms_norm").tolerance(dtype)
    torch.testing.assert_close(out, unfused_out, atol=atol, rtol=rtol)


def test_generic_over_epsilon_weight_bias_and_weight_dtype(trace, ops):
    """One pattern matches norms with different epsilons, weight_bias and weight dtypes."""

    def f(x, r, w16, w32):
        a = x + r
        b = ir.rms_norm(a, w16, 1e-6) + r
        c = ir.rms_norm(b, w32, 1e-5, 1.0) + r
        d = ir.rms_norm(c, w16, 2e-3, 0.5, 16)
        return d, c

    args = (
        torch.randn(4, 32, dtype=BF16),
        torch.randn(4, 32, dtype=BF16),
        torch.randn(32, dtype=BF16),
        torch.randn(32),
    )
    gm = trace(f, *args)
    assert fused_add_rms_norm_pass(gm) == 3
    fused = [n for n in gm.graph.nodes if n.target == ir.fused_add_rms_norm.default]
    assert [n.args[3:] for n in fused] == [(1e-6, 0.0, None), (1e-5, 1.0, None), (2e-3, 0.5, 16)]
    assert ops(gm).count("rms_norm") == 0


def test_mixed_precision_sum_used_only_by_the_norm(trace):
    """fp32 activation + bf16 residual, sum used by the norm alone: exact in fp32."""

    def f(x, r, w):
        return ir.rms_norm(r + x, w, 1e-6)  # the fp32 addend is the second operand

    args = (torch.randn(3, 16), torch.randn(3, 16, dtype=BF16), torch.randn(16))
    gm = trace(f, *args, fake=True)
    real = trace(f, *args)
    expected = real(*args)
    assert fused_add_rms_norm_pass(gm) == 1
    (fused,) = [n for n in gm.graph.nodes if n.target == ir.fused_add_rms_norm.default]
    x_node, residual_node = fused.args[:2]
    assert x_node.meta["val"].dtype == FP32 and residual_node.meta["val"].dtype == BF16
    assert fused_add_rms_norm_pass(real) == 1
    assert torch.equal(real(*args), expected)


def test_one_sum_feeding_two_norms(trace):
    def f(x, r, w1, w2):
        s = x + r
        return ir.rms_norm(s, w1, 1e-6), ir.rms_norm(s, w2, 1e-6), s

    args = (torch.randn(2, 8), torch.randn(2, 8), torch.randn(8), torch.randn(8))
    gm = trace(f, *args)
    expected = gm(*args)
    # The first norm takes the sum; the second then reads the fused op's residual output.
    assert fused_add_rms_norm_pass(gm) == 1
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


def _promoted_shared_sum(x, r, w):
    """bf16 + fp32 promotes to fp32, and the sum is also returned: residual_out would have to
    be fp32 and out fp32, but only one addend is fp32."""
    s = x + r.float()
    return ir.rms_norm(s, w, 1e-6), s


NOT_FUSED = {
    "sum widened before the norm": lambda x, r, w: ir.rms_norm((x + r).float(), w, 1e-6),
    "add with alpha": lambda x, r, w: ir.rms_norm(torch.add(x, r, alpha=2), w, 1e-6),
    "broadcast bias, not a residual": lambda x, r, w: ir.rms_norm(x + w, w, 1e-6),
    "python scalar": lambda x, r, w: ir.rms_norm(x + 1.0, w, 1e-6),
    "promoted sum with another user": _promoted_shared_sum,
    "fp64 sum": lambda x, r, w: ir.rms_norm(x.double() + r.double(), w, 1e-6),
    "sub, not add": lambda x, r, w: ir.rms_norm(x - r, w, 1e-6),
}


@pytest.mark.parametrize("name", list(NOT_FUSED))
def test_variants_that_must_not_match(trace, name):
    args = (
        torch.randn(3, 16, dtype=BF16),
        torch.randn(3, 16, dtype=BF16),
        torch.randn(16, dtype=BF16),
    )
    gm = trace(NOT_FUSED[name], *args, fake=True)
    before = str(gm.graph)
    assert fused_add_rms_norm_pass(gm) == 0
    assert str(gm.graph) == before


def test_promoted_sum_with_another_user_where_both_addends_differ(trace):
    """fp16 + bf16 promotes to fp32: neither addend can be x, even when only the norm reads it."""

    def f(x, r, w):
        return ir.rms_norm(x + r, w, 1e-6)

    gm = trace(
        f, torch.randn(2, 8, dtype=FP16), torch.randn(2, 8, dtype=BF16), torch.randn(8), fake=True
    )
    assert fused_add_rms_norm_pass(gm) == 0
