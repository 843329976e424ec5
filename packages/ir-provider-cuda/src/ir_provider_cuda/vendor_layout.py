"""Layout helpers shared by the vendor wrappers of this wheel (FlashInfer, quack, liger)."""

from __future__ import annotations

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


def aligned(t: torch.Tensor, align: int = VECTOR_BYTES) -> torch.Tensor:
    """``t``, or a fresh contiguous copy when its start is not ``align``-byte aligned.

    Fresh allocations always are; a view starting mid-row may not be, and the start address is
    not part of ir-core's dispatch key, so impls check it on every call (one integer test).
    """
    return t if t.data_ptr() % align == 0 else kit.empty_output(t).copy_(t)
