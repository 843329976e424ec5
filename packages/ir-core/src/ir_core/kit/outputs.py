"""Outputs for kernels: fresh ones, and owned copies for vendor kernels that work in place.

ir-core's ops are functional: an impl never writes into its inputs. Many vendor kernels are
in place (``fused_add_rms_norm(x, residual, ...)`` overwrites both), so their wrappers copy the
inputs into tensors they own and let the kernel turn those into the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def empty_output(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous, uninitialized tensor of ``t``'s shape, dtype and device (unlike
    ``torch.empty_like``, which copies ``t``'s strides)."""
    return torch.empty(t.shape, dtype=t.dtype, device=t.device)


def owned_rows(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous (N, H) copy of ``t`` (..., H) that an in-place kernel may overwrite;
    ``.view(t.shape)`` gives the output back in ``t``'s shape. ``t`` needs H >= 1."""
    rows = torch.empty((t.numel() // t.shape[-1], t.shape[-1]), dtype=t.dtype, device=t.device)
    return rows.copy_(t.reshape(rows.shape))


def in_place_outputs(
    kernel: Callable[..., Any], inputs: Sequence[torch.Tensor], *args: Any
) -> tuple[torch.Tensor, ...]:
    """The outputs of an in-place ``kernel(*rows, *args)`` run on owned copies of ``inputs``.

    Each input is copied with :func:`owned_rows`, the kernel overwrites the copies (e.g.
    ``fused_add_rms_norm(x, residual, weight, eps)``: the norm into the first, the sum into the
    second), and they come back in the inputs' shapes; the inputs are never written. With no
    elements there is nothing to run: fresh empty outputs, and the kernel is not called.
    """
    if any(t.numel() == 0 for t in inputs):
        return tuple(empty_output(t) for t in inputs)
    rows = [owned_rows(t) for t in inputs]
    kernel(*rows, *args)
    return tuple(r.view(t.shape) for r, t in zip(rows, inputs))
