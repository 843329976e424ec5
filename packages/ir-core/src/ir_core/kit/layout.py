"""Shape and stride predicates for ``supports_args``: how a (..., H) tensor is walked row by row.

Norm-like kernels treat their input as ``n_rows`` rows of ``H`` elements with a unit
stride along H. The leading dims are described by at most two levels, ``outer`` and ``inner``, so
that the row ``r`` starts at ``(r // inner_rows) * stride_outer + (r % inner_rows) * stride_inner``.
Two levels cover every 2-D view (strided rows, e.g. one half of a split), every 3-D tensor
(e.g. a slice of a (tokens, heads, head_dim) buffer) and every higher-rank tensor whose leading
dims collapse to two; the kernels take these strides instead of asking for a contiguous copy.

Only sizes and strides are read, never data, so the helpers work on FakeTensors; and with
symbolic shapes they decide only what is statically known, never adding a guard, so a
``supports_args`` built on them does not specialize a compiled graph to one token count.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true


def known(condition: Any) -> bool:
    """``condition`` as a plain bool; a symbolic one counts as true only when it provably is
    (no guard is added, so an undecidable condition is simply False)."""
    if isinstance(condition, bool):
        return condition
    return bool(statically_known_true(condition))


class RowLayout(NamedTuple):
    """Rows of a (..., H) tensor as (at most) two levels of strides, in elements.

    ``levels`` is how many leading dims remain after dropping size-1 dims and merging
    contiguous runs: 0 (a single row), 1 (the tensor views as (n_rows, H) with row stride
    ``stride_inner``, no copy needed) or 2.
    """

    n_rows: Any
    inner_rows: Any
    stride_outer: Any
    stride_inner: Any
    levels: int

    @property
    def single_level(self) -> bool:
        return self.levels <= 1


def row_layout(t: torch.Tensor) -> RowLayout | None:
    """The :class:`RowLayout` of ``t``, or None when its rows need more than two stride levels.

    The last dim must have unit stride (or size 1); that is checked by the callers'
    ``supports_args`` (see :func:`has_unit_last_stride`), not here.
    """
    return layout_of(tuple(t.shape[:-1]), tuple(t.stride()[:-1]))


def layout_of(sizes: tuple[Any, ...], strides: tuple[Any, ...]) -> RowLayout | None:
    """:func:`row_layout` of leading dims given as sizes and strides (e.g. the token dims of
    a ``(tokens, heads, head_size)`` tensor, whose head dim is addressed separately)."""
    n_rows: Any = 1
    for size in sizes:
        n_rows = n_rows * size
    if known(n_rows == 0):
        return RowLayout(0, 0, 0, 0, 0)
    # Size-1 dims take no part in addressing; a dim merges into the one before it when the
    # outer stride steps exactly over it (a contiguous run of rows).
    merged: list[tuple[Any, Any]] = []
    for size, stride in zip(sizes, strides):
        if known(size == 1):
            continue
        if merged and known(merged[-1][1] == stride * size):
            merged[-1] = (merged[-1][0] * size, stride)
        else:
            merged.append((size, stride))
    if not merged:
        return RowLayout(n_rows, n_rows, 0, 0, 0)
    if len(merged) == 1:
        return RowLayout(n_rows, n_rows, 0, merged[0][1], 1)
    if len(merged) == 2:
        (_, outer_stride), (inner_size, inner_stride) = merged
        return RowLayout(n_rows, inner_size, outer_stride, inner_stride, 2)
    return None


def has_unit_last_stride(t: torch.Tensor) -> bool:
    """True when the elements of each row are adjacent in memory (or a row has one element)."""
    return t.dim() >= 1 and (known(t.stride(-1) == 1) or known(t.shape[-1] == 1))


def same_shape(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Shapes provably equal (symbolic dims compared without adding guards)."""
    return a.dim() == b.dim() and all(known(x == y) for x, y in zip(a.shape, b.shape))


def is_weight_for(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    """``weight`` is a (H,) vector of x's dtype with unit stride: what kernels that read gamma
    in the activation's dtype take (None is not a weight)."""
    return (
        weight is not None
        and weight.dtype == x.dtype
        and weight.dim() == 1
        and has_unit_last_stride(weight)
    )
