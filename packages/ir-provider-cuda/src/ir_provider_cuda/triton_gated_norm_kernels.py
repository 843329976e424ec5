"""Triton kernel for ``gated_rms_norm`` (Qwen3-Next, Mamba2) and its launcher.

Each program normalizes whole groups: a group is ``group_size`` contiguous channels of one row
(the whole row when group_size is None), so a row of ``H`` channels is ``H / group_size``
independent work items, and the norm kernels' launch heuristics
(:func:`ir_provider_cuda.triton_kernels.launch_config`) apply to groups as they do to rows:
one pass when a group fits a block, two passes (sum of squares, then scale and store)
otherwise; several groups per program when there are many.

Numerics: x, gate and weight widened to fp32; ``silu(gate) = gate * sigmoid(gate)``, the
sum of squares, ``rsqrt``, the weight (plus weight_bias) and the gating are fp32; the output is
rounded once when stored. Imported on first use by :mod:`ir_provider_cuda.triton_gated_norm`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_activation_kernels import sigmoid
from .triton_kernels import INTERPRETED, _layout, _round_to, _row_start, launch_config


@triton.jit
def _gated_chunk(x_row, z_row, cols, mask, NORM_BEFORE_GATE: tl.constexpr):
    """One chunk as fp32: ``(v, silu(gate))`` where ``v`` is what the variance is taken of
    (``x``, or ``x * silu(gate)`` when gating comes first)."""
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    z = tl.load(z_row + cols, mask=mask, other=0.0).to(tl.float32)
    silu = z * sigmoid(z)
    if NORM_BEFORE_GATE:
        return x, silu
    else:
        return x * silu, silu


@triton.jit
def _gated_store(
    v, silu, rstd, w_ptr, w_stride, weight_bias, out_row, cols, mask,
    NORM_BEFORE_GATE: tl.constexpr, SOFTWARE_BF16: tl.constexpr,
):  # fmt: skip
    """``v * rstd * (w + weight_bias)``, times ``silu(gate)`` when normalizing first, stored."""
    w = tl.load(w_ptr + cols * w_stride, mask=mask, other=0.0).to(tl.float32)
    y = v * rstd * (w + weight_bias)
    if NORM_BEFORE_GATE:
        y = y * silu
    tl.store(out_row + cols, _round_to(y, out_row.dtype.element_ty, SOFTWARE_BF16), mask=mask)


@triton.jit(do_not_specialize=["n_items", "x_inner_rows", "z_inner_rows", "eps", "weight_bias"])
def _gated_rms_norm_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    x_inner_rows,
    z_ptr,
    z_stride_outer,
    z_stride_inner,
    z_inner_rows,
    w_ptr,
    w_stride,
    out_ptr,
    n_items,
    groups,
    group_size,
    eps,
    weight_bias,
    NORM_BEFORE_GATE: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    ITEMS_PER_PROGRAM: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Item ``i`` is group ``i % groups`` of row ``i // groups``; ``out`` is contiguous."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    hidden = groups * group_size
    for j in range(ITEMS_PER_PROGRAM):
        item = pid * ITEMS_PER_PROGRAM + j
        if item < n_items:
            row = item // groups
            first = (item % groups) * group_size  # the group's first channel
            x_row = x_ptr + _row_start(row, x_inner_rows, x_stride_outer, x_stride_inner) + first
            z_row = z_ptr + _row_start(row, z_inner_rows, z_stride_outer, z_stride_inner) + first
            out_row = out_ptr + row.to(tl.int64) * hidden + first
            w_row = w_ptr + first * w_stride
            if SINGLE_PASS:
                mask = cols < group_size
                v, silu = _gated_chunk(x_row, z_row, cols, mask, NORM_BEFORE_GATE)
                rstd = tl.math.rsqrt(tl.sum(v * v, axis=0) / group_size + eps)
                _gated_store(
                    v, silu, rstd, w_row, w_stride, weight_bias, out_row, cols, mask,
                    NORM_BEFORE_GATE, SOFTWARE_BF16,
                )  # fmt: skip
            else:
                acc = tl.zeros([BLOCK], dtype=tl.float32)
                for start in range(0, group_size, BLOCK):
                    offs = start + cols
                    v, _ = _gated_chunk(x_row, z_row, offs, offs < group_size, NORM_BEFORE_GATE)
                    acc += v * v
                rstd = tl.math.rsqrt(tl.sum(acc, axis=0) / group_size + eps)
                for start in range(0, group_size, BLOCK):
                    offs = start + cols
                    mask = offs < group_size
                    v, silu = _gated_chunk(x_row, z_row, offs, mask, NORM_BEFORE_GATE)
                    _gated_store(
                        v, silu, rstd, w_row, w_stride, weight_bias, out_row, offs, mask,
                        NORM_BEFORE_GATE, SOFTWARE_BF16,
                    )  # fmt: skip


def launch_gated_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    gate: torch.Tensor,
    out: torch.Tensor,
    epsilon: float,
    weight_bias: float,
    group_size: int | None,
    norm_before_gate: bool,
) -> None:
    """Write ``gated_rms_norm(x, weight, gate, ...)`` into ``out``.

    ``x`` and ``gate``: (..., H) of the same shape, unit stride along H, any row strides (each
    its own), fp32/fp16/bf16 in any mix; ``weight``: (H,); ``out``: contiguous, x's shape and
    dtype. ``group_size`` divides H (None: H). The inputs are never modified.
    """
    hidden = x.shape[-1]
    x_rows, z_rows = _layout(x, "x"), _layout(gate, "gate")
    if x_rows.n_rows == 0 or hidden == 0:
        return
    k = group_size or hidden
    groups = hidden // k
    n_items = x_rows.n_rows * groups
    cfg = launch_config(k, n_items, x.element_size())
    _gated_rms_norm_kernel[(triton.cdiv(n_items, cfg.rows_per_program),)](
        x,
        x_rows.stride_outer,
        x_rows.stride_inner,
        x_rows.inner_rows,
        gate,
        z_rows.stride_outer,
        z_rows.stride_inner,
        z_rows.inner_rows,
        weight,
        weight.stride(0),
        out,
        n_items,
        groups,
        k,
        epsilon,
        weight_bias,
        NORM_BEFORE_GATE=norm_before_gate,
        BLOCK=cfg.block,
        SINGLE_PASS=cfg.single_pass,
        ITEMS_PER_PROGRAM=cfg.rows_per_program,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=cfg.num_warps,
    )
