"""Triton kernels for the RMS norm ops, their launch heuristics and their launchers.

This module imports Triton at the top; the ``triton`` provider (:mod:`ir_provider_cuda.triton_norm`)
imports it on the first call, so that a machine without a working Triton still loads the plugin
and reports the provider as unavailable instead of quarantining the whole wheel.

Numerics (the op catalogue of ir-core's docs/contract.md): every load is widened to fp32, the
sum of squares, ``rsqrt``, the weight (plus ``weight_bias``) and the residual add are all
computed in fp32, and each output is rounded once, when it is stored. ``fused_add_rms_norm``
normalizes the fp32 sum, never the rounded ``residual_out`` it also stores.

Whether Triton compiles or interprets is decided when this module is imported
(``TRITON_INTERPRET=1`` makes ``@triton.jit`` build interpreted functions that run on CPU tensors).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ir_core.kit import RowLayout, row_layout

# --------------------------------------------------------------------------------------------
# Launch heuristics: the only place block sizes, warps and rows per program are chosen.
# --------------------------------------------------------------------------------------------

#: Largest row chunk held in registers at once, in bytes of input (the Triton layer-norm
#: tutorial's 64 KiB); longer rows are walked in chunks, in two passes.
_MAX_CHUNK_BYTES = 65536
#: Below this many rows every row gets its own program, to spread few tokens over all SMs.
_ROWS_BEFORE_PACKING = 1024
#: When packing, a program handles rows until it has about this many elements to move.
_ELEMENTS_PER_PROGRAM = 4096


class LaunchConfig(NamedTuple):
    """How one norm is launched.

    ``block``: columns per chunk (a power of two); ``single_pass``: the whole row fits in one
    chunk, so it is loaded once and kept in registers; ``num_warps``: warps per program;
    ``rows_per_program``: rows one program normalizes, one after the other.
    """

    block: int
    single_pass: bool
    num_warps: int
    rows_per_program: int


def launch_config(hidden_size: int, n_rows: int, element_size: int) -> LaunchConfig:
    """Choose block size, warps and rows per program for rows of ``hidden_size`` elements.

    - block: the next power of two of H, capped at 64 KiB of input, so that a row up to 16K
      (fp32) / 32K (16-bit) elements is read from memory exactly once.
    - warps: 4 for short rows, more as the block grows, so a thread holds ~8-32 elements
      (one or a few 16-byte vectors); 16 at most (1024 threads on AMD's 64-wide wavefronts).
    - rows per program: 1 while there are few rows (decode), so every SM gets work; with many
      rows of a short H, several rows per program amortize launch and weight loads.
    """
    block = min(triton.next_power_of_2(max(hidden_size, 1)), _MAX_CHUNK_BYTES // element_size)
    block = max(block, 16)
    if block >= 8192:
        num_warps = 16
    elif block >= 2048:
        num_warps = 8
    else:
        num_warps = 4
    rows_per_program = 1
    if n_rows >= _ROWS_BEFORE_PACKING:
        rows_per_program = max(1, min(16, _ELEMENTS_PER_PROGRAM // block))
    return LaunchConfig(block, hidden_size <= block, num_warps, rows_per_program)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _round_to(value, dtype: tl.constexpr, SOFTWARE_BF16: tl.constexpr):
    """``value`` (fp32) rounded to nearest even in ``dtype``.

    Triton's interpreter narrows fp32 to bf16 by truncation, while GPUs round to nearest even;
    with ``SOFTWARE_BF16`` (set only when interpreting) the rounding is done on the bits, so CPU
    runs produce the bits a GPU would.
    """
    if SOFTWARE_BF16 and dtype == tl.bfloat16:
        bits = value.to(tl.uint32, bitcast=True)
        is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        rounded = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        return tl.where(is_nan, value.to(tl.bfloat16), rounded)
    else:
        return value.to(dtype)


@triton.jit
def _row_start(row, inner_rows, stride_outer, stride_inner):
    """Element offset of ``row`` in a tensor described by a :class:`RowLayout` (int64)."""
    row = row.to(tl.int64)
    return (row // inner_rows) * stride_outer + (row % inner_rows) * stride_inner


@triton.jit
def _sum_chunk(x_row, r_row, cols, mask, HAS_RESIDUAL: tl.constexpr):
    """One chunk of ``x`` (+ ``residual``) widened to fp32; zeros where masked."""
    s = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        s += tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
    return s


@triton.jit
def _norm_row(
    x_row,
    r_row,
    w_ptr,
    w_stride,
    out_row,
    res_out_row,
    hidden,
    var_size,
    eps,
    weight_bias,
    HAS_RESIDUAL: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Normalize one row: ``out = s * rsqrt(mean(s[:var_size]^2) + eps) * (w + weight_bias)``.

    ``s`` is ``x`` or, with ``HAS_RESIDUAL``, the fp32 sum ``x + residual``, which is also stored
    (rounded) to ``res_out_row``. With ``SINGLE_PASS`` the row is loaded once and kept in
    registers; otherwise a first pass accumulates the sum of squares chunk by chunk and a second
    pass reloads the inputs (the fp32 sum is recomputed, not read back rounded).
    """
    cols = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        mask = cols < hidden
        s = _sum_chunk(x_row, r_row, cols, mask, HAS_RESIDUAL)
        if HAS_RESIDUAL:
            tl.store(
                res_out_row + cols,
                _round_to(s, res_out_row.dtype.element_ty, SOFTWARE_BF16),
                mask=mask,
            )
        squares = tl.where(cols < var_size, s * s, 0.0)
        rstd = tl.math.rsqrt(tl.sum(squares, axis=0) / var_size + eps)
        y = s * rstd
        if HAS_WEIGHT:
            w = tl.load(w_ptr + cols * w_stride, mask=mask, other=0.0).to(tl.float32)
            y = y * (w + weight_bias)
        tl.store(out_row + cols, _round_to(y, out_row.dtype.element_ty, SOFTWARE_BF16), mask=mask)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, hidden, BLOCK):
            offs = start + cols
            mask = offs < hidden
            s = _sum_chunk(x_row, r_row, offs, mask, HAS_RESIDUAL)
            if HAS_RESIDUAL:
                tl.store(
                    res_out_row + offs,
                    _round_to(s, res_out_row.dtype.element_ty, SOFTWARE_BF16),
                    mask=mask,
                )
            acc += tl.where(offs < var_size, s * s, 0.0)
        rstd = tl.math.rsqrt(tl.sum(acc, axis=0) / var_size + eps)
        for start in range(0, hidden, BLOCK):
            offs = start + cols
            mask = offs < hidden
            s = _sum_chunk(x_row, r_row, offs, mask, HAS_RESIDUAL)
            y = s * rstd
            if HAS_WEIGHT:
                w = tl.load(w_ptr + offs * w_stride, mask=mask, other=0.0).to(tl.float32)
                y = y * (w + weight_bias)
            tl.store(
                out_row + offs, _round_to(y, out_row.dtype.element_ty, SOFTWARE_BF16), mask=mask
            )


@triton.jit(do_not_specialize=["n_rows", "inner_rows", "var_size", "eps", "weight_bias"])
def _rms_norm_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    r_ptr,
    r_stride_outer,
    r_stride_inner,
    w_ptr,
    w_stride,
    out_ptr,
    res_out_ptr,
    n_rows,
    x_inner_rows,
    r_inner_rows,
    hidden,
    var_size,
    eps,
    weight_bias,
    HAS_RESIDUAL: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """``rms_norm`` / ``fused_add_rms_norm`` over ``ROWS_PER_PROGRAM`` rows per program.

    Inputs are addressed through their row layouts; outputs are contiguous (n_rows, hidden).
    """
    pid = tl.program_id(0)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        if row < n_rows:
            x_row = x_ptr + _row_start(row, x_inner_rows, x_stride_outer, x_stride_inner)
            r_row = r_ptr + _row_start(row, r_inner_rows, r_stride_outer, r_stride_inner)
            out_row = out_ptr + row.to(tl.int64) * hidden
            res_out_row = res_out_ptr + row.to(tl.int64) * hidden
            _norm_row(
                x_row,
                r_row,
                w_ptr,
                w_stride,
                out_row,
                res_out_row,
                hidden,
                var_size,
                eps,
                weight_bias,
                HAS_RESIDUAL,
                HAS_WEIGHT,
                BLOCK,
                SINGLE_PASS,
                SOFTWARE_BF16,
            )


@triton.jit(
    do_not_specialize=[
        "a_rows",
        "a_inner_rows",
        "a_eps",
        "a_programs",
        "b_rows",
        "b_inner_rows",
        "b_eps",
    ]
)
def _dual_rms_norm_kernel(
    a_ptr,
    a_stride_outer,
    a_stride_inner,
    a_w_ptr,
    a_w_stride,
    a_out_ptr,
    a_rows,
    a_inner_rows,
    a_hidden,
    a_eps,
    a_programs,
    b_ptr,
    b_stride_outer,
    b_stride_inner,
    b_w_ptr,
    b_w_stride,
    b_out_ptr,
    b_rows,
    b_inner_rows,
    b_hidden,
    b_eps,
    A_BLOCK: tl.constexpr,
    A_SINGLE_PASS: tl.constexpr,
    A_ROWS_PER_PROGRAM: tl.constexpr,
    B_BLOCK: tl.constexpr,
    B_SINGLE_PASS: tl.constexpr,
    B_ROWS_PER_PROGRAM: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Two independent norms in one launch: programs ``[0, a_programs)`` take rows of ``a``,
    the rest take rows of ``b``, each with its own block size and rows per program."""
    pid = tl.program_id(0)
    if pid < a_programs:
        for i in range(A_ROWS_PER_PROGRAM):
            row = pid * A_ROWS_PER_PROGRAM + i
            if row < a_rows:
                x_row = a_ptr + _row_start(row, a_inner_rows, a_stride_outer, a_stride_inner)
                out_row = a_out_ptr + row.to(tl.int64) * a_hidden
                _norm_row(
                    x_row,
                    x_row,
                    a_w_ptr,
                    a_w_stride,
                    out_row,
                    out_row,
                    a_hidden,
                    a_hidden,
                    a_eps,
                    0.0,
                    False,
                    True,
                    A_BLOCK,
                    A_SINGLE_PASS,
                    SOFTWARE_BF16,
                )
    else:
        for i in range(B_ROWS_PER_PROGRAM):
            row = (pid - a_programs) * B_ROWS_PER_PROGRAM + i
            if row < b_rows:
                x_row = b_ptr + _row_start(row, b_inner_rows, b_stride_outer, b_stride_inner)
                out_row = b_out_ptr + row.to(tl.int64) * b_hidden
                _norm_row(
                    x_row,
                    x_row,
                    b_w_ptr,
                    b_w_stride,
                    out_row,
                    out_row,
                    b_hidden,
                    b_hidden,
                    b_eps,
                    0.0,
                    False,
                    True,
                    B_BLOCK,
                    B_SINGLE_PASS,
                    SOFTWARE_BF16,
                )


def _is_interpreted(kernel: object) -> bool:
    return type(kernel).__name__ == "InterpretedFunction"


#: True when this module was imported with TRITON_INTERPRET=1 (kernels run on CPU tensors).
INTERPRETED = _is_interpreted(_rms_norm_kernel)


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def _layout(t: torch.Tensor, name: str) -> RowLayout:
    layout = row_layout(t)
    if layout is None:  # supports_args keeps such tensors away; direct callers get told why
        raise ValueError(
            f"{name}: leading dims with strides {tuple(t.stride()[:-1])} do not collapse to "
            "two row levels; pass a contiguous tensor"
        )
    return layout


def launch_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor | None,
    out: torch.Tensor,
    residual_out: torch.Tensor | None,
    epsilon: float,
    weight_bias: float,
    variance_size: int | None,
) -> None:
    """Write the norm of ``x`` (+ ``residual``) into ``out`` (and the sum into ``residual_out``).

    Shapes: ``x`` and ``residual`` are (..., H) with unit stride along H and any row strides;
    ``weight`` is (H,) or None; ``out`` and ``residual_out`` are contiguous tensors of x's shape.
    Dtypes: any float16/bfloat16/float32 mix; ``out`` has x's dtype, ``residual_out``
    residual's. Writes only ``out`` and ``residual_out``; the inputs are never modified.
    """
    hidden = x.shape[-1]
    x_rows = _layout(x, "x")
    if x_rows.n_rows == 0:
        return
    r_rows = _layout(residual, "residual") if residual is not None else x_rows
    cfg = launch_config(hidden, x_rows.n_rows, x.element_size())
    grid = (triton.cdiv(x_rows.n_rows, cfg.rows_per_program),)
    _rms_norm_kernel[grid](
        x,
        x_rows.stride_outer,
        x_rows.stride_inner,
        residual if residual is not None else x,
        r_rows.stride_outer,
        r_rows.stride_inner,
        weight if weight is not None else x,
        weight.stride(0) if weight is not None else 0,
        out,
        residual_out if residual_out is not None else out,
        x_rows.n_rows,
        x_rows.inner_rows,
        r_rows.inner_rows,
        hidden,
        variance_size if variance_size is not None else hidden,
        epsilon,
        weight_bias,
        HAS_RESIDUAL=residual is not None,
        HAS_WEIGHT=weight is not None,
        BLOCK=cfg.block,
        SINGLE_PASS=cfg.single_pass,
        ROWS_PER_PROGRAM=cfg.rows_per_program,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=cfg.num_warps,
    )


def launch_dual_rms_norm(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    a_out: torch.Tensor,
    a_epsilon: float,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    b_out: torch.Tensor,
    b_epsilon: float,
) -> None:
    """Write ``rms_norm(a)`` into ``a_out`` and ``rms_norm(b)`` into ``b_out`` in one launch.

    Shapes: ``a`` (..., Ha) and ``b`` (..., Hb), unit stride along the last dim, any row
    strides, any (even different) numbers of rows; weights (Ha,) and (Hb,); outputs contiguous
    tensors of the inputs' shapes and dtypes. The inputs are never modified.
    """
    a_rows, b_rows = _layout(a, "a"), _layout(b, "b")
    if a_rows.n_rows == 0 and b_rows.n_rows == 0:
        return
    a_cfg = launch_config(a.shape[-1], a_rows.n_rows, a.element_size())
    b_cfg = launch_config(b.shape[-1], b_rows.n_rows, b.element_size())
    a_programs = triton.cdiv(a_rows.n_rows, a_cfg.rows_per_program)
    b_programs = triton.cdiv(b_rows.n_rows, b_cfg.rows_per_program)
    _dual_rms_norm_kernel[(a_programs + b_programs,)](
        a,
        a_rows.stride_outer,
        a_rows.stride_inner,
        a_weight,
        a_weight.stride(0),
        a_out,
        a_rows.n_rows,
        a_rows.inner_rows,
        a.shape[-1],
        a_epsilon,
        a_programs,
        b,
        b_rows.stride_outer,
        b_rows.stride_inner,
        b_weight,
        b_weight.stride(0),
        b_out,
        b_rows.n_rows,
        b_rows.inner_rows,
        b.shape[-1],
        b_epsilon,
        A_BLOCK=a_cfg.block,
        A_SINGLE_PASS=a_cfg.single_pass,
        A_ROWS_PER_PROGRAM=a_cfg.rows_per_program,
        B_BLOCK=b_cfg.block,
        B_SINGLE_PASS=b_cfg.single_pass,
        B_ROWS_PER_PROGRAM=b_cfg.rows_per_program,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=max(a_cfg.num_warps, b_cfg.num_warps),
    )
