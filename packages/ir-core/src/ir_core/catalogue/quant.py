"""FP8 quantization ops, and the fused norm+quant and activation+quant ops: native semantics,
validation, sample inputs and how impls are compared with native (docs/fp8-quant.md).

FP8 inference quantizes the input of every linear layer: after each norm (attention and MLP
inputs) and after the gated activation (the down projection's input). Every vendor fuses those
pairs, so each pair is an op with semantics of its own.

Numerics, for every op here:

- All arithmetic is fp32, whatever the input dtypes; the quantized value is taken from the fp32
  result (a fused op never rounds its norm or activation output to ``x``'s dtype first).
- ``q = clamp(v / scale, -fmax, fmax).to(dtype)``: a true division, saturation at the fp8
  dtype's largest finite value ``fmax = torch.finfo(dtype).max`` (448 for ``float8_e4m3fn``, 240
  for ROCm's ``float8_e4m3fnuz``), then one round-to-nearest-even into ``dtype``.
- Dynamic scales (per tensor or per token): ``max(min(amax, scale_ub) / fmax, 1 / (fmax * 512))``;
  the floor keeps an all-zero row from dividing by zero and bounds ``1 / scale``.
- Group scales: ``max(amax, 1e-10) / fmax`` per token and per ``group_size`` contiguous channels,
  rounded *up* to a power of two with ``scale_ue8m0`` (exactly: the fp32 exponent is bumped
  unless the mantissa is zero, as DeepGEMM's UE8M0 scales need), optionally stored column-major
  (the group index outermost in memory) with the same values.

How impls are judged (:func:`compare_quantized`): fp8 codes by the values they dequantize to
(``q * scale``), within one fp8 step of the value -- division by a scale computed with a
different rounding, ``x * (1 / scale)``, or an fp32 sum taken in another order moves ``v / scale``
by a few fp32 ulps, which can move it across one rounding boundary of the fp8 grid, never two --
plus ``SCALE_RTOL`` of it for the scale; scales within ``SCALE_RTOL`` (fp32); other outputs
(``residual_out``) within the default tolerance of their dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..op import (
    DEFAULT_TOLERANCES,
    Compare,
    Comparison,
    OpDeclaration,
    Sample,
    value_comparison,
)
from .norms import (
    _activation,
    _check_activation,
    _check_epsilon,
    _check_norm_options,
    _check_weight,
    _norm_cases,
    _normalize,
    _strided_rows,
    _weight,
)

#: The fp8 dtypes the ops produce: OCP E4M3 (NVIDIA, Intel, AMD MI350) and AMD MI300's FNUZ.
FP8_DTYPES: tuple[torch.dtype, ...] = (torch.float8_e4m3fn, torch.float8_e4m3fnuz)
DEFAULT_FP8 = torch.float8_e4m3fn

#: Dynamic scales never go below ``1 / (fmax * DYNAMIC_SCALE_FLOOR_DIVISOR)``.
DYNAMIC_SCALE_FLOOR_DIVISOR = 512.0
#: Group scales are computed from ``max(amax, GROUP_AMAX_FLOOR)``.
GROUP_AMAX_FLOOR = 1e-10
#: Relative tolerance of fp32 scales (and of the scale's share in a dequantized value): an
#: amax over a norm's output computed with another rsqrt or summation order lands a few fp32
#: ulps away (1e-5 is about 80 ulps, the DESIGN's fp32 atol at unit scale).
SCALE_RTOL = 1e-5


def fp8_max(dtype: torch.dtype) -> float:
    """The largest finite value of the fp8 ``dtype`` (448 for e4m3fn, 240 for e4m3fnuz)."""
    return float(torch.finfo(dtype).max)


def min_dynamic_scale(dtype: torch.dtype) -> float:
    """The floor of dynamic scales, ``1 / (fmax * 512)``."""
    return 1.0 / (fp8_max(dtype) * DYNAMIC_SCALE_FLOOR_DIVISOR)


# -- the fp32 building blocks ----------------------------------------------------------------


def _quantize(v: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``clamp(v / scale, -fmax, fmax)`` rounded once into ``dtype``; ``v`` and ``scale`` fp32."""
    fmax = fp8_max(dtype)
    return (v / scale).clamp(-fmax, fmax).to(dtype)


def _amax(v: torch.Tensor, per_token: bool) -> torch.Tensor:
    """``max |v|`` per token, shape ``(..., 1)``, or over the whole tensor, shape ``(1,)``."""
    if per_token:
        return v.abs().amax(dim=-1, keepdim=True)
    flat = v.abs().reshape(-1)
    # torch refuses the max of nothing; zero tokens have amax 0 (then the scale is the floor)
    return flat.amax().reshape(1) if flat.numel() else flat.new_zeros(1)


def _dynamic_scale(
    v: torch.Tensor, per_token: bool, scale_ub: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    amax = _amax(v, per_token)
    if scale_ub is not None:
        amax = torch.minimum(amax, scale_ub.reshape(()))
    return (amax / fp8_max(dtype)).clamp_min(min_dynamic_scale(dtype))


def ceil_pow2(scale: torch.Tensor) -> torch.Tensor:
    """The smallest power of two ``>= scale`` for positive normal fp32 ``scale``, exactly.

    On the bits: adding ``2^23 - 1`` carries into the exponent unless the mantissa is zero, and
    the mantissa is then cleared. ``exp2(ceil(log2(s)))`` would depend on the rounding of
    ``log2`` just above a power of two.
    """
    bits = scale.view(torch.int32)
    return ((bits + 0x7FFFFF) & 0x7F800000).view(torch.float32)


def _group_quantize(
    v: torch.Tensor,
    group_size: int,
    column_major_scales: bool,
    scale_ue8m0: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    groups = v.unflatten(-1, (-1, group_size))
    scale = groups.abs().amax(dim=-1).clamp_min(GROUP_AMAX_FLOOR) / fp8_max(dtype)
    if scale_ue8m0:
        scale = ceil_pow2(scale)
    q = _quantize(groups, scale.unsqueeze(-1), dtype).flatten(-2)
    if column_major_scales:  # same values, the group index outermost in memory
        scale = scale.movedim(-1, 0).contiguous().movedim(0, -1)
    return q, scale


def _silu_and_mul(xf: torch.Tensor) -> torch.Tensor:
    d = xf.shape[-1] // 2
    return F.silu(xf[..., :d]) * xf[..., d:]


# -- the ops ---------------------------------------------------------------------------------


def fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> torch.Tensor:
    """``clamp(x / scale, -fmax, fmax)`` in the fp8 ``dtype``, with a given scale.

    ``x``: (..., H) of a 16/32/64-bit float dtype; ``scale``: a one-element fp32 tensor (the
    checkpoint's activation scale); returns x's shape in ``dtype``.
    """
    return _quantize(x.float(), scale.reshape(()), dtype)


def fp8_quant_dynamic(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` with a scale computed from it; returns ``(q, scale)``.

    ``scale = max(min(amax, scale_ub) / fmax, 1 / (fmax * 512))`` (fp32), with ``amax`` over
    the whole tensor (``scale`` shape ``(1,)``) or, with ``per_token``, over each token's last
    dim (shape ``(..., 1)``). ``scale_ub`` (one-element fp32, per token only) caps outliers.
    """
    xf = x.float()
    scale = _dynamic_scale(xf, per_token, scale_ub, dtype)
    return _quantize(xf, scale, dtype), scale


def fp8_quant_group(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token and per ``group_size`` contiguous channels (DeepSeek-V3's 1x128 blocks).

    ``scale = max(amax, 1e-10) / fmax`` per group (fp32, shape ``(..., H / group_size)``),
    rounded up to a power of two with ``scale_ue8m0``; with ``column_major_scales`` the scales
    are stored with the group index outermost (strides ``(1, T)`` for 2-D ``x``), as DeepGEMM
    reads them. Returns ``(q, scale)``.
    """
    return _group_quantize(x.float(), group_size, column_major_scales, scale_ue8m0, dtype)


def rms_norm_fp8_quant_static(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = DEFAULT_FP8,
) -> torch.Tensor:
    """``fp8_quant_static(rms_norm(x, weight, epsilon, weight_bias), scale, dtype)``, except
    that the fp32 norm is quantized (not the norm rounded to x's dtype).

    Against the unfused pair: bitwise equal for fp32 ``x``. For fp16/bf16 ``x`` the unfused norm
    output is rounded first, by at most half an ulp of x's dtype (2^-11 / 2^-8 relative), which
    moves a value across at most one rounding boundary of the fp8 grid (whose steps are 2^-3
    relative): the codes differ by at most one fp8 step, where they differ at all.
    """
    y = _normalize(x.float(), weight, epsilon, weight_bias, None, torch.float32)
    return _quantize(y, scale.reshape(()), dtype)


def fused_add_rms_norm_fp8_quant_static(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``s = x + residual``; returns ``(fp8_quant_static(rms_norm(s), scale), s)``.

    ``residual_out`` is the fp32 sum rounded to residual's dtype (bitwise what
    ``fused_add_rms_norm`` returns); the norm is of the fp32 sum and is quantized from fp32.
    Against ``fused_add_rms_norm`` then ``fp8_quant_static``: ``residual_out`` bitwise equal;
    ``q`` bitwise equal for fp32 ``x``, else within one fp8 step (see
    :func:`rms_norm_fp8_quant_static`).
    """
    s = x.float() + residual.float()
    q = _quantize(
        _normalize(s, weight, epsilon, weight_bias, None, torch.float32), scale.reshape(()), dtype
    )
    return q, s.to(residual.dtype)


def rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS norm, then per-token dynamic quantization of the fp32 norm; returns ``(q, scale)``,
    ``scale`` of shape ``(..., 1)``.

    Against ``rms_norm`` then ``fp8_quant_dynamic(per_token=True)``: bitwise equal for fp32
    ``x``. For fp16/bf16 the unfused amax is taken over the rounded norm output, so each scale
    may differ by up to half an ulp of x's dtype (2^-11 / 2^-8 relative) and the codes by one
    fp8 step; the dequantized values stay within one fp8 step of each other.
    """
    y = _normalize(x.float(), weight, epsilon, weight_bias, None, torch.float32)
    scale = _dynamic_scale(y, True, scale_ub, dtype)
    return _quantize(y, scale, dtype), scale


def fused_add_rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``s = x + residual``; returns ``(q, scale, s)``: the per-token dynamic quantization of the
    fp32 norm of the fp32 sum, and the sum rounded to residual's dtype.

    Against ``fused_add_rms_norm`` then ``fp8_quant_dynamic(per_token=True)``: as
    :func:`rms_norm_fp8_quant_dynamic`, and ``residual_out`` is bitwise equal.
    """
    s = x.float() + residual.float()
    y = _normalize(s, weight, epsilon, weight_bias, None, torch.float32)
    scale = _dynamic_scale(y, True, scale_ub, dtype)
    return _quantize(y, scale, dtype), scale, s.to(residual.dtype)


def rms_norm_fp8_quant_group(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS norm, then :func:`fp8_quant_group` of the fp32 norm; returns ``(q, scale)``.

    Against ``rms_norm`` then ``fp8_quant_group``: bitwise equal for fp32 ``x``. For fp16/bf16,
    scales may differ by half an ulp of x's dtype and codes by one fp8 step; with
    ``scale_ue8m0`` a group whose ``amax / fmax`` lies within that rounding of a power of two
    may get the neighbouring power of two (a factor of 2, the codes halved or doubled with it),
    so compare such groups by their dequantized values, which stay within one fp8 step.
    """
    y = _normalize(x.float(), weight, epsilon, weight_bias, None, torch.float32)
    return _group_quantize(y, group_size, column_major_scales, scale_ue8m0, dtype)


def silu_and_mul_fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> torch.Tensor:
    """``fp8_quant_static(silu(x[..., :d]) * x[..., d:], scale)`` for ``x`` of shape
    ``(..., 2d)``, the product computed and quantized in fp32.

    Against ``silu_and_mul`` then ``fp8_quant_static``: bitwise equal for fp32 ``x`` (both take
    ``silu`` and the product in fp32); for fp16/bf16 the unfused product is rounded to x's dtype
    first, so codes may differ by one fp8 step.
    """
    return _quantize(_silu_and_mul(x.float()), scale.reshape(()), dtype)


# -- validation ------------------------------------------------------------------------------


def _fail(op: str, name: str, what: str, exc: type[Exception] = ValueError) -> Exception:
    return exc(f"ir_core.ops.{op}: argument '{name}' {what}")


def _check_input(op: str, name: str, x: torch.Tensor) -> None:
    """A float activation of at least 16 bits with at least one channel."""
    _check_activation(op, name, x)
    if x.element_size() < 2:
        raise _fail(
            op, name, f"must be a 16-, 32- or 64-bit float tensor, got {x.dtype}", TypeError
        )
    if x.shape[-1] < 1:
        raise _fail(op, name, "must have at least one element in its last dimension")


def _check_dtype(op: str, dtype: Any) -> None:
    if not isinstance(dtype, torch.dtype):
        raise _fail(op, "dtype", f"must be a torch.dtype, got {type(dtype).__name__}", TypeError)
    if dtype not in FP8_DTYPES:
        names = ", ".join(f"torch.{str(d).removeprefix('torch.')}" for d in FP8_DTYPES)
        raise _fail(op, "dtype", f"must be one of {names}, got {dtype}")


def _check_scale(op: str, name: str, scale: torch.Tensor, x: torch.Tensor) -> None:
    """A one-element fp32 tensor on x's device."""
    if scale.dtype != torch.float32:
        raise _fail(op, name, f"must be a float32 tensor, got {scale.dtype}", TypeError)
    if scale.numel() != 1:
        raise _fail(op, name, f"must have exactly one element, got shape {tuple(scale.shape)}")
    if scale.device != x.device:
        raise _fail(op, name, f"is on {scale.device}, the input on {x.device}")


def _check_flag(op: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(op, name, f"must be a bool, got {type(value).__name__}", TypeError)


def _check_group_size(op: str, group_size: Any, x: torch.Tensor) -> None:
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise _fail(op, "group_size", f"must be an int, got {type(group_size).__name__}", TypeError)
    if group_size < 1:
        raise _fail(op, "group_size", f"must be positive, got {group_size}")
    if x.shape[-1] % group_size:
        raise _fail(
            op,
            "group_size",
            f"must divide the last dimension of x ({x.shape[-1]}), got {group_size}",
        )


def _check_residual(op: str, residual: torch.Tensor, x: torch.Tensor) -> None:
    _check_input(op, "residual", residual)
    if residual.shape != x.shape:
        raise _fail(
            op,
            "residual",
            f"must have the shape of x {tuple(x.shape)}, got {tuple(residual.shape)}",
        )
    if residual.device != x.device:
        raise _fail(op, "residual", f"is on {residual.device}, x on {x.device}")


def _check_norm(
    op: str, x: torch.Tensor, weight: torch.Tensor | None, epsilon: float, weight_bias: float
) -> None:
    _check_input(op, "x", x)
    _check_weight(op, "weight", weight, x)
    _check_epsilon(op, "epsilon", epsilon)
    _check_norm_options(op, x, weight, weight_bias, None)


def validate_fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> None:
    op = "fp8_quant_static"
    _check_input(op, "x", x)
    _check_scale(op, "scale", scale, x)
    _check_dtype(op, dtype)


def validate_fp8_quant_dynamic(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "fp8_quant_dynamic"
    _check_input(op, "x", x)
    _check_flag(op, "per_token", per_token)
    if scale_ub is not None:
        if not per_token:
            raise _fail(op, "scale_ub", "applies to per-token scales only; pass per_token=True")
        _check_scale(op, "scale_ub", scale_ub, x)
    _check_dtype(op, dtype)


def validate_fp8_quant_group(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "fp8_quant_group"
    _check_input(op, "x", x)
    _check_group_size(op, group_size, x)
    _check_flag(op, "column_major_scales", column_major_scales)
    _check_flag(op, "scale_ue8m0", scale_ue8m0)
    _check_dtype(op, dtype)


def validate_rms_norm_fp8_quant_static(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "rms_norm_fp8_quant_static"
    _check_norm(op, x, weight, epsilon, weight_bias)
    _check_scale(op, "scale", scale, x)
    _check_dtype(op, dtype)


def validate_fused_add_rms_norm_fp8_quant_static(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "fused_add_rms_norm_fp8_quant_static"
    _check_norm(op, x, weight, epsilon, weight_bias)
    _check_residual(op, residual, x)
    _check_scale(op, "scale", scale, x)
    _check_dtype(op, dtype)


def validate_rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "rms_norm_fp8_quant_dynamic"
    _check_norm(op, x, weight, epsilon, weight_bias)
    if scale_ub is not None:
        _check_scale(op, "scale_ub", scale_ub, x)
    _check_dtype(op, dtype)


def validate_fused_add_rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "fused_add_rms_norm_fp8_quant_dynamic"
    _check_norm(op, x, weight, epsilon, weight_bias)
    _check_residual(op, residual, x)
    if scale_ub is not None:
        _check_scale(op, "scale_ub", scale_ub, x)
    _check_dtype(op, dtype)


def validate_rms_norm_fp8_quant_group(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> None:
    op = "rms_norm_fp8_quant_group"
    _check_norm(op, x, weight, epsilon, weight_bias)
    _check_group_size(op, group_size, x)
    _check_flag(op, "column_major_scales", column_major_scales)
    _check_flag(op, "scale_ue8m0", scale_ue8m0)
    _check_dtype(op, dtype)


def validate_silu_and_mul_fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> None:
    op = "silu_and_mul_fp8_quant_static"
    _check_input(op, "x", x)
    if x.shape[-1] % 2:
        raise _fail(
            op, "x", f"must have an even last dimension (gate and up halves), got {x.shape[-1]}"
        )
    _check_scale(op, "scale", scale, x)
    _check_dtype(op, dtype)


# -- comparing impls with native ---------------------------------------------------------------


def fp8_step(magnitude: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of the fp8 ``dtype``'s grid at ``magnitude`` (>= 0, fp64): ``eps`` times the
    power of two at or below it, and the subnormal spacing below the smallest normal."""
    info = torch.finfo(dtype)
    _, exponent = torch.frexp(magnitude.clamp_min(info.smallest_normal))
    return info.eps * torch.ldexp(torch.ones_like(magnitude), exponent - 1)


def _per_element(scale: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``scale`` (one element, per token ``(..., 1)`` or per group ``(..., G)``) spread over a
    tensor of ``shape``, in fp64."""
    s = scale.detach().double().cpu()
    if s.numel() == 1:
        return s.reshape(())
    if s.shape[-1] not in (1, shape[-1]) and shape[-1]:
        s = s.repeat_interleave(shape[-1] // s.shape[-1], dim=-1)
    return s


def dequantized_comparison(
    what: str,
    q: torch.Tensor,
    q_expected: torch.Tensor,
    scale: torch.Tensor,
    scale_expected: torch.Tensor,
) -> Comparison:
    """fp8 codes judged by ``q * scale``: within one fp8 step of the value (at the larger of the
    two codes, in the larger of the two scales), plus ``SCALE_RTOL`` of it."""
    qa, qe = q.detach().double().cpu(), q_expected.detach().double().cpu()
    sa, se = _per_element(scale, q.shape), _per_element(scale_expected, q.shape)
    da, de = qa * sa, qe * se
    step = fp8_step(torch.maximum(qa.abs(), qe.abs()), q_expected.dtype)
    allowed = step * torch.maximum(sa, se) + SCALE_RTOL * de.abs()
    return Comparison(
        f"{what} dequantized",
        da,
        de,
        allowed,
        f"one {q_expected.dtype} step of the value + rtol {SCALE_RTOL:g} (q * scale)",
    )


def scale_comparisons(what: str, scale: torch.Tensor, expected: torch.Tensor) -> list[Comparison]:
    """Scales within ``SCALE_RTOL``, and laid out as native lays them out (column-major group
    scales): the strides of dims longer than one must match."""
    a, e = scale.detach().double().cpu(), expected.detach().double().cpu()
    found = [Comparison(what, a, e, SCALE_RTOL * e.abs(), f"rtol {SCALE_RTOL:g} (fp32 scales)")]
    dims = [d for d in range(expected.dim()) if expected.shape[d] > 1]
    strides = [torch.tensor([float(t.stride(d)) for d in dims]) for t in (scale, expected)]
    found.append(Comparison(f"{what} strides", *strides, 0.0, "native's layout"))
    return found


def compare_quantized(*, static_scale: bool, residual_output: int | None = None) -> Compare:
    """The comparison of an op whose output 0 is fp8 codes: with ``static_scale`` their scale
    is the ``scale`` argument, else output 1; ``residual_output`` is the index of a plain output
    (``residual_out``) judged by the default tolerance of its dtype."""

    def compare(
        actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...], args: dict[str, Any]
    ) -> list[Comparison]:
        if static_scale:
            found = [
                dequantized_comparison(
                    "output 0", actual[0], expected[0], args["scale"], args["scale"]
                )
            ]
        else:
            found = [
                dequantized_comparison("output 0", actual[0], expected[0], actual[1], expected[1])
            ]
            found += scale_comparisons("output 1 (scale)", actual[1], expected[1])
        if residual_output is not None:
            a, e = actual[residual_output], expected[residual_output]
            found.append(
                value_comparison(f"output {residual_output}", a, e, *DEFAULT_TOLERANCES[e.dtype])
            )
        return found

    return compare


# -- sample inputs ---------------------------------------------------------------------------

_EPS = 1e-6


def _scale(value: float, device: torch.device) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float32, device=device)


def _rows(
    dtype: torch.dtype, device: torch.device, g: torch.Generator, *, even: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """(label, x) for the layouts and sizes every quant impl must handle; ``even``: only
    even last dims (a gated activation's two halves)."""
    sizes = (2, 8, 126, 1024) if even else (1, 8, 127, 1024)
    for h in sizes:
        yield f"2d h={h}", _activation((3, h), dtype, device, g)
    yield "3d", _activation((2, 3, 64), dtype, device, g)
    yield "strided rows", _strided_rows(4, 96, dtype, device, g)
    yield "zero tokens", _activation((0, 64), dtype, device, g)
    yield "one token", _activation((1, 512), dtype, device, g)


def _tiny(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> torch.Tensor:
    """Values so small that the dynamic-scale floor applies, and an all-zero first row."""
    x = _activation(shape, torch.float32, device, g).mul_(1e-6)
    x[0] = 0.0
    return x.to(dtype)


def fp8_quant_static_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(10)
    for label, x in _rows(dtype, device, g):
        yield Sample((x, _scale(0.02, device)), {}, label)
    x = _activation((3, 64), dtype, device, g)
    yield Sample((x, _scale(0.001, device)), {}, "saturating")
    yield Sample((x, _scale(0.015, device)), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz")
    yield Sample((x, _scale(0.02, device).reshape(())), {}, "0-d scale")


def fp8_quant_dynamic_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(11)
    for label, x in _rows(dtype, device, g):
        yield Sample((x,), {}, f"per tensor, {label}")
        yield Sample((x, True), {}, f"per token, {label}")
    x = _activation((4, 64), dtype, device, g)
    x[0] = x[0] * 0.1  # a row under the cap keeps its own scale
    yield Sample((x, True, _scale(3.0, device)), {}, "per token, scale_ub")
    tiny = _tiny((3, 64), dtype, device, g)
    yield Sample((tiny,), {}, "per tensor, scale floor")
    yield Sample((tiny, True), {}, "per token, scale floor")
    yield Sample((x, True), {"dtype": torch.float8_e4m3fnuz}, "per token, e4m3fnuz")
    yield Sample((x,), {"dtype": torch.float8_e4m3fnuz}, "per tensor, e4m3fnuz")


def _group_cases(
    dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> Iterator[tuple[str, torch.Tensor, dict]]:
    """(label, x, options) for the group-quantizing ops."""
    yield "2d h=256 g=128", _activation((3, 256), dtype, device, g), {}
    yield "h=96 g=32", _activation((5, 96), dtype, device, g), {"group_size": 32}
    yield "odd h=63 g=9", _activation((3, 63), dtype, device, g), {"group_size": 9}
    yield "3d g=64", _activation((2, 3, 128), dtype, device, g), {"group_size": 64}
    yield "strided rows", _strided_rows(4, 128, dtype, device, g), {"group_size": 64}
    yield "zero tokens", _activation((0, 128), dtype, device, g), {}
    yield (
        "column_major_scales",
        _activation((5, 256), dtype, device, g),
        {"group_size": 64, "column_major_scales": True},
    )
    yield (
        "3d column_major_scales",
        _activation((2, 3, 128), dtype, device, g),
        {"group_size": 32, "column_major_scales": True},
    )
    yield "scale_ue8m0", _activation((4, 256), dtype, device, g), {"scale_ue8m0": True}
    yield (
        "ue8m0 column-major",
        _activation((4, 256), dtype, device, g),
        {"group_size": 64, "scale_ue8m0": True, "column_major_scales": True},
    )
    yield "amax floor", _tiny((3, 128), dtype, device, g).mul(1e-5), {"group_size": 64}
    yield "e4m3fnuz", _activation((3, 128), dtype, device, g), {"dtype": torch.float8_e4m3fnuz}


def fp8_quant_group_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(12)
    for label, x, options in _group_cases(dtype, device, g):
        yield Sample((x,), dict(options), label)


def _norm_quant_cases(
    dtype: torch.dtype, device: torch.device, g: torch.Generator
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None, dict]]:
    """The norm ops' cases (sizes, layouts, weight None, Gemma's weight_bias, an fp32 weight)
    without a partial ``variance_size``, which the fused quant ops do not take."""
    for label, x, w, options in _norm_cases(dtype, device, g):
        if "variance_size" not in options:
            yield label, x, w, options


def rms_norm_fp8_quant_static_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(13)
    for label, x, w, options in _norm_quant_cases(dtype, device, g):
        yield Sample((x, w, _EPS, _scale(0.01, device)), options, label)
    x, w = _activation((3, 64), dtype, device, g), _weight(64, dtype, device, g)
    yield Sample((x, w, _EPS, _scale(0.001, device)), {}, "saturating")
    yield Sample((x, w, _EPS, _scale(0.01, device)), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz")


def fused_add_rms_norm_fp8_quant_static_samples(
    dtype: torch.dtype, device: torch.device
) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(14)
    for label, x, w, options in _norm_quant_cases(dtype, device, g):
        r = _activation(tuple(x.shape), dtype, device, g)
        yield Sample((x, r, w, _EPS, _scale(0.01, device)), options, label)
    x, w = _activation((3, 64), dtype, device, g), _weight(64, dtype, device, g)
    r = _activation((3, 64), dtype, device, g)
    yield Sample((x, r, w, _EPS, _scale(0.001, device)), {}, "saturating")
    yield Sample(
        (x, r, w, _EPS, _scale(0.01, device)), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz"
    )
    if dtype != torch.float32:
        r32 = _activation((3, 64), torch.float32, device, g)
        yield Sample((x, r32, w, _EPS, _scale(0.01, device)), {}, "fp32 residual")


def rms_norm_fp8_quant_dynamic_samples(
    dtype: torch.dtype, device: torch.device
) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(15)
    for label, x, w, options in _norm_quant_cases(dtype, device, g):
        yield Sample((x, w, _EPS), options, label)
    x, w = _activation((4, 64), dtype, device, g), _weight(64, dtype, device, g)
    yield Sample((x, w, _EPS), {"scale_ub": _scale(1.5, device)}, "scale_ub")
    yield Sample((x, w, _EPS), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz")
    # a zero row normalizes to zero: the scale floor
    yield Sample((_tiny((3, 64), dtype, device, g), w, _EPS), {}, "zero row")


def fused_add_rms_norm_fp8_quant_dynamic_samples(
    dtype: torch.dtype, device: torch.device
) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(16)
    for label, x, w, options in _norm_quant_cases(dtype, device, g):
        r = _activation(tuple(x.shape), dtype, device, g)
        yield Sample((x, r, w, _EPS), options, label)
    x, w = _activation((4, 64), dtype, device, g), _weight(64, dtype, device, g)
    r = _activation((4, 64), dtype, device, g)
    yield Sample((x, r, w, _EPS), {"scale_ub": _scale(1.5, device)}, "scale_ub")
    yield Sample((x, r, w, _EPS), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz")
    if dtype != torch.float32:
        r32 = _activation((4, 64), torch.float32, device, g)
        yield Sample((x, r32, w, _EPS), {}, "fp32 residual")


def rms_norm_fp8_quant_group_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(17)
    for label, x, options in _group_cases(dtype, device, g):
        # ("amax floor": the norm scales tiny rows back up; only its zero row hits the floor)
        yield Sample((x, _weight(x.shape[-1], dtype, device, g), _EPS), dict(options), label)
    x = _activation((3, 256), dtype, device, g)
    yield Sample((x, None, _EPS), {}, "weight None")
    yield Sample(
        (x, _weight(256, dtype, device, g).sub(1.0), _EPS), {"weight_bias": 1.0}, "weight_bias=1.0"
    )


def silu_and_mul_fp8_quant_static_samples(
    dtype: torch.dtype, device: torch.device
) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(18)
    for label, x in _rows(dtype, device, g, even=True):
        yield Sample((x, _scale(0.02, device)), {}, label)
    x = _activation((3, 128), dtype, device, g)
    yield Sample((x, _scale(0.0005, device)), {}, "saturating")
    yield Sample((x, _scale(0.02, device)), {"dtype": torch.float8_e4m3fnuz}, "e4m3fnuz")


# -- example inputs (benchmarks, explain) ----------------------------------------------------


def _example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return _activation((n, h), dtype, device, g), _weight(h, dtype, device, g)


def fp8_quant_static_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    return Sample((_example(n, h, dtype, device)[0], _scale(0.02, device)))


def fp8_quant_dynamic_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    return Sample((_example(n, h, dtype, device)[0], True))


def fp8_quant_group_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    return Sample((_example(n, h, dtype, device)[0],), {"group_size": 128 if h % 128 == 0 else h})


def rms_norm_fp8_quant_static_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    x, w = _example(n, h, dtype, device)
    return Sample((x, w, _EPS, _scale(0.01, device)))


def fused_add_rms_norm_fp8_quant_static_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    x, w = _example(n, h, dtype, device)
    return Sample((x, x.flip(0), w, _EPS, _scale(0.01, device)))


def rms_norm_fp8_quant_dynamic_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    x, w = _example(n, h, dtype, device)
    return Sample((x, w, _EPS))


def fused_add_rms_norm_fp8_quant_dynamic_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    x, w = _example(n, h, dtype, device)
    return Sample((x, x.flip(0), w, _EPS))


def rms_norm_fp8_quant_group_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    x, w = _example(n, h, dtype, device)
    return Sample((x, w, _EPS), {"group_size": 128 if h % 128 == 0 else h})


def silu_and_mul_fp8_quant_static_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    """``h`` is the output width: x is ``(n, 2h)`` (gate and up projections side by side)."""
    return Sample((_example(n, 2 * h, dtype, device)[0], _scale(0.02, device)))


_static, _dynamic = compare_quantized(static_scale=True), compare_quantized(static_scale=False)

#: Every op of this module, with its validation, samples, examples and comparison.
QUANT_OPS: tuple[OpDeclaration, ...] = (
    OpDeclaration(
        fp8_quant_static,
        validate=validate_fp8_quant_static,
        sample_inputs=fp8_quant_static_samples,
        example_inputs=fp8_quant_static_example,
        compare=_static,
    ),
    OpDeclaration(
        fp8_quant_dynamic,
        validate=validate_fp8_quant_dynamic,
        sample_inputs=fp8_quant_dynamic_samples,
        example_inputs=fp8_quant_dynamic_example,
        compare=_dynamic,
    ),
    OpDeclaration(
        fp8_quant_group,
        validate=validate_fp8_quant_group,
        sample_inputs=fp8_quant_group_samples,
        example_inputs=fp8_quant_group_example,
        compare=_dynamic,
    ),
    OpDeclaration(
        rms_norm_fp8_quant_static,
        validate=validate_rms_norm_fp8_quant_static,
        sample_inputs=rms_norm_fp8_quant_static_samples,
        example_inputs=rms_norm_fp8_quant_static_example,
        compare=_static,
    ),
    OpDeclaration(
        fused_add_rms_norm_fp8_quant_static,
        validate=validate_fused_add_rms_norm_fp8_quant_static,
        sample_inputs=fused_add_rms_norm_fp8_quant_static_samples,
        example_inputs=fused_add_rms_norm_fp8_quant_static_example,
        compare=compare_quantized(static_scale=True, residual_output=1),
    ),
    OpDeclaration(
        rms_norm_fp8_quant_dynamic,
        validate=validate_rms_norm_fp8_quant_dynamic,
        sample_inputs=rms_norm_fp8_quant_dynamic_samples,
        example_inputs=rms_norm_fp8_quant_dynamic_example,
        compare=_dynamic,
    ),
    OpDeclaration(
        fused_add_rms_norm_fp8_quant_dynamic,
        validate=validate_fused_add_rms_norm_fp8_quant_dynamic,
        sample_inputs=fused_add_rms_norm_fp8_quant_dynamic_samples,
        example_inputs=fused_add_rms_norm_fp8_quant_dynamic_example,
        compare=compare_quantized(static_scale=False, residual_output=2),
    ),
    OpDeclaration(
        rms_norm_fp8_quant_group,
        validate=validate_rms_norm_fp8_quant_group,
        sample_inputs=rms_norm_fp8_quant_group_samples,
        example_inputs=rms_norm_fp8_quant_group_example,
        compare=_dynamic,
    ),
    OpDeclaration(
        silu_and_mul_fp8_quant_static,
        validate=validate_silu_and_mul_fp8_quant_static,
        sample_inputs=silu_and_mul_fp8_quant_static_samples,
        example_inputs=silu_and_mul_fp8_quant_static_example,
        compare=_static,
    ),
)
