"""The ``flashinfer`` provider: FlashInfer's hand-written CUDA norm kernels behind our contract.

Wrapped functions (``flashinfer.norm``, flashinfer-python >= 0.6.12):

- ``rmsnorm(input, weight, eps, out=None, enable_pdl=None)`` and ``gemma_rmsnorm`` (same
  parameters, scales by ``weight + 1``): write the norm into ``out``.
- ``fused_add_rmsnorm(input, residual, weight, eps, enable_pdl=None)`` and
  ``gemma_fused_add_rmsnorm``: IN PLACE, ``residual += input`` then ``input = norm(residual)``.
  Our op is functional, so x and residual are first copied into the two outputs this module
  allocates, and FlashInfer updates those. The copies cost one extra read and write of both
  tensors; the ``triton`` provider does the same op out of place in one pass.

FlashInfer is NVIDIA-only; it imports on a machine without a GPU, but its kernels then fail,
so availability requires both the package and a CUDA device. It is imported on first use,
never when the plugin loads.
"""

from __future__ import annotations

import math

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, known, row_layout, same_shape

PROVIDER = "flashinfer"

#: FlashInfer's norm kernels are instantiated for 16-bit floats only.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: ``weight_bias`` values with a FlashInfer kernel: 0.0 (plain) and 1.0 (Gemma).
SUPPORTED_WEIGHT_BIAS = (0.0, 1.0)
#: FlashInfer's kernels were built for Turing (sm_75) and later.
MIN_CAPABILITY = (7, 5)
#: Its kernels load rows in 16-byte vectors of gcd(16 / element size, H) elements ...
_VECTOR_BYTES = 16
#: ... and its CuTe-DSL kernels assume inputs aligned to gcd(128, row bytes).
_ALIGN_BYTES = 128

#: ``flashinfer.norm``, imported the first time the provider is found usable.
NORM = kit.LazyVendor(PROVIDER, lambda: kit.import_module("flashinfer.norm"))


def environment_problems(
    min_capability: tuple[int, int] = MIN_CAPABILITY, needs: str = "FlashInfer"
) -> list[str]:
    """What this machine lacks for FlashInfer, found without importing it: the package, a
    CUDA (not ROCm) GPU, and ``min_capability`` (``needs`` says what requires it)."""
    problems = []
    if kit.module_missing("flashinfer"):
        problems.append(
            "flashinfer-python not installed (pip install 'ir-provider-cuda[flashinfer]')"
        )
    return problems + kit.nvidia_gpu_problems("FlashInfer", min_capability, needs=needs)


def available() -> tuple[bool, str]:
    """flashinfer-python must be installed and importable, on a CUDA (not ROCm) GPU >= sm_75.

    Every missing condition is named, e.g. ``"flashinfer-python not installed; no CUDA
    device"``.
    """
    problems = environment_problems()
    if problems:
        return False, "; ".join(problems)
    return NORM.available()


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def _as_rows_ok(x: torch.Tensor) -> bool:
    """x is (..., H) with unit stride along H, its rows are ONE stride level (so it views as
    2-D without a copy), and the row stride keeps FlashInfer's vector loads aligned."""
    if not has_unit_last_stride(x):
        return False
    layout = row_layout(x)
    if layout is None or not layout.single_level:
        return False
    stride, hidden = layout.stride_inner, x.shape[-1]
    if known(stride == hidden) or layout.levels == 0:  # contiguous rows, or a single row
        return True
    # Vectors hold gcd(16 bytes / element size, H) elements; with a symbolic H, ask for the
    # stride to be a multiple of the widest vector (gcd(...) always divides it).
    vector = _VECTOR_BYTES // x.element_size()
    if isinstance(hidden, int):
        vector = math.gcd(vector, hidden)
    return known(stride % vector == 0)


def _common_ok(
    x: torch.Tensor, weight: torch.Tensor | None, weight_bias: float, variance_size: int | None
) -> bool:
    return (
        x.dtype in SUPPORTED_DTYPES
        and weight is not None
        and weight.dtype == x.dtype
        and weight.dim() == 1
        and has_unit_last_stride(weight)
        and weight_bias in SUPPORTED_WEIGHT_BIAS
        and (variance_size is None or known(variance_size == x.shape[-1]))
    )


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp16/bf16 x with a contiguous weight of the same dtype (not None); weight_bias 0.0 or
    1.0; no variance_size (or H); unit stride along H; rows viewable as 2-D without a copy,
    with a row stride that is a multiple of FlashInfer's vector width."""
    return bool(_common_ok(x, weight, weight_bias, variance_size) and _as_rows_ok(x))


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports` for the dtypes, and residual of x's shape and dtype.

    Layout is free: x and residual are copied into fresh contiguous outputs before FlashInfer
    updates those in place.
    """
    return bool(
        _common_ok(x, weight, weight_bias, variance_size)
        and residual.dtype == x.dtype
        and same_shape(residual, x)
    )


# --------------------------------------------------------------------------------------------
# Impls
# --------------------------------------------------------------------------------------------


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """FlashInfer ``rmsnorm`` (weight_bias 0.0) or ``gemma_rmsnorm`` (weight_bias 1.0).

    ``x``: (..., H) fp16/bf16 as :func:`rms_norm_supports` allows, viewed (not copied) as
    (N, H); ``weight``: (H,) of x's dtype. Returns a new contiguous tensor of x's shape and
    dtype; nothing is written to ``x`` or ``weight``.
    """
    hidden = x.shape[-1]
    out = kit.empty_output(x)
    if out.numel() == 0:
        return out
    norm = NORM.require()
    kernel = norm.gemma_rmsnorm if weight_bias == 1.0 else norm.rmsnorm
    kernel(_aligned(_as_2d(x), hidden), _aligned(weight, hidden), epsilon, out=out.view(-1, hidden))
    return out


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashInfer ``fused_add_rmsnorm`` / ``gemma_fused_add_rmsnorm``, made functional.

    ``x``, ``residual``: (..., H) fp16/bf16 of the same dtype; ``weight``: (H,) of that dtype.
    Copies x into ``out`` and residual into ``residual_out`` (new contiguous tensors), then lets
    FlashInfer update those two in place: ``residual_out = x + residual``, ``out`` = its norm.
    Returns ``(out, residual_out)``; ``x`` and ``residual`` are never written.
    """
    assert weight is not None  # supports_args
    norm = NORM.require()
    kernel = norm.gemma_fused_add_rmsnorm if weight_bias == 1.0 else norm.fused_add_rmsnorm
    weight = _aligned(weight, x.shape[-1])
    out, residual_out = kit.in_place_outputs(kernel, (x, residual), weight, epsilon)
    return out, residual_out


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    """(N, H) view of x, whose rows are one stride level (checked by supports_args)."""
    layout = row_layout(x)
    assert layout is not None and layout.single_level
    return x.as_strided((layout.n_rows, x.shape[-1]), (layout.stride_inner, 1))


def _aligned(t: torch.Tensor, hidden: int) -> torch.Tensor:
    """``t``, or a fresh copy of it when its start is not aligned as FlashInfer assumes.

    FlashInfer's kernels assume the start of their input and weight is aligned to
    gcd(128, row bytes). Fresh allocations always are; a view starting mid-row may not be.
    The start address is not part of ir-core's dispatch key (``supports_args`` is cached per
    dtype/shape/stride), so it is checked here, on every call, where it is one integer test.
    """
    if t.data_ptr() % math.gcd(_ALIGN_BYTES, hidden * t.element_size()) == 0:
        return t
    return kit.empty_output(t).copy_(t)
