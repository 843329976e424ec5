"""RMSNorm ops: native semantics, input validation and sample inputs (docs/contract.md).

All arithmetic is in fp32 and rounded once, to the output dtype, at the end. That is what good
fused kernels do anyway; it needs no dtype special cases and lets a bf16 activation meet an
fp32 weight (Gemma's ``1 + weight``) without a detour.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from numbers import Real

import torch
import torch.nn.functional as F

from ..op import Sample

#: Weight dtypes that a product with an fp32 tensor widens to fp32 exactly, as ``.float()`` does.
_WIDENED_EXACTLY = (torch.float32, torch.bfloat16, torch.float16)
#: Output dtypes a product of fp32 tensors can be rounded to in the same kernel (``out=``).
_ROUNDED_IN_KERNEL = (torch.bfloat16, torch.float16)


def _normalize(
    xf: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float,
    variance_size: int | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """RMSNorm of an fp32 tensor, computed in fp32 and rounded once to ``dtype``: the shared
    body of every norm op.

    It is ``(xf * rsqrt(mean(xf ** 2) + eps) * (weight.float() + bias)).to(dtype)`` without the
    work that leaves the result unchanged, because this is what runs eagerly on CPU and as the
    fallback everywhere: no slice without ``variance_size``; no ``+ bias`` when the bias is
    zero; no ``weight.float()`` copy of a 16-bit or fp32 weight (the fp32 product widens it
    exactly); the temporaries updated in place; the last product rounded to a 16-bit ``dtype``
    as it is written instead of by a separate ``.to``. The one bit that can differ from the
    spelled-out formula: a weight element of -0.0 with a zero bias gives a zero of the other
    sign (``-0.0 + 0.0`` is ``+0.0``); it compares equal.
    """
    xv = xf if variance_size is None else xf[..., :variance_size]
    out = xf * xv.pow(2).mean(dim=-1, keepdim=True).add_(epsilon).rsqrt_()
    if weight is None:
        return out.to(dtype)
    if weight_bias:
        scale = weight.float() + weight_bias
    else:
        scale = weight if weight.dtype in _WIDENED_EXACTLY else weight.float()
    if dtype in _ROUNDED_IN_KERNEL and not (out.requires_grad or scale.requires_grad):
        return torch.mul(out, scale, out=torch.empty_like(out, dtype=dtype))  # no autograd
    return out.mul_(scale).to(dtype)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMSNorm over the last dimension of ``x`` (shape ``(..., H)``).

    ``out = x * rsqrt(mean(x[..., :variance_size] ** 2) + epsilon) * (weight + weight_bias)``,
    computed in fp32 and returned in ``x``'s dtype. ``weight`` is ``(H,)`` of any float dtype,
    or ``None`` for no scaling; ``weight_bias=1.0`` is Gemma's ``1 + weight``;
    ``variance_size`` takes the variance over the first ``variance_size`` channels only.
    """
    return _normalize(x.float(), weight, epsilon, weight_bias, variance_size, x.dtype)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``s = x + residual``; returns ``(rms_norm(s), s)``.

    The sum is taken in fp32; ``residual_out`` is it rounded to ``residual``'s dtype, and the
    norm is of the fp32 sum (not of the rounded ``residual_out``), in ``x``'s dtype.
    """
    s = x.float() + residual.float()
    out = _normalize(s, weight, epsilon, weight_bias, variance_size, x.dtype)
    return out, s.to(residual.dtype)


def dual_rms_norm(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent RMSNorms, ``(rms_norm(a), rms_norm(b))``.

    MLA normalizes its q and kv latents back to back; a kernel can do both in one launch.
    """
    return (
        _normalize(a.float(), a_weight, a_epsilon, 0.0, None, a.dtype),
        _normalize(b.float(), b_weight, b_epsilon, 0.0, None, b.dtype),
    )


#: gated_rms_norm's fp32 tolerance, widened from 1.3e-6 for the exp inside silu(gate), as for
#: the gated activations (see :data:`ir_core.catalogue.activations.TOLERANCES`).
GATED_RMS_NORM_TOLERANCES = {torch.float32: (1e-5, 1e-5)}


def gated_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    gate: torch.Tensor,
    epsilon: float,
    weight_bias: float = 0.0,
    group_size: int | None = None,
    norm_before_gate: bool = True,
) -> torch.Tensor:
    """RMSNorm gated by ``silu(gate)``: Qwen3-Next's linear attention and the Mamba2 family.

    ``norm_before_gate=True``: ``rms(x) * (weight + weight_bias) * silu(gate)``; ``False``:
    ``rms(x * silu(gate)) * (weight + weight_bias)``. ``group_size`` takes the variance per
    contiguous group of that many channels (Mamba2's ``ngroups``), None over all of H.
    ``x`` and ``gate`` are ``(..., H)``; everything is computed in fp32 and rounded once to
    x's dtype (Hugging Face's Qwen3-Next rounds ``rms(x)`` to x's dtype before the gate; a
    fused kernel does not, and neither does the semantics).
    """
    h = x.shape[-1]
    k = group_size or h
    silu_gate = F.silu(gate.float())
    xf = x.float() if norm_before_gate else x.float() * silu_gate
    groups = xf.reshape(*xf.shape[:-1], h // k, k)
    out = _normalize(groups, None, epsilon, 0.0, None, torch.float32).reshape(xf.shape)
    out = out * (weight.float() + weight_bias)
    if norm_before_gate:
        out = out * silu_gate
    return out.to(x.dtype)


# -- validation ------------------------------------------------------------------------------


def _check_activation(op: str, name: str, t: torch.Tensor) -> None:
    if not t.is_floating_point():
        raise TypeError(
            f"ir_core.ops.{op}: argument '{name}' must have a floating-point dtype, got {t.dtype}"
        )
    if t.dim() < 1:
        raise ValueError(f"ir_core.ops.{op}: argument '{name}' must have at least one dimension")


def _check_weight(op: str, name: str, weight: torch.Tensor | None, x: torch.Tensor) -> None:
    if weight is None:
        return
    if not weight.is_floating_point():
        raise TypeError(
            f"ir_core.ops.{op}: argument '{name}' must have a floating-point dtype, "
            f"got {weight.dtype}"
        )
    if weight.dim() != 1 or weight.shape[0] != x.shape[-1]:
        raise ValueError(
            f"ir_core.ops.{op}: argument '{name}' must have shape ({x.shape[-1]},) to match the "
            f"last dimension of the input, got {tuple(weight.shape)}"
        )
    if weight.device != x.device:
        raise ValueError(
            f"ir_core.ops.{op}: argument '{name}' is on {weight.device}, the input on {x.device}"
        )


def _check_float(op: str, name: str, value: float) -> None:
    """A Python or NumPy scalar torch can add to a tensor, and finite: a Fraction is a Real
    torch refuses, and an int beyond float range overflows deep inside the kernel."""
    if isinstance(value, (bool, Fraction)) or not isinstance(value, Real):
        raise TypeError(
            f"ir_core.ops.{op}: argument '{name}' must be a float, got {type(value).__name__}"
        )
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        text = repr(value)
        if len(text) > 24:
            text = f"{text[:12]}... ({len(text)} digits)"
        raise ValueError(f"ir_core.ops.{op}: argument '{name}' must be a finite float, got {text}")


def _check_epsilon(op: str, name: str, epsilon: float) -> None:
    _check_float(op, name, epsilon)
    if not epsilon >= 0:
        raise ValueError(f"ir_core.ops.{op}: argument '{name}' must be >= 0, got {epsilon}")


def _check_norm_options(
    op: str, x: torch.Tensor, weight: torch.Tensor | None, weight_bias: float, vs: int | None
) -> None:
    _check_float(op, "weight_bias", weight_bias)
    if weight is None and weight_bias != 0.0:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'weight_bias' must be 0.0 when weight is None, "
            f"got {weight_bias}"
        )
    if vs is None:
        return
    if isinstance(vs, bool) or not isinstance(vs, int):
        raise TypeError(
            f"ir_core.ops.{op}: argument 'variance_size' must be an int or None, "
            f"got {type(vs).__name__}"
        )
    if not 1 <= vs <= x.shape[-1]:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'variance_size' must be in 1..{x.shape[-1]}, got {vs}"
        )


def validate_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> None:
    _check_activation("rms_norm", "x", x)
    _check_weight("rms_norm", "weight", weight, x)
    _check_epsilon("rms_norm", "epsilon", epsilon)
    _check_norm_options("rms_norm", x, weight, weight_bias, variance_size)


def validate_fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> None:
    op = "fused_add_rms_norm"
    _check_activation(op, "x", x)
    _check_activation(op, "residual", residual)
    if residual.shape != x.shape:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'residual' must have the shape of x "
            f"{tuple(x.shape)}, got {tuple(residual.shape)}"
        )
    if residual.device != x.device:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'residual' is on {residual.device}, x on {x.device}"
        )
    _check_weight(op, "weight", weight, x)
    _check_epsilon(op, "epsilon", epsilon)
    _check_norm_options(op, x, weight, weight_bias, variance_size)


def validate_dual_rms_norm(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> None:
    op = "dual_rms_norm"
    for name, t, w_name, w, eps_name, eps in (
        ("a", a, "a_weight", a_weight, "a_epsilon", a_epsilon),
        ("b", b, "b_weight", b_weight, "b_epsilon", b_epsilon),
    ):
        _check_activation(op, name, t)
        _check_weight(op, w_name, w, t)
        _check_epsilon(op, eps_name, eps)


def validate_gated_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    gate: torch.Tensor,
    epsilon: float,
    weight_bias: float = 0.0,
    group_size: int | None = None,
    norm_before_gate: bool = True,
) -> None:
    op = "gated_rms_norm"
    _check_activation(op, "x", x)
    _check_weight(op, "weight", weight, x)
    _check_activation(op, "gate", gate)
    if gate.shape != x.shape:
        raise ValueError(
            f"ir_core.ops.{op}: argument 'gate' must have the shape of x {tuple(x.shape)}, "
            f"got {tuple(gate.shape)}"
        )
    if gate.device != x.device:
        raise ValueError(f"ir_core.ops.{op}: argument 'gate' is on {gate.device}, x on {x.device}")
    _check_epsilon(op, "epsilon", epsilon)
    _check_norm_options(op, x, weight, weight_bias, None)
    if group_size is not None:
        if isinstance(group_size, bool) or not isinstance(group_size, int):
            raise TypeError(
                f"ir_core.ops.{op}: argument 'group_size' must be an int or None, "
                f"got {type(group_size).__name__}"
            )
        h = x.shape[-1]
        if not 1 <= group_size <= h or h % group_size:
            raise ValueError(
                f"ir_core.ops.{op}: argument 'group_size' must divide the last dimension of x "
                f"({h}), got {group_size}"
            )
    if not isinstance(norm_before_gate, bool):
        raise TypeError(
            f"ir_core.ops.{op}: argument 'norm_before_gate' must be a bool, "
            f"got {type(norm_before_gate).__name__}"
        )


# -- sample inputs ---------------------------------------------------------------------------

_EPS = 1e-6


def _activation(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> torch.Tensor:
    return (
        torch.randn(shape, generator=g, dtype=torch.float32)
        .mul_(2.0)
        .to(dtype=dtype, device=device)
    )


def _weight(h: int, dtype: torch.dtype, device: torch.device, g: torch.Generator) -> torch.Tensor:
    w = torch.randn(h, generator=g, dtype=torch.float32).mul_(0.5).add_(1.0)
    return w.to(dtype=dtype, device=device)


def _strided_rows(
    t: int, h: int, dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> torch.Tensor:
    """Rows of a wider buffer (a split of a fused projection): unit last-dim stride only."""
    return _activation((t, h + 24), dtype, device, g)[:, 5 : 5 + h]


def _norm_cases(
    dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None, dict]]:
    """(label, x, weight, options) for the cases every norm impl must get right."""
    for h in (1, 8, 127, 1024):
        yield f"2d h={h}", _activation((3, h), dtype, device, g), _weight(h, dtype, device, g), {}
    yield "3d", _activation((2, 3, 64), dtype, device, g), _weight(64, dtype, device, g), {}
    yield "strided rows", _strided_rows(4, 96, dtype, device, g), _weight(96, dtype, device, g), {}
    yield "zero tokens", _activation((0, 64), dtype, device, g), _weight(64, dtype, device, g), {}
    yield "one token", _activation((1, 512), dtype, device, g), _weight(512, dtype, device, g), {}
    yield "weight None", _activation((3, 64), dtype, device, g), None, {}
    yield (
        "weight_bias=1.0",
        _activation((3, 64), dtype, device, g),
        _weight(64, dtype, device, g).sub(1.0),
        {"weight_bias": 1.0},
    )
    if dtype != torch.float32:
        yield (
            "fp32 weight, weight_bias=1.0",
            _activation((3, 64), dtype, device, g),
            _weight(64, torch.float32, device, g).sub(1.0),
            {"weight_bias": 1.0},
        )
    yield (
        "variance_size=48",
        _activation((3, 64), dtype, device, g),
        _weight(64, dtype, device, g),
        {"variance_size": 48},
    )


def rms_norm_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(0)
    for label, x, w, options in _norm_cases(dtype, device, g):
        yield Sample((x, w, _EPS), dict(options), label)


def fused_add_rms_norm_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(1)
    for label, x, w, options in _norm_cases(dtype, device, g):
        residual = _activation(tuple(x.shape), dtype, device, g)
        yield Sample((x, residual, w, _EPS), dict(options), label)
    x = _activation((3, 64), dtype, device, g)
    if dtype != torch.float32:
        residual = _activation((3, 64), torch.float32, device, g)
        yield Sample((x, residual, _weight(64, dtype, device, g), _EPS), {}, "fp32 residual")


def dual_rms_norm_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(2)
    # MLA's latents: q_c and kv_c split from one projection, so both have strided rows.
    for t, (ha, hb) in ((3, (96, 32)), (0, (64, 16)), (5, (1536 // 8, 512 // 8))):
        fused = _activation((t, ha + hb + 8), dtype, device, g)
        a, b = fused[:, :ha], fused[:, ha : ha + hb]
        yield Sample(
            (a, _weight(ha, dtype, device, g), b, _weight(hb, dtype, device, g), _EPS, 1e-5),
            {},
            f"split latents t={t} ({ha}, {hb})",
        )
    a, b = _activation((2, 3, 64), dtype, device, g), _activation((2, 3, 8), dtype, device, g)
    yield Sample(
        (a, _weight(64, dtype, device, g), b, _weight(8, dtype, device, g), _EPS, _EPS), {}, "3d"
    )


def rms_norm_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    g = torch.Generator().manual_seed(0)
    return Sample((_activation((n, h), dtype, device, g), _weight(h, dtype, device, g), _EPS))


def fused_add_rms_norm_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    g = torch.Generator().manual_seed(0)
    x, r = _activation((n, h), dtype, device, g), _activation((n, h), dtype, device, g)
    return Sample((x, r, _weight(h, dtype, device, g), _EPS))


def dual_rms_norm_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    """``h`` is the q latent width; the kv latent is a third of it, as in DeepSeek's MLA."""
    g = torch.Generator().manual_seed(0)
    hb = max(1, h // 3)
    fused = _activation((n, h + hb), dtype, device, g)
    a, b = fused[:, :h], fused[:, h:]
    return Sample((a, _weight(h, dtype, device, g), b, _weight(hb, dtype, device, g), _EPS, _EPS))


def gated_rms_norm_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(3)

    def case(label: str, shape: tuple[int, ...], **options: object) -> Sample:
        x, gate = _activation(shape, dtype, device, g), _activation(shape, dtype, device, g)
        return Sample((x, _weight(shape[-1], dtype, device, g), gate, _EPS), options, label)

    for before in (True, False):
        tag = f"norm_before_gate={before}"
        yield case(f"2d h=127 {tag}", (3, 127), norm_before_gate=before)
        yield case(f"3d {tag}", (2, 3, 64), norm_before_gate=before)
        # Mamba2: the variance per group of channels (ngroups = 4)
        yield case(f"group_size=32 {tag}", (3, 128), group_size=32, norm_before_gate=before)
        yield case(f"zero tokens {tag}", (0, 64), norm_before_gate=before)
        # x and the gate z are slices of one projection (Qwen3-Next's in_proj_qkvz)
        fused = _activation((4, 2 * 96 + 16), dtype, device, g)
        yield Sample(
            (fused[:, :96], _weight(96, dtype, device, g), fused[:, 96 + 16 :], _EPS),
            {"norm_before_gate": before},
            f"strided rows {tag}",
        )
    for h in (1, 8, 1024):
        yield case(f"2d h={h}", (3, h))
    yield case("one token", (1, 512))
    yield case("group_size=1", (2, 16), group_size=1)
    yield case("group_size=H", (2, 48), group_size=48)
    x, gate = _activation((3, 64), dtype, device, g), _activation((3, 64), dtype, device, g)
    yield Sample(
        (x, _weight(64, dtype, device, g).sub(1.0), gate, _EPS),
        {"weight_bias": 1.0},
        "weight_bias=1.0",
    )
    if dtype != torch.float32:
        yield Sample((x, _weight(64, torch.float32, device, g), gate, _EPS), {}, "fp32 weight")
        yield Sample((x, _weight(64, dtype, device, g), gate.float(), _EPS), {}, "fp32 gate")


def gated_rms_norm_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    g = torch.Generator().manual_seed(0)
    x, gate = _activation((n, h), dtype, device, g), _activation((n, h), dtype, device, g)
    return Sample((x, _weight(h, dtype, device, g), gate, _EPS))
