"""Triton kernel for ``rotary_embedding`` (vLLM's cos_sin_cache convention), its launch
heuristics and its launcher.

One program per token: it reads the token's position, its ``rot_dim / 2`` cos and sin values
from the cache (once, for the query and the key), then rotates the heads of the query and the
key, a block of heads at a time, and copies their pass-through channels. Outputs are new
contiguous tensors (the op is functional; vLLM's kernel rotates in place). Numerics: inputs and
cache widened to fp32, ``x1 cos - x2 sin`` and ``x2 cos + x1 sin`` in fp32, one rounding at the
store; pass-through channels are copied bit for bit.

Imported on first use by :mod:`ir_provider_cuda.triton_rotary` (this module imports Triton).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ir_core.kit import RowLayout, layout_of

from .triton_kernels import INTERPRETED, _round_to, _row_start

# --------------------------------------------------------------------------------------------
# Launch heuristics
# --------------------------------------------------------------------------------------------

#: Elements of one (heads x pair) tile held in registers per array (x1, x2, and the results).
_TILE_ELEMENTS = 2048


class RotaryLaunch(NamedTuple):
    """``half_block``: pairs per head (a power of two >= rot_dim / 2); ``head_block``: heads
    rotated together; ``pass_block``: pass-through channels copied per step; ``num_warps``."""

    half_block: int
    head_block: int
    pass_block: int
    num_warps: int


def rotary_launch_config(head_size: int, rot_dim: int, max_heads: int) -> RotaryLaunch:
    """Tile sizes for heads of ``head_size`` channels whose first ``rot_dim`` rotate.

    - half_block: every pair of a head in one tile row (rot_dim / 2, padded to a power of two).
    - head_block: as many heads per tile as fit ~2048 elements, so a GQA key (few heads) is
      one tile and a wide query a few; never more heads than there are.
    - pass_block: the pass-through channels of a head, up to a tile's width at a time.
    - warps: 4, or 8 once a tile holds 2048 elements (8-16 elements a thread).
    """
    half_block = triton.next_power_of_2(max(rot_dim // 2, 1))
    head_block = max(
        1, min(triton.next_power_of_2(max(max_heads, 1)), _TILE_ELEMENTS // half_block)
    )
    rest = head_size - rot_dim
    pass_block = min(triton.next_power_of_2(max(rest, 1)), 2 * half_block)
    num_warps = 8 if head_block * half_block >= _TILE_ELEMENTS else 4
    return RotaryLaunch(half_block, head_block, pass_block, num_warps)


# --------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------


@triton.jit
def _rotate_heads(
    x_row,
    head_stride,
    out_row,
    heads,
    head_size,
    half,
    cos,
    sin,
    IS_NEOX: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HEAD_BLOCK: tl.constexpr,
    PASS_BLOCK: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Rotate every head of one token: ``x_row`` addresses head ``h`` at ``h * head_stride``;
    ``out_row`` is contiguous ``(heads, head_size)``. ``cos``/``sin``: fp32 ``[HALF_BLOCK]``."""
    pairs = tl.arange(0, HALF_BLOCK)
    if IS_NEOX:
        first, second = pairs, pairs + half
    else:
        first, second = 2 * pairs, 2 * pairs + 1
    out_ty = out_row.dtype.element_ty
    for h0 in range(0, heads, HEAD_BLOCK):
        h = h0 + tl.arange(0, HEAD_BLOCK)
        mask = (h[:, None] < heads) & (pairs[None, :] < half)
        src = x_row + h[:, None].to(tl.int64) * head_stride
        dst = out_row + h[:, None].to(tl.int64) * head_size
        x1 = tl.load(src + first[None, :], mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(src + second[None, :], mask=mask, other=0.0).to(tl.float32)
        o1 = x1 * cos[None, :] - x2 * sin[None, :]
        o2 = x2 * cos[None, :] + x1 * sin[None, :]
        tl.store(dst + first[None, :], _round_to(o1, out_ty, SOFTWARE_BF16), mask=mask)
        tl.store(dst + second[None, :], _round_to(o2, out_ty, SOFTWARE_BF16), mask=mask)
        for c0 in range(2 * half, head_size, PASS_BLOCK):
            c = c0 + tl.arange(0, PASS_BLOCK)
            pass_mask = (h[:, None] < heads) & (c[None, :] < head_size)
            kept = tl.load(src + c[None, :], mask=pass_mask, other=0.0)
            tl.store(dst + c[None, :], kept.to(out_ty), mask=pass_mask)


@triton.jit(do_not_specialize=["q_inner", "k_inner"])
def _rotary_kernel(
    pos_ptr,
    cache_ptr,
    cache_stride_pos,
    cache_stride_col,
    q_ptr,
    q_stride_outer,
    q_stride_inner,
    q_inner,
    q_head_stride,
    q_heads,
    q_out_ptr,
    k_ptr,
    k_stride_outer,
    k_stride_inner,
    k_inner,
    k_head_stride,
    k_heads,
    k_out_ptr,
    head_size,
    half,
    IS_NEOX: tl.constexpr,
    HALF_BLOCK: tl.constexpr,
    HEAD_BLOCK: tl.constexpr,
    PASS_BLOCK: tl.constexpr,
    SOFTWARE_BF16: tl.constexpr,
):
    """Token ``program_id(0)``: look up its cos/sin row, rotate its query and key heads."""
    token = tl.program_id(0)
    pos = tl.load(pos_ptr + token).to(tl.int64)
    pairs = tl.arange(0, HALF_BLOCK)
    row = cache_ptr + pos * cache_stride_pos
    cos = tl.load(row + pairs * cache_stride_col, mask=pairs < half, other=0.0).to(tl.float32)
    sin = tl.load(row + (pairs + half) * cache_stride_col, mask=pairs < half, other=0.0)
    sin = sin.to(tl.float32)
    q_row = q_ptr + _row_start(token, q_inner, q_stride_outer, q_stride_inner)
    q_out = q_out_ptr + token.to(tl.int64) * q_heads * head_size
    _rotate_heads(
        q_row, q_head_stride, q_out, q_heads, head_size, half, cos, sin,
        IS_NEOX, HALF_BLOCK, HEAD_BLOCK, PASS_BLOCK, SOFTWARE_BF16,
    )  # fmt: skip
    k_row = k_ptr + _row_start(token, k_inner, k_stride_outer, k_stride_inner)
    k_out = k_out_ptr + token.to(tl.int64) * k_heads * head_size
    _rotate_heads(
        k_row, k_head_stride, k_out, k_heads, head_size, half, cos, sin,
        IS_NEOX, HALF_BLOCK, HEAD_BLOCK, PASS_BLOCK, SOFTWARE_BF16,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------


class HeadLayout(NamedTuple):
    """A query or key tensor as token rows of heads: ``tokens`` addresses token ``t``'s first
    channel, ``head_stride`` steps from one head to the next, ``heads`` counts them."""

    tokens: RowLayout
    head_stride: int
    heads: int


def head_layout(x: torch.Tensor, token_dims: int, head_size: int) -> HeadLayout | None:
    """How the kernel walks ``x`` (the positions' ``token_dims`` dims, then ``(heads *
    head_size)`` or ``(heads, head_size)``), or None when its token dims need more than two
    stride levels. Reads sizes and strides only (FakeTensor-safe, no guards)."""
    tokens = layout_of(tuple(x.shape[:token_dims]), tuple(x.stride()[:token_dims]))
    if tokens is None:
        return None
    if x.dim() - token_dims == 2:
        return HeadLayout(tokens, x.stride(-2), x.shape[-2])
    return HeadLayout(tokens, head_size, x.shape[-1] // head_size)


def _heads(x: torch.Tensor, token_dims: int, head_size: int, name: str) -> HeadLayout:
    layout = head_layout(x, token_dims, head_size)
    if layout is None:  # supports_args keeps such tensors away; direct callers get told why
        raise ValueError(
            f"{name}: token dims with strides {tuple(x.stride()[:token_dims])} do not collapse "
            "to two row levels; pass a contiguous tensor"
        )
    return layout


def launch_rotary(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
    query_out: torch.Tensor,
    key_out: torch.Tensor,
) -> None:
    """Write the rotated ``query`` and ``key`` into ``query_out`` and ``key_out``.

    ``positions``: contiguous int32/int64 of the token dims; ``query``/``key``: those dims then
    ``(heads * head_size)`` or ``(heads, head_size)``, unit stride along the last dim, any
    token and head strides, fp32/fp16/bf16; ``cos_sin_cache``: ``(max_position, rot_dim)``,
    any strides and float dtype. Outputs: contiguous, the inputs' shapes and dtypes. Positions
    must lie in ``[0, max_position)`` (not checked: the kernel reads what it is given).
    """
    token_dims = positions.dim()
    q, k = _heads(query, token_dims, head_size, "query"), _heads(key, token_dims, head_size, "key")
    n_tokens = positions.numel()
    if n_tokens == 0:
        return
    rot_dim = cos_sin_cache.shape[-1]
    cfg = rotary_launch_config(head_size, rot_dim, max(q.heads, k.heads))
    _rotary_kernel[(n_tokens,)](
        positions,
        cos_sin_cache,
        cos_sin_cache.stride(0),
        cos_sin_cache.stride(1),
        query,
        q.tokens.stride_outer,
        q.tokens.stride_inner,
        q.tokens.inner_rows,
        q.head_stride,
        q.heads,
        query_out,
        key,
        k.tokens.stride_outer,
        k.tokens.stride_inner,
        k.tokens.inner_rows,
        k.head_stride,
        k.heads,
        key_out,
        head_size,
        rot_dim // 2,
        IS_NEOX=is_neox,
        HALF_BLOCK=cfg.half_block,
        HEAD_BLOCK=cfg.head_block,
        PASS_BLOCK=cfg.pass_block,
        SOFTWARE_BF16=INTERPRETED,
        num_warps=cfg.num_warps,
    )
