"""norm -> fp8 quant and silu_and_mul -> fp8 quant fusions on traced graphs."""

from __future__ import annotations

import operator

import pytest
import torch

import ir_core
from ir_core.testing import output_mismatches
from ir_fusions import (
    PASSES,
    fused_add_rms_norm_fp8_quant_pass,
    rms_norm_fp8_quant_pass,
    silu_and_mul_fp8_quant_pass,
)

ir = torch.ops.ir_core
FN, FNUZ = torch.float8_e4m3fn, torch.float8_e4m3fnuz
BF16, FP32 = torch.bfloat16, torch.float32


def _rnd(*shape, dtype=FP32, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(dtype)


def _bits(t):
    return t.view(torch.uint8) if t.element_size() == 1 else t


def _assert_bitwise(got, want):
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.stride() == b.stride()
        assert torch.equal(_bits(a), _bits(b))


def _fused(gm, name):
    return [n for n in gm.graph.nodes if n.target == getattr(ir, name).default]


def _run_all(gm):
    return {p.name: p(gm) for p in PASSES}


def test_rms_norm_then_each_quant_is_one_op_and_bitwise_for_fp32(trace, ops):
    def f(x, w, s):
        q1 = ir.fp8_quant_static(ir.rms_norm(x, w, 1e-6), s)
        q2, s2 = ir.fp8_quant_dynamic(ir.rms_norm(x, w, 1e-5), True)
        q3, s3 = ir.fp8_quant_group(ir.rms_norm(x, w, 2e-6), 16, True, True)
        return q1, q2, s2, q3, s3

    args = (_rnd(5, 64, scale=2), _rnd(64, seed=1) + 1, torch.tensor([0.01]))
    gm = trace(f, *args)
    expected = gm(*args)
    assert rms_norm_fp8_quant_pass(gm) == 3
    assert sorted(ops(gm)) == [
        "rms_norm_fp8_quant_dynamic",
        "rms_norm_fp8_quant_group",
        "rms_norm_fp8_quant_static",
    ]
    _assert_bitwise(gm(*args), expected)  # incl. the column-major scales' strides


def test_generic_over_epsilon_weight_bias_weight_dtype_fp8_dtype_and_group_size(trace):
    def f(x, w16, w32, s, ub):
        a = ir.fp8_quant_static(ir.rms_norm(x, w16, 1e-6), s, FNUZ)
        b = ir.fp8_quant_static(ir.rms_norm(x, w32, 1e-5, 1.0), s)  # Gemma, fp32 weight
        c = ir.fp8_quant_static(ir.rms_norm(x, None, 3e-6), s)
        d = ir.fp8_quant_dynamic(ir.rms_norm(x, w16, 1e-6), True, ub, FNUZ)
        e = ir.fp8_quant_group(ir.rms_norm(x, w16, 1e-6, 0.5), 8)
        g = ir.fp8_quant_group(ir.rms_norm(x, w32, 1e-6), 32, False, True, FNUZ)
        return a, b, c, d, e, g

    args = (
        _rnd(3, 32, dtype=BF16),
        _rnd(32, dtype=BF16, seed=1),
        _rnd(32, seed=2),
        torch.tensor([0.02]),
        torch.tensor([2.0]),
    )
    gm = trace(f, *args, fake=True)
    assert rms_norm_fp8_quant_pass(gm) == 6
    static = _fused(gm, "rms_norm_fp8_quant_static")
    assert [n.args[2:] for n in static] == [
        (1e-6, static[0].args[3], 0.0, FNUZ),
        (1e-5, static[1].args[3], 1.0, FN),
        (3e-6, static[2].args[3], 0.0, FN),
    ]
    assert static[2].args[1] is None
    (dynamic,) = _fused(gm, "rms_norm_fp8_quant_dynamic")
    assert dynamic.args[2:4] == (1e-6, 0.0) and dynamic.args[5] is FNUZ
    assert dynamic.args[4].name == "ub_1"
    groups = _fused(gm, "rms_norm_fp8_quant_group")
    assert [n.args[2:] for n in groups] == [
        (1e-6, 8, 0.5, False, False, FN),
        (1e-6, 32, 0.0, False, True, FNUZ),
    ]


@pytest.mark.parametrize("dtype", [BF16, torch.float16], ids=str)
def test_16bit_codes_within_one_fp8_step_of_the_unfused_graph(trace, dtype):
    """The fused op quantizes the fp32 norm, the unfused graph the norm rounded to x's dtype:
    the op's declared comparison (one fp8 step of the dequantized value) holds between them."""

    def f(x, w, s):
        q1 = ir.fp8_quant_static(ir.rms_norm(x, w, 1e-6), s)
        q2, s2 = ir.fp8_quant_dynamic(ir.rms_norm(x, w, 1e-6), True)
        return q1, q2, s2

    x, w, s = (
        _rnd(16, 256, dtype=dtype, scale=3),
        _rnd(256, dtype=dtype, seed=1),
        torch.tensor([0.005]),
    )
    gm = trace(f, x, w, s)
    unfused = gm(x, w, s)
    assert rms_norm_fp8_quant_pass(gm) == 2
    fused = gm(x, w, s)
    static = ir_core.get_op("rms_norm_fp8_quant_static")
    assert output_mismatches(static, fused[0], unfused[0], (x, w, 1e-6, s, 0.0, FN)) == []
    # the scales differ by at most half an ulp of x's dtype
    ulp = torch.finfo(dtype).eps
    assert ((fused[2] - unfused[2]).abs() <= ulp / 2 * unfused[2]).all()
    assert not torch.equal(_bits(fused[0]), _bits(unfused[0])), "no rounding difference seen"


def test_fused_add_then_quant_keeps_the_residual_stream(trace, ops):
    def f(h, r, w1, w2, s):
        o1, r1 = ir.fused_add_rms_norm(h, r, w1, 1e-6)
        q1 = ir.fp8_quant_static(o1, s)
        o2, r2 = ir.fused_add_rms_norm(q1.float() * s, r1, w2, 1e-5, 1.0)
        q2, s2 = ir.fp8_quant_dynamic(o2, True)
        return q1, q2, s2, r2, r1 * 2

    args = (
        _rnd(4, 32),
        _rnd(4, 32, seed=1),
        _rnd(32, seed=2),
        _rnd(32, seed=3),
        torch.tensor([0.02]),
    )
    gm = trace(f, *args)
    expected = gm(*args)
    assert fused_add_rms_norm_fp8_quant_pass(gm) == 2
    assert "fused_add_rms_norm" not in ops(gm) and "fp8_quant_static" not in ops(gm)
    assert ops(gm).count("fused_add_rms_norm_fp8_quant_static") == 1
    assert ops(gm).count("fused_add_rms_norm_fp8_quant_dynamic") == 1
    _assert_bitwise(gm(*args), expected)


def test_add_then_norm_then_quant_needs_every_pass_in_order(trace, ops):
    """``h + residual -> rms_norm -> quant``: the add+norm pass runs first, then the quant one."""

    def f(h, r, w, s):
        x = h + r
        return ir.fp8_quant_static(ir.rms_norm(x, w, 1e-6), s), x

    args = (_rnd(4, 32), _rnd(4, 32, seed=1), _rnd(32, seed=2), torch.tensor([0.02]))
    gm = trace(f, *args)
    expected = gm(*args)
    counts = _run_all(gm)
    assert counts["fused_add_rms_norm"] == 1 and counts["fused_add_rms_norm_fp8_quant"] == 1
    assert counts["rms_norm_fp8_quant"] == 0
    assert ops(gm) == ["fused_add_rms_norm_fp8_quant_static"]
    _assert_bitwise(gm(*args), expected)


def test_silu_and_mul_then_static_quant(trace, ops):
    def f(gate_up, s):
        return ir.fp8_quant_static(ir.silu_and_mul(gate_up), s, FNUZ)

    args = (_rnd(6, 96, scale=2), torch.tensor([0.01]))
    gm = trace(f, *args)
    expected = gm(*args)
    assert silu_and_mul_fp8_quant_pass(gm) == 1
    assert ops(gm) == ["silu_and_mul_fp8_quant_static"]
    (node,) = _fused(gm, "silu_and_mul_fp8_quant_static")
    assert node.args[2] is FNUZ
    _assert_bitwise([gm(*args)], [expected])


def test_the_default_dtype_reaches_the_fused_op_as_a_dtype(trace):
    """An omitted dtype is torch's schema default, stored as an enum number: the pattern reads
    it back as ``torch.float8_e4m3fn`` (lowering validates the fused op's arguments)."""
    gm = trace(
        lambda x, s: ir.fp8_quant_static(ir.rms_norm(x, None, 1e-6), s),
        _rnd(2, 8),
        torch.tensor([0.1]),
        fake=True,
    )
    (quant,) = [n for n in gm.graph.nodes if n.target == ir.fp8_quant_static.default]
    assert len(quant.args) == 2  # traced without the dtype
    assert rms_norm_fp8_quant_pass(gm) == 1
    (node,) = _fused(gm, "rms_norm_fp8_quant_static")
    assert node.args[-1] is FN


NOT_FUSED = {
    "norm read twice": (
        rms_norm_fp8_quant_pass,
        lambda x, r, w, s: (ir.fp8_quant_static(y := ir.rms_norm(x, w, 1e-6), s), y),
    ),
    "partial variance_size": (
        rms_norm_fp8_quant_pass,
        lambda x, r, w, s: ir.fp8_quant_static(ir.rms_norm(x, w, 1e-6, 0.0, 16), s),
    ),
    "per-tensor dynamic": (
        rms_norm_fp8_quant_pass,
        lambda x, r, w, s: ir.fp8_quant_dynamic(ir.rms_norm(x, w, 1e-6)),
    ),
    "quant of something else": (
        rms_norm_fp8_quant_pass,
        lambda x, r, w, s: ir.fp8_quant_static(ir.rms_norm(x, w, 1e-6) * 2, s),
    ),
    "fused add out read twice": (
        fused_add_rms_norm_fp8_quant_pass,
        lambda x, r, w, s: (
            ir.fp8_quant_static(o := ir.fused_add_rms_norm(x, r, w, 1e-6)[0], s),
            o,
        ),
    ),
    "group after a fused add": (
        fused_add_rms_norm_fp8_quant_pass,
        lambda x, r, w, s: ir.fp8_quant_group(ir.fused_add_rms_norm(x, r, w, 1e-6)[0], 16),
    ),
    "activation read twice": (
        silu_and_mul_fp8_quant_pass,
        lambda x, r, w, s: (ir.fp8_quant_static(a := ir.silu_and_mul(x), s), a),
    ),
    "dynamic quant of the activation": (
        silu_and_mul_fp8_quant_pass,
        lambda x, r, w, s: ir.fp8_quant_dynamic(ir.silu_and_mul(x), True),
    ),
}


@pytest.mark.parametrize("name", list(NOT_FUSED))
def test_variants_that_must_not_match(trace, name):
    fusion, fn = NOT_FUSED[name]
    args = (_rnd(3, 32), _rnd(3, 32, seed=1), _rnd(32, seed=2), torch.tensor([0.1]))
    gm = trace(fn, *args, fake=True)
    before = str(gm.graph)
    assert fusion(gm) == 0
    assert str(gm.graph) == before


def test_rewritten_nodes_carry_example_values(trace):
    """Later passes and lowering read dtypes and shapes from ``meta["val"]``: a single-output
    fused op's node holds a tensor, a tuple op's getitems hold theirs."""
    gm = trace(
        lambda x, s: (
            ir.fp8_quant_static(ir.silu_and_mul(x), s),
            ir.fp8_quant_dynamic(ir.rms_norm(x, None, 1e-6), True),
        ),
        _rnd(3, 16),
        torch.tensor([0.1]),
        fake=True,
    )
    _run_all(gm)
    (silu,) = _fused(gm, "silu_and_mul_fp8_quant_static")
    assert isinstance(silu.meta["val"], torch.Tensor) and silu.meta["val"].shape == (3, 8)
    (norm,) = _fused(gm, "rms_norm_fp8_quant_dynamic")
    items = {u.args[1]: u.meta["val"] for u in norm.users if u.target is operator.getitem}
    assert items[0].dtype == FN and items[1].shape == (3, 1)
