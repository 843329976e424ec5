"""Triton kernels for the fp8 quant ops and the fused norm/activation + quant ops, their launch
heuristics and their launchers.

Imported on the first call by :mod:`ir_provider_cuda.triton_quant` (never with the plugin), like
:mod:`ir_provider_cuda.triton_kernels`, whose row addressing, launch heuristics and bf16
rounding these kernels share.

Numerics (ir-core's quant contract): every load is widened to fp32; the residual add, the norm,
``silu(a) * b``, the amax and the scale are fp32; ``q = clamp(v / scale, -fmax, fmax)`` with an
IEEE division (``div_rn``, as torch divides), then one round-to-nearest-even into fp8. A fused
kernel quantizes its fp32 norm (or activation) and never rounds it to x's dtype first.

Two ways to round into fp8, chosen per launch by :func:`hardware_fp8`:

- the GPU's conversion (``cvt.rn.satfinite.e4m3x2.f32`` on NVIDIA sm_89+, for ``float8_e4m3fn``),
  which rounds to nearest even;
- :func:`_fp8_code`, the code computed on the fp32 bits with integer arithmetic only, stored as
  a byte. Exact on every device and in Triton's interpreter, whose own fp32->fp8 cast is not:
  it rounds ties away from zero (17.0 -> 18.0 instead of 16.0) and truncates fp8 subnormals
  (1e-3 -> 0 instead of 2^-9), and its e4m3fnuz cast mis-encodes the top binade. So interpreted
  runs, ROCm (whose Triton fp8 conversions this project cannot test) and NVIDIA GPUs before
  sm_89 (where Triton has no e4m3 type) store the integer code.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .triton_kernels import INTERPRETED, _layout, _round_to, _row_start, launch_config

# --------------------------------------------------------------------------------------------
# Launch heuristics
# --------------------------------------------------------------------------------------------

#: (largest finite value, exponent of the smallest normal, code of NaN) per fp8 dtype.
FP8_FORMATS: dict[torch.dtype, tuple[float, int, int]] = {
    torch.float8_e4m3fn: (448.0, -6, 0x7F),
    torch.float8_e4m3fnuz: (240.0, -7, 0x80),
}
#: Dynamic scales never go below ``1 / (fmax * 512)``; group amaxes never below 1e-10.
DYNAMIC_SCALE_FLOOR_DIVISOR = 512.0
GROUP_AMAX_FLOOR = 1e-10

#: SCALE_MODE: how a row's scale is found.
STATIC, PER_TOKEN, PER_TENSOR = 0, 1, 2
#: SOURCE: what is quantized.
PLAIN, SILU_AND_MUL = 0, 1


class GroupLaunch(NamedTuple):
    """How a group quant is launched: ``group_block`` columns per group load (a power of two
    covering the group), ``row_block`` columns per chunk of the norm's sum of squares, warps."""

    group_block: int
    row_block: int
    num_warps: int


def group_launch_config(hidden_size: int, group_size: int, element_size: int) -> GroupLaunch:
    """A group is loaded whole (``next_power_of_2(group_size)`` lanes, 128 for DeepSeek's 1x128
    blocks); the norm's variance pass walks the row in the chunks :func:`launch_config` picks.
    Warps follow the group: 4 up to 1024 lanes, 8 beyond."""
    group_block = max(16, triton.next_power_of_2(group_size))
    row_block = launch_config(hidden_size, 1, element_size).block
    return GroupLaunch(group_block, row_block, 8 if group_block > 1024 else 4)


@functools.cache
def hardware_fp8(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether kernels on ``device`` round into ``dtype`` with the GPU's own conversion (else
    with :func:`_fp8_code`): NVIDIA sm_89+ for ``float8_e4m3fn`` only; see the module docstring."""
    if INTERPRETED or device.type != "cuda" or torch.version.hip is not None:
        return False
    return dtype == torch.float8_e4m3fn and torch.cuda.get_device_capability(device) >= (8, 9)


# --------------------------------------------------------------------------------------------
# Device functions
# --------------------------------------------------------------------------------------------


@triton.jit
def _fp8_code(v, MIN_EXP: tl.constexpr, NAN_CODE: tl.constexpr, FNUZ: tl.constexpr):
    """The fp8 byte of fp32 ``v`` (already within +-fmax, or NaN), rounded to nearest even.

    E4M3 with exponent bias ``1 - MIN_EXP`` (7 for e4m3fn, 8 for e4m3fnuz). The fp32 significand
    (with its implicit 1) is shifted right by 20 (keeping 3 fraction bits) and by as many more
    as the value lies below the smallest normal (fp8 subnormals), rounding the bits shifted out
    to nearest, ties to even. ``(e - MIN_EXP) * 8 + q`` is then the code: for a normal value
    ``q`` is ``8 + fraction`` and the exponent field ``e - MIN_EXP + 1``; a carry out of the
    fraction (q = 16) steps into the next binade by itself. FNUZ has no negative zero.
    """
    bits = v.to(tl.int32, bitcast=True)
    negative = bits < 0
    field = (bits >> 23) & 0xFF
    significand = (bits & 0x7FFFFF) | tl.where(field > 0, 0x800000, 0)
    exponent = field - 127
    shift = tl.minimum(20 + tl.maximum(MIN_EXP - exponent, 0), 25)
    q = significand >> shift
    rest = significand - (q << shift)
    half = (tl.zeros_like(shift) + 1) << (shift - 1)
    q += ((rest > half) | ((rest == half) & ((q & 1) == 1))).to(tl.int32)
    code = (tl.maximum(exponent, MIN_EXP) - MIN_EXP) * 8 + q
    if FNUZ:
        code = tl.where(negative & (code != 0), code | 0x80, code)
    else:
        code = tl.where(negative, code | 0x80, code)
    return tl.where(v != v, NAN_CODE, code).to(tl.uint8)


@triton.jit
def _store_fp8(
    ptr,
    offs,
    mask,
    v,
    scale,
    fmax,
    SOFTWARE_FP8: tl.constexpr,
    MIN_EXP: tl.constexpr,
    NAN_CODE: tl.constexpr,
    FNUZ: tl.constexpr,
):
    """Store ``clamp(v / scale, -fmax, fmax)`` in fp8: as the byte :func:`_fp8_code` computes
    (``ptr`` then points at the output viewed as uint8) or through the GPU's conversion."""
    y = tl.clamp(tl.math.div_rn(v, scale), -fmax, fmax, propagate_nan=tl.PropagateNan.ALL)
    if SOFTWARE_FP8:
        tl.store(ptr + offs, _fp8_code(y, MIN_EXP, NAN_CODE, FNUZ), mask=mask)
    else:
        tl.store(ptr + offs, y.to(ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)


@triton.jit
def _source(
    x_row,
    r_row,
    offs,
    mask,
    half,
    SOURCE: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
):
    """What is normalized or quantized, in fp32: ``x``, ``x + residual``, or
    ``silu(x[:half]) * x[half:]`` (``offs`` then index the output's ``half`` columns)."""
    if SOURCE == 1:
        a = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(x_row + half + offs, mask=mask, other=0.0).to(tl.float32)
        return a / (1.0 + tl.exp(-a)) * b
    else:
        s = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_RESIDUAL:
            s += tl.load(r_row + offs, mask=mask, other=0.0).to(tl.float32)
        return s


@triton.jit
def _normed(
    s, w_ptr, w_stride, offs, mask, rstd, weight_bias, NORM: tl.constexpr, HAS_WEIGHT: tl.constexpr
):
    """``s * rstd * (w + weight_bias)`` with ``NORM``, else ``s``."""
    if NORM:
        s = s * rstd
        if HAS_WEIGHT:
            w = tl.load(w_ptr + offs * w_stride, mask=mask, other=0.0).to(tl.float32)
            s = s * (w + weight_bias)
    return s


@triton.jit
def _sum_of_squares(
    x_row,
    r_row,
    res_out_row,
    hidden,
    BLOCK: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Sum of ``s^2`` over a row, chunk by chunk; with ``HAS_RESIDUAL`` also stores the sum
    (rounded once) as ``residual_out``."""
    cols = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, hidden, BLOCK):
        offs = start + cols
        mask = offs < hidden
        s = _source(x_row, r_row, offs, mask, 0, 0, HAS_RESIDUAL)
        if HAS_RESIDUAL:
            tl.store(
                res_out_row + offs,
                _round_to(s, res_out_row.dtype.element_ty, SOFTWARE_BF16),
                mask=mask,
            )
        acc += s * s
    return tl.sum(acc, axis=0)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["n_rows", "x_inner_rows", "r_inner_rows", "eps", "weight_bias"])
def _quant_rows_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    x_inner_rows,
    r_ptr,
    r_stride_outer,
    r_stride_inner,
    r_inner_rows,
    w_ptr,
    w_stride,
    q_ptr,
    res_out_ptr,
    scale_ptr,
    scale_out_ptr,
    ub_ptr,
    n_rows,
    width,
    eps,
    weight_bias,
    fmax,
    min_scale,
    SOURCE: tl.constexpr,
    NORM: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    SCALE_MODE: tl.constexpr,
    HAS_UB: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
    SOFTWARE_FP8: tl.constexpr,
    MIN_EXP: tl.constexpr,
    NAN_CODE: tl.constexpr,
    FNUZ: tl.constexpr,
):
    """Quantize ``ROWS_PER_PROGRAM`` rows per program; ``width`` output columns per row.

    The value quantized is ``_source`` (``x``, ``x + residual`` or ``silu * mul``), normalized
    with ``NORM``. Its scale: the one-element ``scale_ptr`` (STATIC); the row's amax, capped by
    ``ub_ptr`` and floored at ``min_scale``, stored to ``scale_ptr[row]`` (PER_TOKEN); or the
    whole tensor's amax read from ``scale_ptr`` (PER_TENSOR, after :func:`_amax_kernel`),
    stored once to ``scale_out_ptr``. With ``SINGLE_PASS`` a row is loaded once and kept in
    registers; otherwise each pass (sum of squares, amax, quantize) reloads and recomputes it.
    """
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    if SCALE_MODE == 0:
        scale = tl.load(scale_ptr).to(tl.float32)
    if SCALE_MODE == 2:
        scale = tl.maximum(tl.load(scale_ptr) / fmax, min_scale)
        if pid == 0:
            tl.store(scale_out_ptr, scale)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        if row < n_rows:
            x_row = x_ptr + _row_start(row, x_inner_rows, x_stride_outer, x_stride_inner)
            r_row = r_ptr + _row_start(row, r_inner_rows, r_stride_outer, r_stride_inner)
            q_row = q_ptr + row.to(tl.int64) * width
            res_out_row = res_out_ptr + row.to(tl.int64) * width
            if SINGLE_PASS:
                mask = cols < width
                s = _source(x_row, r_row, cols, mask, width, SOURCE, HAS_RESIDUAL)
                rstd = 1.0
                if NORM:
                    if HAS_RESIDUAL:
                        tl.store(
                            res_out_row + cols,
                            _round_to(s, res_out_row.dtype.element_ty, SOFTWARE_BF16),
                            mask=mask,
                        )
                    rstd = tl.math.rsqrt(tl.sum(s * s, axis=0) / width + eps)
                v = _normed(s, w_ptr, w_stride, cols, mask, rstd, weight_bias, NORM, HAS_WEIGHT)
                if SCALE_MODE == 1:
                    amax = tl.max(tl.abs(v), axis=0)
                    if HAS_UB:
                        amax = tl.minimum(amax, tl.load(ub_ptr))
                    scale = tl.maximum(amax / fmax, min_scale)
                    tl.store(scale_ptr + row, scale)
                _store_fp8(q_row, cols, mask, v, scale, fmax, SOFTWARE_FP8, MIN_EXP, NAN_CODE, FNUZ)
            else:
                rstd = 1.0
                if NORM:
                    total = _sum_of_squares(
                        x_row, r_row, res_out_row, width, BLOCK, HAS_RESIDUAL, SOFTWARE_BF16
                    )
                    rstd = tl.math.rsqrt(total / width + eps)
                if SCALE_MODE == 1:
                    acc = tl.zeros([BLOCK], dtype=tl.float32)
                    for start in range(0, width, BLOCK):
                        offs = start + cols
                        mask = offs < width
                        s = _source(x_row, r_row, offs, mask, width, SOURCE, HAS_RESIDUAL)
                        v = _normed(
                            s, w_ptr, w_stride, offs, mask, rstd, weight_bias, NORM, HAS_WEIGHT
                        )
                        acc = tl.maximum(acc, tl.abs(v))
                    amax = tl.max(acc, axis=0)
                    if HAS_UB:
                        amax = tl.minimum(amax, tl.load(ub_ptr))
                    scale = tl.maximum(amax / fmax, min_scale)
                    tl.store(scale_ptr + row, scale)
                for start in range(0, width, BLOCK):
                    offs = start + cols
                    mask = offs < width
                    s = _source(x_row, r_row, offs, mask, width, SOURCE, HAS_RESIDUAL)
                    v = _normed(s, w_ptr, w_stride, offs, mask, rstd, weight_bias, NORM, HAS_WEIGHT)
                    _store_fp8(
                        q_row, offs, mask, v, scale, fmax, SOFTWARE_FP8, MIN_EXP, NAN_CODE, FNUZ
                    )


@triton.jit(do_not_specialize=["n_rows", "x_inner_rows"])
def _amax_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    x_inner_rows,
    amax_ptr,
    n_rows,
    hidden,
    BLOCK: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
):
    """``amax_ptr[0] = max(amax_ptr[0], max |x|)`` over ``ROWS_PER_PROGRAM`` rows per program:
    one atomic max per program (amaxes are >= 0, where float order is integer order)."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        if row < n_rows:
            x_row = x_ptr + _row_start(row, x_inner_rows, x_stride_outer, x_stride_inner)
            for start in range(0, hidden, BLOCK):
                offs = start + cols
                x = tl.load(x_row + offs, mask=offs < hidden, other=0.0).to(tl.float32)
                acc = tl.maximum(acc, tl.abs(x))
    tl.atomic_max(amax_ptr, tl.max(acc, axis=0))


@triton.jit(do_not_specialize=["n_rows", "x_inner_rows", "eps", "weight_bias", "n_groups"])
def _quant_groups_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    x_inner_rows,
    w_ptr,
    w_stride,
    q_ptr,
    scale_ptr,
    scale_stride_row,
    scale_stride_group,
    n_rows,
    hidden,
    group_size,
    n_groups,
    eps,
    weight_bias,
    fmax,
    NORM: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    UE8M0: tl.constexpr,
    GROUP_BLOCK: tl.constexpr,
    ROW_BLOCK: tl.constexpr,
    SOFTWARE_FP8: tl.constexpr,
    MIN_EXP: tl.constexpr,
    NAN_CODE: tl.constexpr,
    FNUZ: tl.constexpr,
):
    """One row per program: with ``NORM`` its variance first (chunks of ``ROW_BLOCK``), then
    each group of ``group_size`` channels: amax, ``scale = max(amax, 1e-10) / fmax`` (rounded
    up to a power of two on the bits with ``UE8M0``), stored at ``row * scale_stride_row +
    group * scale_stride_group`` (row- or column-major), and the group quantized."""
    row = tl.program_id(0)
    x_row = x_ptr + _row_start(row, x_inner_rows, x_stride_outer, x_stride_inner)
    q_row = q_ptr + row.to(tl.int64) * hidden
    rstd = 1.0
    if NORM:
        total = _sum_of_squares(x_row, x_row, x_row, hidden, ROW_BLOCK, False, False)
        rstd = tl.math.rsqrt(total / hidden + eps)
    lanes = tl.arange(0, GROUP_BLOCK)
    for group in range(n_groups):
        offs = group * group_size + lanes
        mask = lanes < group_size
        s = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
        v = _normed(s, w_ptr, w_stride, offs, mask, rstd, weight_bias, NORM, HAS_WEIGHT)
        scale = tl.maximum(tl.max(tl.abs(v), axis=0), 1e-10) / fmax
        if UE8M0:
            bits = scale.to(tl.int32, bitcast=True)
            scale = ((bits + 0x7FFFFF) & 0x7F800000).to(tl.float32, bitcast=True)
        tl.store(
            scale_ptr + row.to(tl.int64) * scale_stride_row + group * scale_stride_group, scale
        )
        _store_fp8(q_row, offs, mask, v, scale, fmax, SOFTWARE_FP8, MIN_EXP, NAN_CODE, FNUZ)


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def _fp8_args(q: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The output as the kernels write it, and the fp8 constexprs of its dtype."""
    _, min_exp, nan_code = FP8_FORMATS[q.dtype]
    software = not hardware_fp8(q.device, q.dtype)
    constexprs = {
        "SOFTWARE_FP8": software,
        "MIN_EXP": min_exp,
        "NAN_CODE": nan_code,
        "FNUZ": q.dtype == torch.float8_e4m3fnuz,
    }
    return (q.view(torch.uint8) if software else q), constexprs


def launch_quant_rows(
    x: torch.Tensor,
    q: torch.Tensor,
    scale: torch.Tensor,
    *,
    scale_mode: int,
    scale_ub: torch.Tensor | None = None,
    source: int = PLAIN,
    norm: bool = False,
    residual: torch.Tensor | None = None,
    residual_out: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    epsilon: float = 0.0,
    weight_bias: float = 0.0,
) -> None:
    """Write ``q`` (and ``residual_out``; and ``scale`` unless static) from ``x`` (+ residual).

    Shapes: ``x`` and ``residual`` are (..., H) with unit stride along H and any row strides
    (H = 2 * width for ``SILU_AND_MUL``); ``weight`` (H,) or None; ``q``, ``residual_out``
    contiguous (..., width). ``scale``: STATIC one fp32 element (read); PER_TOKEN contiguous
    (..., 1) fp32 (written); PER_TENSOR (1,) fp32 (written, after an amax pass over ``x``).
    The inputs are never modified.
    """
    x_rows = _layout(x, "x")
    r_rows = _layout(residual, "residual") if residual is not None else x_rows
    width = q.shape[-1]
    fmax = FP8_FORMATS[q.dtype][0]
    cfg = launch_config(width, x_rows.n_rows, x.element_size())
    scale_in = scale
    if scale_mode == PER_TENSOR:
        scale_in = torch.zeros(1, dtype=torch.float32, device=x.device)  # the amax
        if x_rows.n_rows:
            amax_grid = (triton.cdiv(x_rows.n_rows, cfg.rows_per_program),)
            _amax_kernel[amax_grid](
                x,
                x_rows.stride_outer,
                x_rows.stride_inner,
                x_rows.inner_rows,
                scale_in,
                x_rows.n_rows,
                width,
                BLOCK=cfg.block,
                ROWS_PER_PROGRAM=cfg.rows_per_program,
                num_warps=cfg.num_warps,
            )
    elif x_rows.n_rows == 0:
        return
    out, fp8 = _fp8_args(q)
    grid = (max(1, triton.cdiv(x_rows.n_rows, cfg.rows_per_program)),)
    _quant_rows_kernel[grid](
        x,
        x_rows.stride_outer,
        x_rows.stride_inner,
        x_rows.inner_rows,
        residual if residual is not None else x,
        r_rows.stride_outer,
        r_rows.stride_inner,
        r_rows.inner_rows,
        weight if weight is not None else x,
        weight.stride(0) if weight is not None else 0,
        out,
        residual_out if residual_out is not None else out,
        scale_in,
        scale,
        scale_ub if scale_ub is not None else scale,
        x_rows.n_rows,
        width,
        epsilon,
        weight_bias,
        fmax,
        1.0 / (fmax * DYNAMIC_SCALE_FLOOR_DIVISOR),
        SOURCE=source,
        NORM=norm,
        HAS_RESIDUAL=residual is not None,
        HAS_WEIGHT=weight is not None,
        SCALE_MODE=scale_mode,
        HAS_UB=scale_ub is not None,
        BLOCK=cfg.block,
        SINGLE_PASS=cfg.single_pass,
        ROWS_PER_PROGRAM=cfg.rows_per_program,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=cfg.num_warps,
        **fp8,
    )


def launch_quant_groups(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    q: torch.Tensor,
    scale: torch.Tensor,
    *,
    group_size: int,
    column_major: bool,
    scale_ue8m0: bool,
    norm: bool,
    epsilon: float = 0.0,
    weight_bias: float = 0.0,
) -> None:
    """Write ``q`` (contiguous, x's shape) and ``scale`` ((..., H / group_size) fp32, contiguous
    or, with ``column_major``, with the group index outermost) from ``x`` (unit stride along H,
    any row strides), normalized first with ``norm``."""
    x_rows = _layout(x, "x")
    if x_rows.n_rows == 0:
        return
    hidden = x.shape[-1]
    n_groups = hidden // group_size
    # the scales' rows are numbered like x's: a row steps over n_groups scales (row-major) or
    # over one (column-major, where a group steps over all rows)
    stride_row, stride_group = (1, x_rows.n_rows) if column_major else (n_groups, 1)
    cfg = group_launch_config(hidden, group_size, x.element_size())
    out, fp8 = _fp8_args(q)
    _quant_groups_kernel[(x_rows.n_rows,)](
        x,
        x_rows.stride_outer,
        x_rows.stride_inner,
        x_rows.inner_rows,
        weight if weight is not None else x,
        weight.stride(0) if weight is not None else 0,
        out,
        scale,
        stride_row,
        stride_group,
        x_rows.n_rows,
        hidden,
        group_size,
        n_groups,
        epsilon,
        weight_bias,
        FP8_FORMATS[q.dtype][0],
        NORM=norm,
        HAS_WEIGHT=weight is not None,
        UE8M0=scale_ue8m0,
        GROUP_BLOCK=cfg.group_block,
        ROW_BLOCK=cfg.row_block,
        num_warps=cfg.num_warps,
        **fp8,
    )
