"""How a tensor of shape (..., H) is walked row by row without copying it.

Every kernel in this package treats its input as ``n_rows`` rows of ``H`` elements with a unit
stride along H. The leading dims are described by at most two levels, ``outer`` and ``inner``, so
that the row ``r`` starts at ``(r // inner_rows) * stride_outer + (r % inner_rows) * stride_inner``.
Two levels cover every 2-D view (strided rows, e.g. one half of a split), every 3-D tensor
(e.g. a slice of a (tokens, heads, head_dim) buffer) and every higher-rank tensor whose leading
dims collapse to two; the kernels take these strides instead of asking for a contiguous copy.

Only sizes and strides are read, never data, so the helpers work on FakeTensors too.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class RowLayout(NamedTuple):
    """Rows of a (..., H) tensor as two levels of strides (in elements).

    ``n_rows == inner_rows`` means one level: the tensor views as (n_rows, H) with row stride
    ``stride_inner``, without a copy.
    """

    n_rows: int
    inner_rows: int
    stride_outer: int
    stride_inner: int

    @property
    def single_level(self) -> bool:
        return self.n_rows == self.inner_rows


def row_layout(t: torch.Tensor) -> RowLayout | None:
    """The :class:`RowLayout` of ``t``, or None when its rows need more than two stride levels.

    The last dim must have unit stride (or size 1); that is checked by the callers'
    ``supports_args``, not here.
    """
    dims = [(int(size), int(stride)) for size, stride in zip(t.shape[:-1], t.stride()[:-1])]
    n_rows = 1
    for size, _ in dims:
        n_rows *= size
    if n_rows == 0:
        return RowLayout(0, 0, 0, 0)
    # Size-1 dims take no part in addressing; merge each dim into the one before it when the
    # outer stride steps exactly over the inner dim (a contiguous run of rows).
    merged: list[tuple[int, int]] = []
    for size, stride in dims:
        if size == 1:
            continue
        if merged and merged[-1][1] == stride * size:
            outer_size, _ = merged[-1]
            merged[-1] = (outer_size * size, stride)
        else:
            merged.append((size, stride))
    if not merged:
        return RowLayout(1, 1, 0, 0)
    if len(merged) == 1:
        size, stride = merged[0]
        return RowLayout(n_rows, size, 0, stride)
    if len(merged) == 2:
        (_, outer_stride), (inner_size, inner_stride) = merged
        return RowLayout(n_rows, inner_size, outer_stride, inner_stride)
    return None


def has_unit_last_stride(t: torch.Tensor) -> bool:
    """True when the elements of each row are adjacent in memory (or a row has one element)."""
    return t.dim() >= 1 and (t.shape[-1] == 1 or t.stride(-1) == 1)
