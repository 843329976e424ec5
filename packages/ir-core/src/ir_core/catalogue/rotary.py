"""Rotary position embedding (RoPE): native semantics, validation and sample inputs.

The convention is vLLM's: a precomputed ``cos_sin_cache`` of shape ``(max_position, rot_dim)``
holds ``cos`` in its first ``rot_dim / 2`` columns and ``sin`` in the rest, and each token
looks its row up by position. The first ``rot_dim`` channels of every head rotate, the others
pass through unchanged (partial rotary: GPT-NeoX, Phi, GLM). Channels pair up in one of two
layouts:

- neox (``is_neox=True``; Llama, Qwen, Gemma in Hugging Face's code): the two halves,
  ``x1 = x[:r/2]``, ``x2 = x[r/2:r]``;
- GPT-J (``is_neox=False``; DeepSeek's MLA, GPT-J, ChatGLM): interleaved pairs,
  ``x1 = x[0:r:2]``, ``x2 = x[1:r:2]``.

Either way ``out1 = x1 cos - x2 sin`` and ``out2 = x2 cos + x1 sin``, in fp32, rounded once.
The op is functional: it returns new query and key tensors (vLLM's kernel rotates in place).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from numbers import Integral

import torch

from ..op import Sample
from .norms import _activation

#: Integer dtypes positions may have (index_select's, and what engines pass: int64).
POSITION_DTYPES = (torch.int64, torch.int32)

_OP = "rotary_embedding"


def _rotate(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    token_dims: int,
    head_size: int,
    is_neox: bool,
) -> torch.Tensor:
    """Rotate the first ``rot_dim`` channels of every head of ``x``, in fp32.

    ``cos``/``sin`` are fp32 ``(*token_shape, rot_dim / 2)``; ``x`` is ``(*token_shape,
    heads * head_size)`` or ``(*token_shape, heads, head_size)``.
    """
    half = cos.shape[-1]
    heads = math.prod(x.shape[token_dims:]) // head_size  # explicit: -1 fails for 0 tokens
    xf = x.float().reshape(*x.shape[:token_dims], heads, head_size)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # broadcast over heads
    rot, rest = xf[..., : 2 * half], xf[..., 2 * half :]
    if is_neox:
        x1, x2 = rot[..., :half], rot[..., half:]
        rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    else:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    return torch.cat((rotated, rest), dim=-1).reshape(x.shape).to(x.dtype)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``query`` and ``key`` by the angles of their tokens' positions.

    ``positions``: int64 (or int32) of the token dims, e.g. ``(T,)``. ``query``: ``(T, Hq *
    head_size)`` or ``(T, Hq, head_size)``; ``key`` likewise with its own head count.
    ``cos_sin_cache``: ``(max_position, rot_dim)`` of any float dtype, ``[cos | sin]``.
    Returns new ``(query_out, key_out)`` of the inputs' shapes and dtypes. The cache row is
    widened to fp32, each rotation is computed in fp32 and rounded once; channels past
    ``rot_dim`` are copied unchanged.
    """
    token_dims = positions.dim()
    cos_sin = cos_sin_cache.index_select(0, positions.reshape(-1)).float()
    cos_sin = cos_sin.reshape(*positions.shape, cos_sin_cache.shape[-1])
    cos, sin = cos_sin.chunk(2, dim=-1)
    return (
        _rotate(query, cos, sin, token_dims, head_size, is_neox),
        _rotate(key, cos, sin, token_dims, head_size, is_neox),
    )


# -- validation ------------------------------------------------------------------------------


def _check_heads(name: str, x: torch.Tensor, positions: torch.Tensor, head_size: int) -> None:
    """``x`` is the token dims of ``positions`` then ``(heads * head_size)`` or
    ``(heads, head_size)``."""
    if not x.is_floating_point():
        raise TypeError(
            f"ir_core.ops.{_OP}: argument '{name}' must have a floating-point dtype, got {x.dtype}"
        )
    token_shape = tuple(positions.shape)
    extra = x.dim() - len(token_shape)
    if extra not in (1, 2) or tuple(x.shape[: len(token_shape)]) != token_shape:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument '{name}' must have shape {token_shape} (the "
            "positions' token dims) followed by (heads * head_size) or (heads, head_size), "
            f"got {tuple(x.shape)}"
        )
    if extra == 2 and x.shape[-1] != head_size:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument '{name}' is (..., heads, head_size) with a last "
            f"dimension of {x.shape[-1]}, but head_size is {head_size}"
        )
    if extra == 1 and x.shape[-1] % head_size:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument '{name}' has a last dimension of {x.shape[-1]}, "
            f"which head_size {head_size} does not divide"
        )
    if x.device != positions.device:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument '{name}' is on {x.device}, positions on "
            f"{positions.device}"
        )


def validate_rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    if positions.dtype not in POSITION_DTYPES:
        raise TypeError(
            f"ir_core.ops.{_OP}: argument 'positions' must be int64 (or int32), "
            f"got {positions.dtype}"
        )
    if positions.dim() < 1:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument 'positions' must have at least one (token) dimension"
        )
    if isinstance(head_size, bool) or not isinstance(head_size, Integral):
        raise TypeError(
            f"ir_core.ops.{_OP}: argument 'head_size' must be an int, "
            f"got {type(head_size).__name__}"
        )
    if head_size < 1:
        raise ValueError(f"ir_core.ops.{_OP}: argument 'head_size' must be >= 1, got {head_size}")
    if not isinstance(is_neox, bool):
        raise TypeError(
            f"ir_core.ops.{_OP}: argument 'is_neox' must be a bool, got {type(is_neox).__name__}"
        )
    if not cos_sin_cache.is_floating_point():
        raise TypeError(
            f"ir_core.ops.{_OP}: argument 'cos_sin_cache' must have a floating-point dtype, "
            f"got {cos_sin_cache.dtype}"
        )
    if cos_sin_cache.dim() != 2:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument 'cos_sin_cache' must be (max_position, rot_dim), "
            f"got shape {tuple(cos_sin_cache.shape)}"
        )
    rot_dim = cos_sin_cache.shape[1]
    if rot_dim < 2 or rot_dim % 2 or rot_dim > head_size:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument 'cos_sin_cache' has rot_dim {rot_dim} columns; "
            f"rot_dim must be even and in 2..head_size ({head_size})"
        )
    if cos_sin_cache.device != positions.device:
        raise ValueError(
            f"ir_core.ops.{_OP}: argument 'cos_sin_cache' is on {cos_sin_cache.device}, "
            f"positions on {positions.device}"
        )
    _check_heads("query", query, positions, head_size)
    _check_heads("key", key, positions, head_size)


# -- sample inputs ---------------------------------------------------------------------------


def cos_sin_cache(
    max_position: int,
    rot_dim: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    base: float = 10000.0,
) -> torch.Tensor:
    """vLLM's ``(max_position, rot_dim)`` cache, ``[cos | sin]`` of ``pos * base^(-2i/rot_dim)``.

    Computed in fp64 and rounded once to ``dtype``, so the cache itself carries no error a
    test would have to allow for.
    """
    inv_freq = base ** (-torch.arange(0, rot_dim, 2, dtype=torch.float64) / rot_dim)
    angles = torch.outer(torch.arange(max_position, dtype=torch.float64), inv_freq)
    return torch.cat((angles.cos(), angles.sin()), dim=-1).to(dtype=dtype, device=device)


def _positions(
    shape: tuple[int, ...], max_position: int, device: torch.device, g: torch.Generator
) -> torch.Tensor:
    return torch.randint(0, max_position, shape, generator=g, dtype=torch.int64).to(device)


#: (label, heads of q, heads of k, head_size, rot_dim, 3-D q/k); both layouts are made of each.
_CASES = (
    ("2d", 4, 2, 64, 64, False),
    ("3d", 4, 2, 64, 64, True),
    ("partial rotary", 3, 1, 80, 32, False),  # GPT-NeoX / Phi: a quarter to a half rotates
    ("partial rotary 3d", 2, 2, 96, 64, True),
    ("odd head_size", 2, 1, 33, 16, False),
    ("one head", 1, 1, 128, 128, True),
)
_MAX_POSITION = 256


def rotary_embedding_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    g = torch.Generator().manual_seed(20)
    cache = {r: cos_sin_cache(_MAX_POSITION, r, torch.float32, device) for r in (16, 32, 64, 128)}
    for is_neox in (True, False):
        layout = "neox" if is_neox else "gptj"
        for label, hq, hk, hs, rot, three_d in _CASES:
            t = 5
            q_shape = (t, hq, hs) if three_d else (t, hq * hs)
            k_shape = (t, hk, hs) if three_d else (t, hk * hs)
            yield Sample(
                (
                    _positions((t,), _MAX_POSITION, device, g),
                    _activation(q_shape, dtype, device, g),
                    _activation(k_shape, dtype, device, g),
                    hs,
                    cache[rot],
                    is_neox,
                ),
                {},
                f"{label} {layout}",
            )
        # q, k and v split from one qkv projection: rows (q + k + v) wide
        hs, hq, hk = 64, 4, 2
        qkv = _activation((3, (hq + 2 * hk) * hs), dtype, device, g)
        q, k = qkv[:, : hq * hs], qkv[:, hq * hs : (hq + hk) * hs]
        yield Sample(
            (_positions((3,), _MAX_POSITION, device, g), q, k, hs, cache[64], is_neox),
            {},
            f"strided rows (split qkv) {layout}",
        )
        # (T, heads, head_size) views of one qkv buffer, as qkv.view(T, 3, H, hs).unbind(1)
        q, k, _ = _activation((3, 3, 2, 64), dtype, device, g).unbind(1)
        yield Sample(
            (_positions((3,), _MAX_POSITION, device, g), q, k, 64, cache[32], is_neox),
            {},
            f"strided 3d (qkv unbind) {layout}",
        )
        yield Sample(
            (
                _positions((0,), _MAX_POSITION, device, g),
                _activation((0, 4 * 64), dtype, device, g),
                _activation((0, 64), dtype, device, g),
                64,
                cache[64],
                is_neox,
            ),
            {},
            f"zero tokens {layout}",
        )

    def two_heads(positions: torch.Tensor, cache: torch.Tensor, is_neox: bool, label: str):
        """A query of two 64-channel heads and a key of one, at these positions."""
        t = tuple(positions.shape)
        q, k = _activation((*t, 2 * 64), dtype, device, g), _activation((*t, 64), dtype, device, g)
        return Sample((positions, q, k, 64, cache, is_neox), {}, label)

    # positions of a (batch, seq) layout; int32 positions; a cache in the activation dtype
    yield two_heads(_positions((2, 3), _MAX_POSITION, device, g), cache[16], True, "batch x seq")
    int32 = _positions((4,), _MAX_POSITION, device, g).to(torch.int32)
    yield two_heads(int32, cache[64], True, "int32 positions")
    if dtype != torch.float32:
        low = cos_sin_cache(_MAX_POSITION, 64, dtype, device)
        name = str(dtype).removeprefix("torch.")
        yield two_heads(_positions((4,), _MAX_POSITION, device, g), low, False, f"{name} cache")
    ends = torch.tensor([0, _MAX_POSITION - 1, 7, 0], device=device)
    yield two_heads(ends, cache[64], True, "first and last position")


def rotary_embedding_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    """``h`` (>= 2) is the query's width: heads of 128 channels when 128 divides it (else one
    head of ``h``), a quarter as many key heads (GQA), full rotary, neox layout. Positions are a
    permutation of ``0..n-1`` and the cache has ``n`` rows, so every argument is read once
    (bandwidth figures count each argument's bytes once)."""
    g = torch.Generator().manual_seed(0)
    hs = 128 if h % 128 == 0 else h
    rot = hs - hs % 2
    kv_heads = max(1, h // hs // 4)
    positions = torch.randperm(n, generator=g).to(device)
    cache = cos_sin_cache(max(n, 1), rot, torch.float32, device)
    q = _activation((n, h), dtype, device, g)
    k = _activation((n, kv_heads * hs), dtype, device, g)
    return Sample((positions, q, k, hs, cache, True))
