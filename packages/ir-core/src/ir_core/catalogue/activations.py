"""Gated activations of the MLP: native semantics, validation and sample inputs (DESIGN §10).

A gated MLP projects the hidden state to ``[gate | up]`` (one matmul, ``2d`` columns) and
multiplies the activated gate by ``up``: SwiGLU (Llama, Qwen, DeepSeek) uses SiLU, GeGLU
(Gemma) GELU with the tanh approximation. As for every op of the catalogue, the arithmetic
is fp32 and the result is rounded once to the input's dtype.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..op import Sample
from .norms import _activation, _check_activation

#: GELU variants, as ``torch.nn.functional.gelu`` spells them.
GELU_APPROXIMATIONS = ("none", "tanh")

#: fp32 tolerance of both ops. rtol widened from the catalogue's 1.3e-6 (about 11 fp32 ulp) to
#: 1e-5 because GPU kernels evaluate exp/erf/tanh with hardware approximations: CUDA's
#: ``__expf`` is accurate to 2 + floor(|1.16 x|) ulp, about 12 ulp at |x| = 8, before the
#: division and the product by ``up`` add theirs. atol stays 1e-5, which is also what the
#: native's own error needs: torch's fp32 erf is off by up to ~4e-7 near +-1, so its exact
#: GELU is off by up to ~1.2e-6 absolute (where GELU is tiny, i.e. 100% relative), times |up|.
#: 16-bit outputs keep the defaults: an fp32 result a few ulp off rounds to the same fp16/bf16
#: value or to its neighbour, both within them.
TOLERANCES = {torch.float32: (1e-5, 1e-5)}


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """SwiGLU's activation: ``silu(x[..., :d]) * x[..., d:]`` for ``x`` of shape ``(..., 2d)``.

    Returns ``(..., d)`` in x's dtype; ``silu(g) = g * sigmoid(g)`` and the product are taken
    in fp32, whatever x's dtype, and rounded once.
    """
    d = x.shape[-1] // 2
    xf = x.float()
    return (F.silu(xf[..., :d]) * xf[..., d:]).to(x.dtype)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GeGLU's activation: ``gelu(x[..., :d], approximate) * x[..., d:]``, ``x`` is ``(..., 2d)``.

    ``approximate="none"`` is the exact ``g * Phi(g)`` (with erf); ``"tanh"`` is
    ``0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))`` (Gemma's ``gelu_pytorch_tanh``).
    Returns ``(..., d)`` in x's dtype, computed in fp32 and rounded once.
    """
    d = x.shape[-1] // 2
    xf = x.float()
    return (F.gelu(xf[..., :d], approximate=approximate) * xf[..., d:]).to(x.dtype)


# -- validation ------------------------------------------------------------------------------


def _check_gated_input(op: str, x: torch.Tensor) -> None:
    _check_activation(op, "x", x)
    if x.shape[-1] % 2:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'x' must have an even last dimension ([gate | up], "
            f"2d columns), got {x.shape[-1]}"
        )


def validate_silu_and_mul(x: torch.Tensor) -> None:
    _check_gated_input("silu_and_mul", x)


def validate_gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> None:
    _check_gated_input("gelu_and_mul", x)
    if not isinstance(approximate, str):
        raise TypeError(
            "ir_core.ops.gelu_and_mul: argument 'approximate' must be a str, "
            f"got {type(approximate).__name__}"
        )
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(
            "ir_core.ops.gelu_and_mul: argument 'approximate' must be one of "
            f"{', '.join(map(repr, GELU_APPROXIMATIONS))}, got {approximate!r}"
        )


# -- sample inputs ---------------------------------------------------------------------------


def _gated_cases(
    dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> Iterator[tuple[str, torch.Tensor]]:
    """(label, x) for the cases every gated-activation impl must get right."""
    for d in (1, 8, 127, 1024):
        yield f"2d d={d}", _activation((3, 2 * d), dtype, device, g)
    yield "3d", _activation((2, 3, 2 * 48), dtype, device, g)
    # the gate_up projection's output seen through a wider buffer (rows 2d + 24 apart)
    yield "strided rows", _activation((4, 2 * 96 + 24), dtype, device, g)[:, 8 : 8 + 192]
    yield "zero tokens", _activation((0, 2 * 64), dtype, device, g)
    yield "one token", _activation((1, 2 * 512), dtype, device, g)
    # large |gate|: silu/gelu saturate to 0 and to the identity; exp must not overflow
    saturating = _activation((2, 2 * 64), dtype, device, g)
    saturating[:, :64] *= 8.0
    yield "saturating", saturating


def silu_and_mul_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(10)
    for label, x in _gated_cases(dtype, device, g):
        yield Sample((x,), {}, label)


def gelu_and_mul_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(11)
    for label, x in _gated_cases(dtype, device, g):
        for approximate in GELU_APPROXIMATIONS:
            yield Sample((x,), {"approximate": approximate}, f"{label} approximate={approximate}")


def silu_and_mul_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    """``h`` is the MLP's intermediate size d: ``x`` is ``(n, 2h)``, the output ``(n, h)``."""
    g = torch.Generator().manual_seed(0)
    return Sample((_activation((n, 2 * h), dtype, device, g),))


def gelu_and_mul_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    """As :func:`silu_and_mul_example`, with Gemma's tanh approximation."""
    g = torch.Generator().manual_seed(0)
    return Sample((_activation((n, 2 * h), dtype, device, g),), {"approximate": "tanh"})
