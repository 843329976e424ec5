"""The ``flashinfer`` provider's ``rotary_embedding``: FlashInfer's RoPE with vLLM's cache.

Wrapped function (``flashinfer.rope``; the same in 0.6.12 and 0.7.4):
``apply_rope_with_cos_sin_cache(positions, query, key, head_size, cos_sin_cache, is_neox=True)
-> (query_out, key_out)``: out of place (new outputs; the in-place variant is not used), cache
rows ``[cos | sin]``, neox halves or interleaved pairs (``is_neox=False``), channels past the
cache's ``rot_dim`` copied unchanged, fp32 arithmetic rounded once: our op's semantics.

What the kernel handles (``rope.py``, ``csrc/rope.cu``, ``include/flashinfer/pos_enc.cuh``):

- q and k fp16/bf16 (one dtype); the cache fp32 and contiguous (a 16-bit cache is refused by
  FlashInfer's Python layer; converting it per call would cost a copy of the whole cache);
  positions int32 or int64, contiguous, one per token;
- head sizes 64, 128, 256 and 512 have a RoPE kernel of their own, with vectors of ``max(16 /
  element size, head_size / 32)`` elements; a vector must not straddle the rotated half
  (neox: ``rot_dim / 2`` a multiple of it) or the rotated channels (interleaved: ``rot_dim``).
  Other head sizes go to FlashInfer's RoPE+quantize kernel, whose handling of partial vectors
  could not be checked without a GPU: declined;
- the vectors load from 16-byte aligned addresses: q, k and the cache start 16-byte aligned,
  token and head strides multiples of ``16 / element size``. Those are per-call facts (the
  start address is not in the dispatch key), so a layout the kernel cannot read is copied first
  here: a cost, never a wrong result.
- FlashInfer's Python views the query as ``(query.shape[0], -1, head_size)``, so a batched
  ``(B, S, ...)`` query would reach the kernel as B tokens: the token dims are flattened here.
"""

from __future__ import annotations

import math

import torch

from ir_core import kit
from ir_core.kit import known

from . import flashinfer_lib
from .flashinfer_lib import ROPE
from .vendor_layout import VECTOR_BYTES, aligned, dense_rows

PROVIDER = flashinfer_lib.PROVIDER
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: Head sizes with FlashInfer's dedicated RoPE kernel.
HEAD_SIZES = (64, 128, 256, 512)


def available() -> tuple[bool, str]:
    """flashinfer-python (>= 0.6.12, < 0.8) importable, on a CUDA (not ROCm) GPU >= sm_75."""
    return flashinfer_lib.availability(ROPE)


def vector_elements(head_size: int, element_size: int) -> int:
    """Elements per thread of the dedicated kernel: 16 bytes, or a 32nd of the head."""
    return max(VECTOR_BYTES // element_size, head_size // 32)


def rotary_embedding_supports(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> bool:
    """fp16/bf16 query and key of one dtype, an fp32 contiguous cache, head_size 64/128/256/512,
    and a rot_dim the kernel's vectors tile (see the module docstring). Any layout of q/k."""
    if query.dtype not in SUPPORTED_DTYPES or key.dtype != query.dtype:
        return False
    if cos_sin_cache.dtype != torch.float32 or not dense_rows(cos_sin_cache):
        return False
    if head_size not in HEAD_SIZES:
        return False
    vector = vector_elements(head_size, query.element_size())
    rot_dim = cos_sin_cache.shape[1]
    return known((rot_dim // 2 if is_neox else rot_dim) % vector == 0)


def _heads(t: torch.Tensor, tokens: int, head_size: int) -> torch.Tensor:
    """``t`` as the (tokens, heads, head_size) tensor the kernel reads: a view, or a fresh copy
    when its start or strides would misalign the kernel's vectors."""
    heads = math.prod(t.shape) // max(tokens * head_size, 1)
    view = t.reshape(tokens, heads, head_size)
    vector = VECTOR_BYTES // t.element_size()
    if view.stride(2) == 1 and view.stride(0) % vector == 0 and view.stride(1) % vector == 0:
        return aligned(view)
    return kit.empty_output(view).copy_(view)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashInfer ``apply_rope_with_cos_sin_cache``: new ``(query_out, key_out)`` of the inputs'
    shapes and dtype; the inputs are not written."""
    tokens = positions.numel()
    if tokens == 0:
        return kit.empty_output(query), kit.empty_output(key)
    q_out, k_out = ROPE.require().apply_rope_with_cos_sin_cache(
        positions.reshape(-1).contiguous(),
        _heads(query, tokens, head_size),
        _heads(key, tokens, head_size),
        head_size,
        aligned(cos_sin_cache),
        is_neox,
    )
    return q_out.reshape(query.shape), k_out.reshape(key.shape)
