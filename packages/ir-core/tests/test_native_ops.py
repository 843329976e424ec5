"""The native ops against an fp64 reference written independently of the implementation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ir_core
from ir_core.testing import mismatch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def reference_rms_norm(x, weight, eps, weight_bias=0.0, variance_size=None):
    """Row by row in Python floats (fp64): no torch reductions shared with the implementation."""
    rows = x.double().reshape(-1, x.shape[-1]).tolist()
    h = x.shape[-1]
    k = variance_size or h
    w = [1.0] * h if weight is None else [v + weight_bias for v in weight.double().tolist()]
    out = []
    for row in rows:
        scale = 1.0 / math.sqrt(sum(v * v for v in row[:k]) / k + eps)
        out.append([v * scale * w[i] for i, v in enumerate(row)])
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def _assert_close(op, actual, expected_fp64, out_dtype):
    problem = mismatch(op, actual, expected_fp64.to(out_dtype), what="output")
    assert problem is None, problem


@st.composite
def norm_inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    lead = draw(st.lists(st.integers(0, 4), min_size=1, max_size=2))
    h = draw(st.integers(1, 96))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    x = (torch.randn(*lead, h, generator=g) * scale).to(dtype)
    weight_kind = draw(st.sampled_from(["same", "fp32", "none"]))
    weight = (
        None
        if weight_kind == "none"
        else torch.randn(h, generator=g).to(torch.float32 if weight_kind == "fp32" else dtype)
    )
    weight_bias = 0.0 if weight is None else draw(st.sampled_from([0.0, 1.0]))
    variance_size = draw(st.one_of(st.none(), st.integers(1, h)))
    eps = draw(st.sampled_from([1e-6, 1e-5, 0.1]))
    return x, weight, eps, weight_bias, variance_size


@settings(max_examples=150, deadline=None)
@given(norm_inputs())
def test_rms_norm_matches_fp64_reference(case):
    x, weight, eps, weight_bias, variance_size = case
    op = ir_core.get_op("rms_norm")
    out = op.native(x, weight, eps, weight_bias, variance_size)
    assert out.dtype == x.dtype and out.shape == x.shape
    _assert_close(op, out, reference_rms_norm(x, weight, eps, weight_bias, variance_size), x.dtype)


@settings(max_examples=100, deadline=None)
@given(norm_inputs(), st.sampled_from(DTYPES))
def test_fused_add_rms_norm_matches_fp64_reference(case, residual_dtype):
    x, weight, eps, weight_bias, variance_size = case
    g = torch.Generator().manual_seed(x.numel())
    residual = torch.randn(x.shape, generator=g).to(residual_dtype)
    op = ir_core.get_op("fused_add_rms_norm")
    out, residual_out = op.native(x, residual, weight, eps, weight_bias, variance_size)
    s = x.double() + residual.double()
    # residual_out is the sum rounded once to residual's dtype
    assert (
        torch.equal(residual_out, s.to(residual_dtype))
        or mismatch(op, residual_out, s.to(residual_dtype)) is None
    )
    assert residual_out.dtype == residual_dtype
    # the norm is of the unrounded sum, in x's dtype
    _assert_close(op, out, reference_rms_norm(s, weight, eps, weight_bias, variance_size), x.dtype)


@settings(max_examples=60, deadline=None)
@given(norm_inputs(), norm_inputs())
def test_dual_rms_norm_is_two_independent_norms(a_case, b_case):
    a, a_w, a_eps = a_case[0], a_case[1], a_case[2]
    b, b_w, b_eps = b_case[0], b_case[1], b_case[2]
    if a_w is None or b_w is None:
        return  # dual_rms_norm always has weights (MLA's latents)
    op = ir_core.get_op("dual_rms_norm")
    a_out, b_out = op.native(a, a_w, b, b_w, a_eps, b_eps)
    _assert_close(op, a_out, reference_rms_norm(a, a_w, a_eps), a.dtype)
    _assert_close(op, b_out, reference_rms_norm(b, b_w, b_eps), b.dtype)


def test_norm_is_computed_in_fp32_and_rounded_once():
    # A bf16 input whose square overflows bf16's mantissa but not fp32's: only fp32-once
    # arithmetic gives the reference answer within bf16's half-ulp.
    x = torch.tensor([[3.0, 4.0, 1e-3, 300.0]], dtype=torch.bfloat16)
    w = torch.tensor([0.5, 1.5, 2.0, 1.0], dtype=torch.float32)
    out = ir_core.ops.rms_norm(x, w, 1e-6, weight_bias=1.0)
    expected = reference_rms_norm(x, w, 1e-6, 1.0).to(torch.bfloat16)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_ops_never_mutate_inputs(dtype):
    for name in ("rms_norm", "fused_add_rms_norm", "dual_rms_norm"):
        op = ir_core.get_op(name)
        for sample in op.sample_inputs(dtype):
            before = sample.clone()
            getattr(ir_core.ops, name)(*sample.args, **sample.kwargs)
            for a, b in zip(sample.args, before.args):
                if isinstance(a, torch.Tensor):
                    assert torch.equal(a, b), f"{name} [{sample.label}] mutated an input"


@pytest.mark.parametrize("name", ["rms_norm", "fused_add_rms_norm", "dual_rms_norm"])
def test_zero_tokens(name):
    op = ir_core.get_op(name)
    sample = op.example_inputs(0, 64, torch.bfloat16)
    outputs = getattr(ir_core.ops, name)(*sample.args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert all(o.shape[0] == 0 for o in outputs)


def test_samples_cover_the_promised_cases():
    labels = {s.label for s in ir_core.get_op("rms_norm").sample_inputs(torch.bfloat16)}
    for expected in (
        "3d",
        "strided rows",
        "zero tokens",
        "weight None",
        "weight_bias=1.0",
        "fp32 weight, weight_bias=1.0",
        "variance_size=48",
    ):
        assert expected in labels
    strided = next(
        s
        for s in ir_core.get_op("rms_norm").sample_inputs(torch.float32)
        if s.label == "strided rows"
    )
    assert not strided.args[0].is_contiguous() and strided.args[0].stride(-1) == 1


def test_sample_clone_copes_with_expanded_tensors():
    from ir_core import Sample

    row = torch.randn(1, 16).expand(4, 16)  # stride 0: one memory location per column
    copy = Sample((row, None, 1e-6)).clone()
    assert torch.equal(copy.args[0], row) and copy.args[0].data_ptr() != row.data_ptr()


# -- the native path without identity work computes what the spelled-out formula computes ------


def _spelled_out_normalize(xf, weight, epsilon, weight_bias, variance_size):
    """The fp32 formula as docs/contract.md spells it (ir-core's native body before it dropped
    the work that changes nothing): kept here as the bit-for-bit reference."""
    xv = xf if variance_size is None else xf[..., :variance_size]
    out = xf * torch.rsqrt(xv.pow(2).mean(dim=-1, keepdim=True) + epsilon)
    if weight is not None:
        out = out * (weight.float() + weight_bias)
    return out


def _spelled_out(op, args):
    if op == "rms_norm":
        x, w, eps, bias, vs = args
        return _spelled_out_normalize(x.float(), w, eps, bias, vs).to(x.dtype)
    if op == "fused_add_rms_norm":
        x, r, w, eps, bias, vs = args
        s = x.float() + r.float()
        return _spelled_out_normalize(s, w, eps, bias, vs).to(x.dtype), s.to(r.dtype)
    a, aw, b, bw, ae, be = args
    return (
        _spelled_out_normalize(a.float(), aw, ae, 0.0, None).to(a.dtype),
        _spelled_out_normalize(b.float(), bw, be, 0.0, None).to(b.dtype),
    )


def _bits(t):
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _identity_cases():
    g = torch.Generator().manual_seed(7)
    shapes = [(1, 8), (1, 4096), (64, 4096), (3, 127), (2, 3, 64), (0, 64), (5, 1)]
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for shape in shapes:
            h = shape[-1]
            x = (torch.randn(shape, generator=g) * 3).to(dtype)
            for w_dtype in {dtype, torch.float32, torch.bfloat16, torch.float64}:
                w = torch.randn(h, generator=g).to(w_dtype)
                yield f"{dtype} {shape} w {w_dtype}", x, w, 0.0, None
                yield f"{dtype} {shape} w {w_dtype} bias 1", x, w, 1.0, None
            yield f"{dtype} {shape} no weight", x, None, 0.0, None
            if h >= 2:
                yield f"{dtype} {shape} variance_size", x, torch.randn(h).to(dtype), 0.0, h // 2
        wide = (torch.randn(4, 100, generator=g) * 3).to(dtype)
        yield f"{dtype} strided rows", wide[:, 10:74], torch.randn(64).to(dtype), 0.0, None
        yield f"{dtype} transposed", wide[:, :64].t(), torch.randn(4).to(dtype), 0.0, None


@pytest.mark.parametrize("op", ["rms_norm", "fused_add_rms_norm", "dual_rms_norm"])
def test_native_is_bit_for_bit_the_spelled_out_formula(op):
    """Dropping ``+ 0.0``, no-op ``.float()`` copies, the slice and separate roundings must not
    move a single bit of the hidden states (weights without -0.0: see ``_normalize``)."""
    native = ir_core.get_op(op).native
    checked = 0
    for label, x, w, bias, vs in _identity_cases():
        if op == "rms_norm":
            args = (x, w, 1e-6, bias, vs)
        elif op == "fused_add_rms_norm":
            args = (x, torch.randn(x.shape).to(x.dtype), w, 1e-6, bias, vs)
        elif w is None or bias or vs:
            continue
        else:
            b = x[..., : max(1, x.shape[-1] // 3)]
            args = (x, w, b, torch.randn(b.shape[-1]).to(w.dtype), 1e-6, 1e-5)
        got, expected = native(*args), _spelled_out(op, args)
        for g_, e_ in zip(*(t if isinstance(t, tuple) else (t,) for t in (got, expected))):
            assert g_.dtype == e_.dtype and g_.shape == e_.shape and g_.stride() == e_.stride()
            assert torch.equal(_bits(g_), _bits(e_)), label
        checked += 1
    assert checked > 50


def test_a_negative_zero_weight_only_flips_the_sign_of_a_zero():
    x, w = torch.randn(2, 8), torch.randn(8)
    w[3] = -0.0
    got = ir_core.get_op("rms_norm").native(x, w, 1e-6)
    expected = _spelled_out("rms_norm", (x, w, 1e-6, 0.0, None))
    assert torch.equal(got, expected)  # equal values
    assert torch.equal(
        _bits(got[:, [0, 1, 2, 4, 5, 6, 7]]), _bits(expected[:, [0, 1, 2, 4, 5, 6, 7]])
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_differentiates_like_the_spelled_out_formula(dtype):
    """The backward of torch.ops.ir_core differentiates native: its in-place and ``out=``
    shortcuts must leave autograd what the formula gives it."""
    g = torch.Generator().manual_seed(3)
    x0, w0 = torch.randn(3, 64, generator=g).to(dtype), torch.randn(64, generator=g).to(dtype)
    grads = []
    for fn in (ir_core.get_op("rms_norm").native, lambda *a: _spelled_out("rms_norm", a)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        fn(x, w, 1e-6, 0.0, None).float().square().sum().backward()
        grads.append((x.grad, w.grad))
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
