"""The ``triton`` provider's gated activations: op-signature impls around
:mod:`ir_provider_cuda.triton_activation_kernels` (imported on the first call, as for the
norms: see :mod:`ir_provider_cuda.triton_norm`)."""

from __future__ import annotations

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, row_layout

from .triton_norm import PROVIDER, SUPPORTED_DTYPES

#: The kernels (which import Triton), imported on the first call.
KERNELS = kit.LazyVendor(
    PROVIDER, lambda: kit.import_module("ir_provider_cuda.triton_activation_kernels")
)


def _gated_ok(x: torch.Tensor) -> bool:
    return x.dtype in SUPPORTED_DTYPES and has_unit_last_stride(x) and row_layout(x) is not None


def silu_and_mul_supports(x: torch.Tensor) -> bool:
    """fp32/fp16/bf16 ``x`` with unit stride along its last dim and rows on at most two
    stride levels (every 2-D and 3-D tensor, strided rows included); any d."""
    return bool(_gated_ok(x))


def gelu_and_mul_supports(x: torch.Tensor, approximate: str = "none") -> bool:
    """As :func:`silu_and_mul_supports`, both approximations."""
    return bool(_gated_ok(x) and approximate in ("none", "tanh"))


def _run(x: torch.Tensor, activation: int) -> torch.Tensor:
    out = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    KERNELS.require().launch_act_and_mul(x, out, activation)
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` in one Triton launch.

    ``x``: (..., 2d), fp32/fp16/bf16, unit stride along the last dim, any row strides (the
    strides go to the kernel, nothing is copied). Returns a new contiguous (..., d) tensor in
    x's dtype, computed in fp32 and rounded once; ``x`` is not modified.
    """
    return _run(x, KERNELS.require().SILU)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(x[..., :d], approximate) * x[..., d:]`` in one Triton launch; ``approximate``
    is ``"none"`` (erf) or ``"tanh"``. Shapes, dtypes and layout as :func:`silu_and_mul`."""
    k = KERNELS.require()
    return _run(x, k.GELU_TANH if approximate == "tanh" else k.GELU)
