"""Triton kernels for the gated activations (``silu_and_mul``, ``gelu_and_mul``), their launch
heuristics and their launcher.

Imported on first use by :mod:`ir_provider_cuda.triton_activation` (this module imports
Triton). Numerics: the gate and up halves are widened to fp32, the activation and the product
are fp32, and the output is rounded once when stored (to nearest even, also under the
interpreter: see :func:`ir_provider_cuda.triton_kernels._round_to`).

The tanh GELU is evaluated as ``g * sigmoid(2 y)`` with ``y = sqrt(2/pi) (g + 0.044715 g^3)``:
``0.5 (1 + tanh(y))`` is exactly ``sigmoid(2 y)``, and this form does not cancel for negative
``g`` (where ``1 + tanh(y)`` loses every digit in fp32).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .triton_kernels import INTERPRETED, _layout, _round_to, _row_start

#: Activation codes (constexpr): one compiled variant each.
SILU, GELU, GELU_TANH = 0, 1, 2

# --------------------------------------------------------------------------------------------
# Launch heuristics
# --------------------------------------------------------------------------------------------

#: Columns of the output one program computes at most: 2 x 2048 inputs in registers.
_MAX_BLOCK = 2048


class ActivationLaunch(NamedTuple):
    """``block``: output columns per program (a power of two); ``num_warps`` per program."""

    block: int
    num_warps: int


def activation_launch_config(d: int) -> ActivationLaunch:
    """Block and warps for output rows of ``d`` columns.

    Elementwise, so any block works; one that covers the row up to 2048 columns gives every
    program a whole row (decode: few rows, one program each), wider rows are split over the
    grid's second axis. Warps grow with the block so a thread holds 8-16 elements (one or two
    16-byte vectors of each half).
    """
    block = max(16, min(triton.next_power_of_2(max(d, 1)), _MAX_BLOCK))
    num_warps = 8 if block >= 2048 else 4 if block >= 512 else 2 if block >= 128 else 1
    return ActivationLaunch(block, num_warps)


# --------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------


@triton.jit
def sigmoid(v):
    """``1 / (1 + exp(-v))`` in fp32 from ``exp(-|v|)``, which never overflows: no inf
    intermediates in either tail (and no overflow warnings from the interpreter)."""
    e = tl.exp(-tl.abs(v))
    r = 1.0 / (1.0 + e)
    return tl.where(v >= 0, r, e * r)


@triton.jit
def _activate(g, ACTIVATION: tl.constexpr):
    """The activation of fp32 ``g``: silu, exact (erf) GELU or tanh GELU (constants:
    1/sqrt(2) and 2 sqrt(2/pi))."""
    if ACTIVATION == 0:
        return g * sigmoid(g)
    elif ACTIVATION == 1:
        return 0.5 * g * (1.0 + tl.math.erf(g * 0.7071067811865476))
    else:
        return g * sigmoid(1.5957691216057308 * (g + 0.044715 * g * g * g))


@triton.jit(do_not_specialize=["n_rows", "inner_rows"])
def _act_and_mul_kernel(
    x_ptr,
    x_stride_outer,
    x_stride_inner,
    out_ptr,
    n_rows,
    inner_rows,
    d,
    ACTIVATION: tl.constexpr,
    BLOCK: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """``out[row, c] = act(x[row, c]) * x[row, d + c]`` for the ``BLOCK`` columns
    ``c`` of program ``(row, column block)``; ``out`` is contiguous ``(n_rows, d)``."""
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < d
    x_row = x_ptr + _row_start(row, inner_rows, x_stride_outer, x_stride_inner)
    gate = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_row + d + cols, mask=mask, other=0.0).to(tl.float32)
    y = _activate(gate, ACTIVATION) * up
    out_row = out_ptr + row.to(tl.int64) * d
    tl.store(out_row + cols, _round_to(y, out_ptr.dtype.element_ty, SOFTWARE_BF16), mask=mask)


# --------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------


def launch_act_and_mul(x: torch.Tensor, out: torch.Tensor, activation: int) -> None:
    """Write ``act(x[..., :d]) * x[..., d:]`` into ``out``.

    ``x``: (..., 2d), unit stride along the last dim, rows on at most two stride levels,
    fp32/fp16/bf16. ``out``: contiguous (..., d), any of those dtypes. ``activation``: one of
    :data:`SILU`, :data:`GELU`, :data:`GELU_TANH`. ``x`` is never modified.
    """
    d = out.shape[-1]
    rows = _layout(x, "x")
    if rows.n_rows == 0 or d == 0:
        return
    cfg = activation_launch_config(d)
    _act_and_mul_kernel[(rows.n_rows, triton.cdiv(d, cfg.block))](
        x,
        rows.stride_outer,
        rows.stride_inner,
        out,
        rows.n_rows,
        rows.inner_rows,
        d,
        ACTIVATION=activation,
        BLOCK=cfg.block,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=cfg.num_warps,
    )
