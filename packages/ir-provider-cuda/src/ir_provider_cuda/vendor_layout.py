"""Layout helpers shared by the vendor wrappers of this wheel (FlashInfer, quack, liger)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ir_core import kit

#: Bytes of one vector load in the vendors' kernels (and the alignment they assume by default).
VECTOR_BYTES = 16


def dense_rows(t: torch.Tensor) -> bool:
    """``t`` (..., H) views as a contiguous (N, H) matrix, decided without adding guards."""
    if not kit.has_unit_last_stride(t):
        return False
    layout = kit.row_layout(t)
    if layout is None or not layout.single_level:
        return False
    return layout.levels == 0 or kit.known(layout.stride_inner == t.shape[-1])


def empty_aligned(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, align: int
) -> torch.Tensor:
    """A new contiguous tensor whose start is ``align``-byte aligned.

    CUDA's caching allocator hands out 512-byte aligned blocks, so this is ``torch.empty``
    there; an allocator with a smaller alignment (CPU's is 64 bytes, where the vendors' Python
    layers are tested) gets a padded buffer, sliced at the first aligned element.
    """
    out = torch.empty(shape, dtype=dtype, device=device)
    if out.data_ptr() % align == 0:
        return out
    element = out.element_size()
    buf = torch.empty(out.numel() + align // element, dtype=dtype, device=device)
    skip = (-buf.data_ptr() % align) // element
    return buf[skip : skip + out.numel()].view(shape)


def copy_aligned(t: torch.Tensor, align: int) -> torch.Tensor:
    """A new contiguous copy of ``t`` starting ``align``-byte aligned."""
    return empty_aligned(t.shape, t.dtype, t.device, align).copy_(t)


def aligned(t: torch.Tensor, align: int = VECTOR_BYTES) -> torch.Tensor:
    """``t``, or a fresh contiguous aligned copy when its start is not ``align``-byte aligned.

    Fresh allocations are; a view starting mid-row may not be, and the start address is not
    part of ir-core's dispatch key, so impls check it on every call (one integer test).
    """
    return t if t.data_ptr() % align == 0 else copy_aligned(t, align)
