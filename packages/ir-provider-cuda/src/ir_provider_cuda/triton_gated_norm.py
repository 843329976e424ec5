"""The ``triton`` provider's ``gated_rms_norm``: the op-signature impl around
:mod:`ir_provider_cuda.triton_gated_norm_kernels` (imported on the first call, as for the
norms: see :mod:`ir_provider_cuda.triton_norm`)."""

from __future__ import annotations

import torch

from ir_core import kit
from ir_core.kit import same_shape

from .triton_norm import PROVIDER, _rows_ok, _weight_ok

#: The kernels (which import Triton), imported on the first call.
KERNELS = kit.LazyVendor(
    PROVIDER, lambda: kit.import_module("ir_provider_cuda.triton_gated_norm_kernels")
)


def gated_rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor,
    gate: torch.Tensor,
    epsilon: float,
    weight_bias: float = 0.0,
    group_size: int | None = None,
    norm_before_gate: bool = True,
) -> bool:
    """fp32/fp16/bf16 ``x``, ``gate`` and weight in any mix; ``x`` and ``gate`` of the same
    shape, unit stride along H, rows on at most two stride levels (each its own strides, e.g.
    two slices of one projection); any H, group_size, weight_bias and gate order."""
    return bool(_rows_ok(x) and _rows_ok(gate) and same_shape(x, gate) and _weight_ok(weight))


def gated_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    gate: torch.Tensor,
    epsilon: float,
    weight_bias: float = 0.0,
    group_size: int | None = None,
    norm_before_gate: bool = True,
) -> torch.Tensor:
    """RMS norm gated by ``silu(gate)``, per group of ``group_size`` channels, in one Triton
    launch.

    ``x``, ``gate``: (..., H), unit stride along H, any row strides (read in place);
    ``weight``: (H,). Returns a new contiguous tensor of x's shape and dtype:
    ``rms(x) * (w + b) * silu(gate)`` (``norm_before_gate``) or ``rms(x * silu(gate)) * (w +
    b)``, computed in fp32 and rounded once. No input is modified.
    """
    out = kit.empty_output(x)
    KERNELS.require().launch_gated_rms_norm(
        x, weight, gate, out, epsilon, weight_bias, group_size, norm_before_gate
    )
    return out
