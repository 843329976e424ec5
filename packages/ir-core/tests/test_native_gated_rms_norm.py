"""gated_rms_norm: native against an fp64 reference written from the formulas, and against
Hugging Face's Qwen3-Next and Mamba2 gated norms where transformers is installed (its
validation errors: test_validation.py)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ir_core
from ir_core.testing import mismatch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
EPS = 1e-6


def reference(x, weight, gate, eps, weight_bias=0.0, group_size=None, norm_before_gate=True):
    """Row by row, group by group, in Python floats (fp64)."""
    h = x.shape[-1]
    k = group_size or h
    w = [v + weight_bias for v in weight.double().tolist()]
    out = []
    for row, gates in zip(
        x.double().reshape(-1, h).tolist(), gate.double().reshape(-1, h).tolist()
    ):
        silu = [g / (1.0 + math.exp(-g)) for g in gates]
        v = row if norm_before_gate else [a * s for a, s in zip(row, silu)]
        normed = []
        for start in range(0, h, k):
            group = v[start : start + k]
            scale = 1.0 / math.sqrt(sum(a * a for a in group) / k + eps)
            normed += [a * scale for a in group]
        y = [a * w[i] for i, a in enumerate(normed)]
        out.append([a * s for a, s in zip(y, silu)] if norm_before_gate else y)
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def _assert_close(actual, expected_fp64):
    op = ir_core.get_op("gated_rms_norm")
    problem = mismatch(op, actual, expected_fp64.to(actual.dtype))
    assert problem is None, problem


@st.composite
def gated_norm_inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    lead = draw(st.lists(st.integers(0, 4), min_size=1, max_size=2))
    groups, k = draw(st.integers(1, 4)), draw(st.integers(1, 40))
    h = groups * k
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([1e-2, 1.0, 20.0]))
    x = (torch.randn(*lead, h, generator=g) * scale).to(dtype)
    if draw(st.booleans()):  # x and gate split from one projection
        both = (torch.randn(*lead, 2 * h + 4, generator=g) * 2).to(dtype)
        gate = both[..., h + 4 :]
    else:
        gate = (torch.randn(*lead, h, generator=g) * 2).to(draw(st.sampled_from(DTYPES)))
    weight = torch.randn(h, generator=g).to(draw(st.sampled_from([dtype, torch.float32])))
    options = {
        "weight_bias": draw(st.sampled_from([0.0, 1.0])),
        "group_size": k if groups > 1 or draw(st.booleans()) else None,
        "norm_before_gate": draw(st.booleans()),
    }
    return x, weight, gate, draw(st.sampled_from([1e-6, 1e-5, 0.1])), options


@settings(max_examples=150, deadline=None)
@given(gated_norm_inputs())
def test_matches_fp64_reference(case):
    x, weight, gate, eps, options = case
    out = ir_core.ops.gated_rms_norm(x, weight, gate, eps, **options)
    assert out.dtype == x.dtype and out.shape == x.shape
    _assert_close(out, reference(x, weight, gate, eps, **options))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_catalogue_samples_match_the_reference(dtype):
    op = ir_core.get_op("gated_rms_norm")
    samples = op.sample_inputs(dtype)
    labels = " | ".join(s.label for s in samples)
    for promised in (
        "3d",
        "strided rows",
        "zero tokens",
        "group_size=32",
        "norm_before_gate=False",
        "weight_bias=1.0",
    ):
        assert promised in labels
    for sample in samples:
        _assert_close(
            ir_core.ops.gated_rms_norm(*sample.args, **sample.kwargs),
            reference(*op.bind(sample.args, sample.kwargs)),
        )


def test_the_gate_order_matters():
    """The two orders differ whenever the gate is not constant across a group."""
    g = torch.Generator().manual_seed(0)
    x, gate, w = torch.randn(2, 16, generator=g), torch.randn(2, 16, generator=g), torch.ones(16)
    before = ir_core.ops.gated_rms_norm(x, w, gate, EPS)
    after = ir_core.ops.gated_rms_norm(x, w, gate, EPS, norm_before_gate=False)
    assert not torch.allclose(before, after, atol=1e-3)
    grouped = ir_core.ops.gated_rms_norm(x, w, gate, EPS, group_size=4)
    assert not torch.allclose(before, grouped, atol=1e-3)


def test_group_size_h_is_the_default():
    g = torch.Generator().manual_seed(1)
    x, gate, w = torch.randn(3, 24, generator=g), torch.randn(3, 24, generator=g), torch.randn(24)
    assert torch.equal(
        ir_core.ops.gated_rms_norm(x, w, gate, EPS),
        ir_core.ops.gated_rms_norm(x, w, gate, EPS, group_size=24),
    )


needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="transformers is not installed (the default test session does not install it)",
)


@needs_transformers
def test_matches_hf_qwen3_next_gated_norm_in_fp32():
    """Qwen3NextRMSNormGated (norm, weight, then silu(gate)) on fp32, where its intermediate
    rounding to the input dtype is a no-op."""
    qwen3_next = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    g = torch.Generator().manual_seed(2)
    x, gate = torch.randn(5, 64, generator=g), torch.randn(5, 64, generator=g) * 2
    norm = qwen3_next.Qwen3NextRMSNormGated(64, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(64, generator=g))
        expected = norm(x, gate)
    out = ir_core.ops.gated_rms_norm(x, norm.weight.detach(), gate, 1e-6)
    assert mismatch(ir_core.get_op("gated_rms_norm"), out, expected) is None


@needs_transformers
def test_matches_hf_mamba2_grouped_gated_norm_in_fp32():
    """Mamba2's MambaRMSNormGated (gate first, variance per group) is norm_before_gate=False
    with group_size."""
    mamba2 = pytest.importorskip("transformers.models.mamba2.modeling_mamba2")
    g = torch.Generator().manual_seed(3)
    x, gate = torch.randn(2, 3, 96, generator=g), torch.randn(2, 3, 96, generator=g) * 2
    norm = mamba2.MambaRMSNormGated(96, group_size=24, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(96, generator=g))
        expected = norm(x, gate)
    out = ir_core.ops.gated_rms_norm(
        x, norm.weight.detach(), gate, 1e-5, group_size=24, norm_before_gate=False
    )
    assert mismatch(ir_core.get_op("gated_rms_norm"), out, expected) is None
