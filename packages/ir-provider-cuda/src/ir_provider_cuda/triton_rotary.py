"""The ``triton`` provider's ``rotary_embedding``: the op-signature impl around
:mod:`ir_provider_cuda.triton_rotary_kernels` (imported on the first call, as for the norms:
see :mod:`ir_provider_cuda.triton_norm`)."""

from __future__ import annotations

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, layout_of

from .triton_norm import PROVIDER, SUPPORTED_DTYPES

#: Position dtypes the kernel reads (and widens to int64).
POSITION_DTYPES = (torch.int64, torch.int32)


#: The kernels (which import Triton), imported on the first call.
KERNELS = kit.LazyVendor(
    PROVIDER, lambda: kit.import_module("ir_provider_cuda.triton_rotary_kernels")
)


def _heads_ok(x: torch.Tensor, token_dims: int) -> bool:
    return (
        x.dtype in SUPPORTED_DTYPES
        and has_unit_last_stride(x)
        and layout_of(tuple(x.shape[:token_dims]), tuple(x.stride()[:token_dims])) is not None
    )


def rotary_embedding_supports(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> bool:
    """Both layouts, partial rotary, any head_size and head counts; int32/int64 positions of
    any shape and strides; fp32/fp16/bf16 query and key (dtypes may differ) of shape
    ``(*tokens, heads * head_size)`` or ``(*tokens, heads, head_size)``, unit stride along the
    last dim, token dims on at most two stride levels, any head stride; a cache of any of
    those dtypes and any strides."""
    token_dims = positions.dim()
    return bool(
        positions.dtype in POSITION_DTYPES
        and cos_sin_cache.dtype in SUPPORTED_DTYPES
        and _heads_ok(query, token_dims)
        and _heads_ok(key, token_dims)
    )


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``query`` and ``key`` (neox halves or GPT-J pairs, first ``rot_dim`` channels of
    each head) in one Triton launch, one program per token.

    Shapes as the op: positions ``(*tokens)``, query/key ``(*tokens, heads * head_size)`` or
    ``(*tokens, heads, head_size)``, cos_sin_cache ``(max_position, rot_dim)`` = ``[cos |
    sin]``. Query and key are read through their strides (a split or an unbind of a fused qkv
    projection is not copied). Returns new contiguous ``(query_out, key_out)`` in the inputs'
    shapes and dtypes, computed in fp32 and rounded once; no input is modified.
    """
    query_out, key_out = kit.empty_output(query), kit.empty_output(key)
    # the kernel reads positions[token] at offset token: 8 bytes a token, copied if strided
    KERNELS.require().launch_rotary(
        positions.contiguous(), query, key, head_size, cos_sin_cache, is_neox, query_out, key_out
    )
    return query_out, key_out
