"""The ``xpu_kernels`` provider's gated activations and rotary embedding (vllm-xpu-kernels).

Schemas (``csrc/torch_bindings.cpp``, unchanged v0.1.6 .. v0.1.13.1) and what the kernels do
(``csrc/activation.cpp``, ``csrc/pos_encoding_kernels.cpp``, v0.1.13):

- ``silu_and_mul(Tensor! result, Tensor input)``, ``gelu_and_mul(Tensor! out, Tensor input)``,
  ``gelu_tanh_and_mul(Tensor! out, Tensor input)``: out first; rows at ``token * 2d`` and
  ``token * d`` (contiguous input and out, not checked), fp32/fp16/bf16, out of input's dtype;
  the vectorised path ``reinterpret_cast``s the data pointers to 16-byte vectors without
  checking their alignment, so the wrapper passes freshly allocated (aligned) tensors.
  Precision: the activation is computed in fp32 and **rounded to the element type**, then
  multiplied by ``up`` in the element type: for fp16/bf16 one rounding more than the op's
  contract. That extra half-ulp moves the result by at most one ulp of the output
  (2^-10 relative for fp16, 2^-7 for bf16), inside the op's 16-bit tolerances (rtol 1e-3 /
  1.6e-2), so all three dtypes are served; fp32 is the contract itself.
- ``rotary_embedding(Tensor positions, Tensor! query, Tensor!? key, int head_size, Tensor
  cos_sin_cache, bool is_neox)``: vLLM's convention, **in place** on query and key (owned
  copies here), positions int64, a contiguous cache **in query's dtype**, GQA with
  ``num_heads % num_kv_heads == 0``. Its arithmetic is ``x * cos - y * sin`` in the element
  type: three roundings in fp16/bf16, whose error relative to a rotated value that cancels to
  near zero exceeds the op's 16-bit tolerance. So only fp32 (query, key and cache) is served;
  16-bit falls through to other providers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ir_core import kit

from .xpu_kernels_norm import KERNELS, PROVIDER, XpuKernels, available_with

__all__ = ["PROVIDER"]

GATED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Our op and ``approximate`` -> the kernel's name.
SILU = "silu_and_mul"
GELU_ENTRIES = {"none": "gelu_and_mul", "tanh": "gelu_tanh_and_mul"}


def available_silu_and_mul() -> tuple[bool, str]:
    return available_with(SILU)


def available_gelu_and_mul() -> tuple[bool, str]:
    return available_with(*GELU_ENTRIES.values())


def available_rotary_embedding() -> tuple[bool, str]:
    return available_with("rotary_embedding")


def fresh_contiguous(t: torch.Tensor) -> torch.Tensor:
    """``t`` when it is contiguous and 16-byte aligned, else a new contiguous copy (whose
    storage the allocator aligns): what kernels that vectorise without checking need."""
    if t.is_contiguous() and t.data_ptr() % 16 == 0:
        return t
    return t.clone(memory_format=torch.contiguous_format)


# -- gated activations ---------------------------------------------------------------------------


def call_gated(ops: Any, entry: str, x: torch.Tensor) -> torch.Tensor:
    """``ops.<entry>(out, x)`` into a new contiguous ``out`` of shape (..., d)."""
    out = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    getattr(ops, entry)(out, fresh_contiguous(x))
    return out


def gated_supported(kernels: XpuKernels | None, x: torch.Tensor) -> bool:
    """fp32/fp16/bf16 x (any layout: the wrapper copies a strided x)."""
    return kernels is not None and x.dtype in GATED_DTYPES


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` on an Intel GPU; see :func:`call_gated`."""
    return call_gated(KERNELS.require().ops, SILU, x)


def silu_and_mul_supports(x: torch.Tensor) -> bool:
    return gated_supported(KERNELS.loaded(), x)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(x[..., :d], approximate) * x[..., d:]`` on an Intel GPU."""
    return call_gated(KERNELS.require().ops, GELU_ENTRIES[approximate], x)


def gelu_and_mul_supports(x: torch.Tensor, approximate: str = "none") -> bool:
    return approximate in GELU_ENTRIES and gated_supported(KERNELS.loaded(), x)


# -- rotary embedding ----------------------------------------------------------------------------


def rotary_supported(
    kernels: XpuKernels | None,
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
) -> bool:
    """fp32 query, key and cache (see the module docstring), a contiguous cache, query heads a
    multiple of key heads; int64 or int32 positions (widened here), any query/key layout."""
    if kernels is None:
        return False
    if not (query.dtype == key.dtype == cos_sin_cache.dtype == torch.float32):
        return False
    token_dims = positions.dim()
    q_heads = math.prod(query.shape[token_dims:]) // head_size
    k_heads = math.prod(key.shape[token_dims:]) // head_size
    return bool(
        positions.dtype in (torch.int64, torch.int32)
        and cos_sin_cache.is_contiguous()
        and k_heads >= 1
        and kit.known(q_heads % k_heads == 0)
    )


def call_rotary_embedding(
    ops: Any,
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ops.rotary_embedding(pos, q, k, head_size, cache, is_neox)`` on owned (T, heads *
    head_size) copies of query and key, which become the outputs."""
    tokens = positions.numel()
    if tokens == 0 or query.numel() == 0:
        return kit.empty_output(query), kit.empty_output(key)
    pos = positions.reshape(-1).to(torch.int64)
    q_out, k_out = kit.in_place_outputs(
        lambda q, k: ops.rotary_embedding(pos, q, k, head_size, cos_sin_cache, is_neox),
        (query.reshape(tokens, -1), key.reshape(tokens, -1)),
    )
    return q_out.view(query.shape), k_out.view(key.shape)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """vLLM's rotary embedding on an Intel GPU, functional; see :func:`call_rotary_embedding`."""
    return call_rotary_embedding(
        KERNELS.require().ops, positions, query, key, head_size, cos_sin_cache, is_neox
    )


def rotary_embedding_supports(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> bool:
    return rotary_supported(KERNELS.loaded(), positions, query, key, head_size, cos_sin_cache)
