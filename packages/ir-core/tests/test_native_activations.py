"""silu_and_mul and gelu_and_mul: native against an fp64 reference written from the formulas
and against Hugging Face's MLP activations (their validation errors: test_validation.py)."""

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


def _silu(g: float) -> float:
    return g / (1.0 + math.exp(-g)) if g > -700 else 0.0


def _gelu(g: float) -> float:
    return 0.5 * g * (1.0 + math.erf(g / math.sqrt(2.0)))


def _gelu_tanh(g: float) -> float:
    return 0.5 * g * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g**3)))


ACTIVATIONS = {
    ("silu_and_mul", None): _silu,
    ("gelu_and_mul", "none"): _gelu,
    ("gelu_and_mul", "tanh"): _gelu_tanh,
}


def reference(x: torch.Tensor, act) -> torch.Tensor:
    """``act(gate) * up`` row by row in Python floats (fp64)."""
    d = x.shape[-1] // 2
    rows = x.double().reshape(-1, x.shape[-1]).tolist()
    out = [[act(row[i]) * row[d + i] for i in range(d)] for row in rows]
    return torch.tensor(out, dtype=torch.float64).reshape(*x.shape[:-1], d)


def _call(name: str, approximate: str | None, x: torch.Tensor) -> torch.Tensor:
    if approximate is None:
        return ir_core.ops.silu_and_mul(x)
    return ir_core.ops.gelu_and_mul(x, approximate)


def _assert_close(name: str, actual: torch.Tensor, expected_fp64: torch.Tensor) -> None:
    problem = mismatch(ir_core.get_op(name), actual, expected_fp64.to(actual.dtype))
    assert problem is None, problem


@st.composite
def gated_inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    lead = draw(st.lists(st.integers(0, 4), min_size=1, max_size=2))
    d = draw(st.integers(1, 80))
    scale = draw(st.sampled_from([1e-2, 1.0, 6.0]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = (torch.randn(*lead, 2 * d, generator=g) * scale).to(dtype)
    if draw(st.booleans()):  # rows of a wider buffer
        pad = draw(st.integers(1, 9))
        wide = (torch.randn(*lead, 2 * d + pad, generator=g) * scale).to(dtype)
        x = wide[..., pad:]
    return x


@pytest.mark.parametrize(("name", "approximate"), list(ACTIVATIONS), ids=str)
@settings(max_examples=60, deadline=None)
@given(x=gated_inputs())
def test_matches_fp64_reference(name, approximate, x):
    out = _call(name, approximate, x)
    assert out.dtype == x.dtype and out.shape == (*x.shape[:-1], x.shape[-1] // 2)
    _assert_close(name, out, reference(x, ACTIVATIONS[(name, approximate)]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "approximate"), list(ACTIVATIONS), ids=str)
def test_catalogue_samples_match_the_reference(name, approximate, dtype):
    """Every sample the kit checks vendors on (odd d, 3-D, strided rows, zero tokens,
    saturating gates) is itself right."""
    op = ir_core.get_op(name)
    samples = [s for s in op.sample_inputs(dtype) if s.kwargs.get("approximate") == approximate]
    labels = {s.label.split(" approximate=")[0] for s in samples}
    assert {"3d", "strided rows", "zero tokens", "saturating", "2d d=127"} <= labels
    for sample in samples:
        (x,) = sample.args
        _assert_close(
            name, _call(name, approximate, x), reference(x, ACTIVATIONS[(name, approximate)])
        )


@pytest.mark.parametrize(("name", "approximate"), list(ACTIVATIONS), ids=str)
def test_computed_in_fp32_and_rounded_once(name, approximate):
    """bf16 in: the output is the fp64 result rounded once to bf16 (fp32 and fp64 differ only
    at near-ties), which rounding the activation to bf16 before the product is not.

    Unit-scale gates: for g < -3 exact GELU's ``1 + erf(g / sqrt(2))`` cancels in fp32 (torch's
    own fp32 gelu is then only atol-close to fp64), which would blur the comparison."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 256, generator=g).to(torch.bfloat16)
    act = ACTIVATIONS[(name, approximate)]
    exact = reference(x, act).to(torch.bfloat16)
    same = (_call(name, approximate, x) == exact).float().mean().item()
    assert same > 0.995, same
    d = x.shape[-1] // 2
    gate = torch.tensor([[act(v) for v in row] for row in x[:, :d].double().tolist()])
    twice = (gate.to(torch.bfloat16).double() * x[:, d:].double()).to(torch.bfloat16)
    assert (twice == exact).float().mean().item() < 0.95, "the test cannot tell the two apart"


def test_halves_are_gate_then_up():
    x = torch.tensor([[2.0, -1.0, 3.0, 5.0]])  # gate (2, -1), up (3, 5)
    out = ir_core.ops.silu_and_mul(x)
    expected = torch.tensor([[_silu(2.0) * 3.0, _silu(-1.0) * 5.0]])
    torch.testing.assert_close(out, expected.float())


def test_default_gelu_is_exact_and_tanh_differs():
    x = torch.linspace(-4, 4, 64).reshape(2, 32)
    exact = ir_core.ops.gelu_and_mul(x)
    assert mismatch(ir_core.get_op("gelu_and_mul"), exact, reference(x, _gelu).float()) is None
    assert not torch.equal(exact, ir_core.ops.gelu_and_mul(x, "tanh"))


def test_zero_width_and_zero_tokens():
    assert ir_core.ops.silu_and_mul(torch.randn(0, 16)).shape == (0, 8)
    assert ir_core.ops.gelu_and_mul(torch.randn(4, 0), "tanh").shape == (4, 0)


@pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="transformers is not installed (the default test session does not install it)",
)
@pytest.mark.parametrize(
    ("hf_name", "approximate"), [("silu", None), ("gelu", "none"), ("gelu_pytorch_tanh", "tanh")]
)
def test_matches_hf_mlp_activation(hf_name, approximate):
    """Hugging Face's gated MLP, ``act_fn(gate_proj(x)) * up_proj(x)``, with its ACT2FN
    activation (Llama's "silu", Gemma's "gelu_pytorch_tanh") applied in fp64."""
    from transformers.activations import ACT2FN

    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 2 * 40, generator=g) * 3
    gate, up = x.double().chunk(2, dim=-1)
    expected = ACT2FN[hf_name](gate) * up
    name = "silu_and_mul" if approximate is None else "gelu_and_mul"
    _assert_close(name, _call(name, approximate, x), expected)
