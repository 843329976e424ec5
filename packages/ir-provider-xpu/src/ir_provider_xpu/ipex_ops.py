"""The ``ipex`` provider's gated activations and rotary embedding, on CPU.

Wrapped functions (``intel_extension_for_pytorch.llm.functional``, read at tag v2.8.0+cpu;
present since IPEX 2.4):

- ``silu_mul(x, y, out=None) -> Tensor`` and ``gelu_mul(x, y, out=None, approximate="none")``:
  two separate inputs (gate and up), not one ``[..., 2d]`` tensor. On CPU both are
  ``silu(x) * y`` / ``gelu(x, approximate) * y`` compiled by ``torch.compile(dynamic=True)``
  (``transformers/models/cpu/fusions/mha_fusion.py``): they return a new tensor (``out`` is only
  an extra copy target) and never write their inputs, so the two halves of ``x`` are passed as
  views. Inductor computes fp16/bf16 in fp32 and rounds once at the store; ``nox -s ipex``
  checks that against native.
- ``rotary_embedding(query, key, sin, cos, rotary_dim, rotary_half, position_ids=None)``:
  note **sin before cos**. query/key ``(T, heads, head_dim)``; sin/cos already gathered per
  token (with ``position_ids=None`` the kernel reads row ``0 + t`` for token t), ``head_dim /
  2`` or ``head_dim`` wide, cast to fp32 inside; ``rotary_half=True`` is NEOX, False GPT-J;
  channels past ``rotary_dim`` are copied from the input. It computes new tensors and then
  copies them **into query and key** ("keep the inplace context as used in TGI"), so it gets
  contiguous copies owned here. For partial rotary the sin/cos rows are padded with zeros to
  ``head_dim / 2``: NEOX reads only the first ``rotary_dim / 2``, GPT-J rotates every pair and
  then overwrites the channels past ``rotary_dim`` with the input's.

CPU only: the XPU build of IPEX routes these through other kernels
(``transformers/models/xpu/fusions``) whose numerics were not checked; on XPU the
``xpu_kernels`` provider serves these ops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ir_core import kit

from .ipex_norm import IPEX, PROVIDER, available_with, loaded_api

__all__ = ["PROVIDER"]

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def available_silu_and_mul() -> tuple[bool, str]:
    return available_with("silu_mul")


def available_gelu_and_mul() -> tuple[bool, str]:
    return available_with("gelu_mul")


def available_rotary_embedding() -> tuple[bool, str]:
    return available_with("rotary_embedding")


def _on_cpu(t: torch.Tensor) -> bool:
    """IPEX loaded, and a CPU tensor (the impls are registered for CPU only: this is for
    direct callers of the predicates)."""
    return loaded_api() is not None and t.device.type == "cpu"


# -- gated activations ---------------------------------------------------------------------------


def call_gated(functional: Any, x: torch.Tensor, approximate: str | None) -> torch.Tensor:
    """``functional.silu_mul(gate, up)``, or ``gelu_mul(gate, up, None, approximate)``, on the
    two halves of x (views); a new tensor of shape (..., d)."""
    d = x.shape[-1] // 2
    if x.numel() == 0:
        return torch.empty((*x.shape[:-1], d), dtype=x.dtype, device=x.device)
    gate, up = x[..., :d], x[..., d:]
    if approximate is None:
        return functional.silu_mul(gate, up)
    return functional.gelu_mul(gate, up, None, approximate)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` by ``ipex.llm.functional.silu_mul``. Functional."""
    return call_gated(IPEX.require().functional, x, None)


def silu_and_mul_supports(x: torch.Tensor) -> bool:
    """A CPU tensor of fp32/bf16/fp16; any layout (torch code under inductor)."""
    return _on_cpu(x) and x.dtype in DTYPES


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(x[..., :d], approximate) * x[..., d:]`` by ``ipex.llm.functional.gelu_mul``."""
    return call_gated(IPEX.require().functional, x, approximate)


def gelu_and_mul_supports(x: torch.Tensor, approximate: str = "none") -> bool:
    return _on_cpu(x) and x.dtype in DTYPES and approximate in ("none", "tanh")


# -- rotary embedding ----------------------------------------------------------------------------


def call_rotary_embedding(
    functional: Any,
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``functional.rotary_embedding(q, k, sin, cos, rot_dim, is_neox)`` on owned contiguous
    (T, heads, head_size) copies of query and key, with the cache rows of ``positions``."""
    tokens = positions.numel()
    if tokens == 0 or query.numel() == 0:
        return kit.empty_output(query), kit.empty_output(key)
    rot = cos_sin_cache.shape[-1]
    rows = cos_sin_cache.index_select(0, positions.reshape(-1))
    cos, sin = rows[:, : rot // 2], rows[:, rot // 2 :]
    pad = head_size // 2 - rot // 2
    if pad:  # partial rotary: the kernel wants head_size / 2 columns (see the module docstring)
        cos, sin = F.pad(cos, (0, pad)), F.pad(sin, (0, pad))
    q = query.reshape(tokens, -1, head_size).clone(memory_format=torch.contiguous_format)
    k = key.reshape(tokens, -1, head_size).clone(memory_format=torch.contiguous_format)
    out_q, out_k = functional.rotary_embedding(q, k, sin, cos, rot, is_neox)
    return out_q.view(query.shape), out_k.view(key.shape)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """vLLM's rotary embedding by ``ipex.llm.functional.rotary_embedding``; functional (see
    :func:`call_rotary_embedding`)."""
    return call_rotary_embedding(
        IPEX.require().functional, positions, query, key, head_size, cos_sin_cache, is_neox
    )


def rotary_supported(query: torch.Tensor, key: torch.Tensor, head_size: int) -> bool:
    """fp32/bf16/fp16 query and key and an even ``head_size`` (IPEX asserts sin/cos are half
    or all of it wide); any cache dtype (IPEX widens it to fp32), int64/int32 positions."""
    return query.dtype in DTYPES and key.dtype in DTYPES and head_size % 2 == 0


def rotary_embedding_supports(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> bool:
    return _on_cpu(query) and rotary_supported(query, key, head_size)
