"""The ``aiter`` provider's ``rotary_embedding``: AITER's Triton RoPE over vLLM's cache.

AITER has three rotary entry points that take positions and a cos/sin table (read in
ROCm/aiter, every tag v0.1.10 .. v0.1.20.post1):

- ``rotary_embedding_fwd(positions, query, key, head_size, cos_cache, sin_cache, is_neox,
  is_nope_first)`` (HIP): in place, rotates in the element dtype (not fp32 once for fp16/bf16)
  and needs the cos and sin halves as separate contiguous tensors in query's dtype: a copy of
  the whole cache per call.
- ``rope_cached_positions_2c_fwd`` (HIP, "sbhd" 4-D layout): out of place, but also needs
  contiguous cos/sin, and is not built without CK.
- ``aiter.ops.triton.rope.rope.rope_cached_thd_positions_2c_fwd(x, y, cos, sin, positions,
  rotate_style, reuse_freqs_front_part, nope_first, transpose_output=False) -> (out_x, out_y)``
  (Triton): out of place, takes cos/sin through their strides (so the two halves of vLLM's
  ``cos_sin_cache`` are passed as views, no copy), positions int64 or int32, arithmetic in the
  promoted dtype of x and cos, rounded once to x's dtype. Its in-place twin is what vLLM's ROCm
  path calls. This provider wraps this one: it matches the op's functional contract.

What the Triton kernel needs, and so what ``supports_args`` declines:

- x ``(T, Hq, D)`` and y ``(T, Hk, D)``, 3-D, with ``Hq % Hk == 0`` (asserted);
- ``D`` a power of two (``tl.arange(0, BLOCK_D)``) and ``rot_dim`` either ``D`` or ``D / 2``:
  with ``reuse_freqs_front_part=True`` the kernel tells the two apart by ``cos.shape[-1]``
  (``D/2`` or ``D/4``) and treats any other width as full rotary, reading cos columns that are
  not there (garbage, no error);
- query and key of one dtype (it allocates y's output in x's dtype).

fp32-once: a cache of fp32 is passed as is (fp16/bf16 x times fp32 cos computes in fp32); any
other cache dtype would make Triton compute in 16 bits, so its rows for these positions are
gathered and widened to fp32 first (``T x rot_dim`` values), with positions ``0..T-1``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import torch

from ir_core import kit

from .aiter_api import PROVIDER, load

__all__ = ["PROVIDER"]

ROPE_MODULE = "aiter.ops.triton.rope.rope"
ROPE_FUNCTION = "rope_cached_thd_positions_2c_fwd"
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: ``rotate_style`` (``aiter.ops.triton.rope.rope.RotateStyle``): NEOX 0, GPT-J 1.
NEOX, GPTJ = 0, 1


def load_rope(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[Callable[..., Any] | None, str]:
    """AITER loaded, then its Triton RoPE module imported: ``(function, "")`` or a reason."""
    api, reason = load()
    if api is None:
        return None, reason
    module, reason = kit.import_module(ROPE_MODULE, import_module)
    if reason:
        return None, reason
    fn = getattr(module, ROPE_FUNCTION, None)
    if not callable(fn):
        return None, f"AITER {api.version} has no {ROPE_MODULE}.{ROPE_FUNCTION}"
    return fn, ""


#: The Triton RoPE function, loaded once on first use.
ROPE: kit.LazyVendor[Callable[..., Any]] = kit.LazyVendor(PROVIDER, load_rope)
available_rotary_embedding = ROPE.available


def _power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def rotary_supported(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
) -> bool:
    """query and key of one fp32/fp16/bf16 dtype, ``head_size`` a power of two, ``rot_dim`` of
    ``head_size`` or ``head_size / 2``, query heads a multiple of key heads; any layout (a view
    the kernel cannot take is copied), any float cache, int64 or int32 positions."""
    if query.dtype not in DTYPES or key.dtype != query.dtype:
        return False
    if not cos_sin_cache.is_floating_point() or positions.dtype not in (torch.int64, torch.int32):
        return False
    rot = cos_sin_cache.shape[-1]
    if not (_power_of_two(head_size) and rot in (head_size, head_size // 2) and rot >= 2):
        return False
    token_dims = positions.dim()
    q_heads = math.prod(query.shape[token_dims:]) // head_size
    k_heads = math.prod(key.shape[token_dims:]) // head_size
    return k_heads >= 1 and kit.known(q_heads % k_heads == 0)


def _heads(t: torch.Tensor, tokens: int, head_size: int) -> torch.Tensor:
    """t as (T, heads, head_size), a view when possible, with the positive strides the kernel
    assumes (``tl.assume(stride > 0)``)."""
    t3 = t.reshape(tokens, -1, head_size)
    return t3 if all(s > 0 for s in t3.stride()) else t3.contiguous()


def call_rotary_embedding(
    rope: Callable[..., Any],
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rope(q3, k3, cos, sin, positions, rotate_style, True, False)``: new (query, key)."""
    tokens = positions.numel()
    if tokens == 0 or query.numel() == 0:
        return kit.empty_output(query), kit.empty_output(key)
    pos = positions.reshape(-1)
    if cos_sin_cache.dtype == torch.float32:
        cos, sin = cos_sin_cache.chunk(2, dim=-1)
    else:
        cos, sin = cos_sin_cache.index_select(0, pos).float().chunk(2, dim=-1)
        pos = torch.arange(tokens, dtype=torch.int64, device=positions.device)
    out_q, out_k = rope(
        _heads(query, tokens, head_size),
        _heads(key, tokens, head_size),
        cos,
        sin,
        pos,
        NEOX if is_neox else GPTJ,
        True,  # reuse_freqs_front_part: cos/sin are rot_dim / 2 wide, as in vLLM's cache
        False,  # nope_first: the first rot_dim channels rotate, the rest pass through
    )
    return out_q.view(query.shape), out_k.view(key.shape)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """vLLM's rotary embedding by AITER's Triton kernel, out of place; see
    :func:`call_rotary_embedding`."""
    return call_rotary_embedding(
        ROPE.require(), positions, query, key, head_size, cos_sin_cache, is_neox
    )


def rotary_embedding_supports(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> bool:
    return ROPE.loaded() is not None and rotary_supported(
        positions, query, key, head_size, cos_sin_cache
    )
