"""The ``flashinfer`` provider's norms: FlashInfer's RMSNorm kernels behind our contract.

Wrapped functions (``flashinfer.norm``, flashinfer-python >= 0.6.12, < 0.8; read in the 0.6.12
and 0.7.4 wheels, identical signatures):

- ``rmsnorm(input, weight, eps, out=None, enable_pdl=None)`` and ``gemma_rmsnorm`` (scales by
  ``weight + 1``): write the norm into ``out``.
- ``fused_add_rmsnorm(input, residual, weight, eps, enable_pdl=None)`` and
  ``gemma_fused_add_rmsnorm``: IN PLACE, ``residual += input`` then ``input = norm(residual)``.
  Our op is functional, so x and residual are first copied into the two outputs this module
  allocates, and FlashInfer updates those (one extra read and write of both tensors; the
  ``triton`` and ``quack`` providers do the op out of place in one pass).
- ``rmsnorm_quant(out, input, weight, scale, eps, enable_pdl=None)``: the norm quantized to the
  fp8 ``out`` from fp32, ``clamp(norm * weight * (1 / scale), +-448)``: our
  ``rms_norm_fp8_quant_static`` for ``weight_bias`` 0.0 (the public API has no Gemma variant).
- ``fused_add_rmsnorm_quant(out, input, residual, weight, scale, eps, enable_pdl=None)``:
  ``residual += input`` in place (rounded to its dtype), ``out`` the fp8 of the norm of the fp32
  sum: our ``fused_add_rms_norm_fp8_quant_static``; residual is copied into ``residual_out``
  first, ``input`` is only read.

Not wrapped: ``fused_add_rmsnorm_fp8_block_quant`` (0.7.0+) quantizes the norm after rounding
it to the input dtype and floors the group amax at 1e-4 (ours: from fp32, 1e-10), and it exists
only with a residual, so it matches none of our group-quant ops.

Two code paths inside FlashInfer run these: CuTe-DSL kernels (the default) and CUDA-JIT kernels
(``FLASHINFER_USE_CUDA_NORM=1``, nvidia-cutlass-dsl missing in 0.6.12, or an architecture the
installed CuTe DSL cannot target in 0.7.x). What ``supports_args`` and the per-call alignment
checks below demand is what is safe on both:

- fp16/bf16 only (the JIT path has no fp32 kernel);
- the weight of x's dtype: the JIT path does NOT check it and reads the weight's bytes as x's
  dtype (silent garbage), so a bf16 x with an fp32 Gemma weight must never reach FlashInfer;
- weight: a 16-byte aligned start (CuTe compiles it as a compact (H,) tensor assumed 16-byte
  aligned, whatever H is);
- x rows: unit stride along H and one row stride that is a multiple of ``gcd(16 / element
  size, H)`` (the JIT path's vector, a multiple of CuTe's); a 16-byte aligned start, and for
  contiguous rows also ``gcd(128, H * element size)`` (CuTe's contiguous kernel assumes that;
  0.7.x takes its strided kernel, which assumes 16, for more than 2**31 - 1 elements).

The start address is not part of ir-core's dispatch key, so it is checked on every call, where
it is one integer test, and a misaligned tensor is copied first.
"""

from __future__ import annotations

import math

import torch

from ir_core.kit import has_unit_last_stride, known, row_layout, same_shape

from . import flashinfer_lib
from .flashinfer_lib import NORM
from .vendor_layout import VECTOR_BYTES, aligned, copy_aligned, empty_aligned

PROVIDER = flashinfer_lib.PROVIDER

#: FlashInfer's norm kernels are instantiated for 16-bit floats only (on both paths).
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: ``weight_bias`` values with a FlashInfer kernel: 0.0 (plain) and 1.0 (Gemma).
SUPPORTED_WEIGHT_BIAS = (0.0, 1.0)
#: The fp8 dtype of the quantizing norms (they saturate at 448, float8_e4m3fn's max).
QUANT_DTYPE = torch.float8_e4m3fn
#: CuTe's contiguous kernels assume inputs and outputs aligned to gcd(this, row bytes); the
#: outputs and copies made here start at a multiple of it.
ALIGN_BYTES = 128


def available() -> tuple[bool, str]:
    """flashinfer-python (>= 0.6.12, < 0.8) importable, on a CUDA (not ROCm) GPU >= sm_75.

    Every missing condition is named, e.g. ``"flashinfer-python not installed; no CUDA
    device"``.
    """
    return flashinfer_lib.availability(NORM)


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def rows_ok(x: torch.Tensor) -> bool:
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
    vector = VECTOR_BYTES // x.element_size()
    if isinstance(hidden, int):
        vector = math.gcd(vector, hidden)
    return known(stride % vector == 0)


def weight_ok(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    """A unit-stride (H,) weight of x's dtype (FlashInfer's JIT path would misread another)."""
    return bool(
        weight is not None
        and weight.dtype == x.dtype
        and weight.dim() == 1
        and has_unit_last_stride(weight)
    )


def _common_ok(
    x: torch.Tensor, weight: torch.Tensor | None, weight_bias: float, variance_size: int | None
) -> bool:
    return (
        x.dtype in SUPPORTED_DTYPES
        and weight_ok(x, weight)
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
    return bool(_common_ok(x, weight, weight_bias, variance_size) and rows_ok(x))


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


def _quant_ok(
    x: torch.Tensor, weight: torch.Tensor | None, weight_bias: float, dtype: torch.dtype
) -> bool:
    return bool(
        x.dtype in SUPPORTED_DTYPES
        and weight_ok(x, weight)
        and weight_bias == 0.0  # rmsnorm_quant has no Gemma variant in the public API
        and dtype == QUANT_DTYPE
        and rows_ok(x)
    )


def rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """fp16/bf16 x, a weight of x's dtype, weight_bias 0.0, float8_e4m3fn output; x's rows as
    :func:`rms_norm_supports` allows."""
    return _quant_ok(x, weight, weight_bias, dtype)


def fused_add_rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`rms_norm_fp8_quant_static_supports`, and residual of x's shape and dtype (it
    is copied into ``residual_out`` first, so its layout is free)."""
    return bool(
        _quant_ok(x, weight, weight_bias, dtype)
        and residual.dtype == x.dtype
        and same_shape(residual, x)
    )


# --------------------------------------------------------------------------------------------
# What the kernels are given
# --------------------------------------------------------------------------------------------


def kernel_rows(x: torch.Tensor) -> torch.Tensor:
    """x as the (N, H) matrix FlashInfer reads: a view, or a fresh copy when its start is not
    aligned as the kernel that would read it assumes (see the module docstring).

    x's rows are one stride level (``supports_args`` checked).
    """
    layout = row_layout(x)
    assert layout is not None and layout.single_level
    hidden = x.shape[-1]
    rows = x.as_strided((layout.n_rows, hidden), (layout.stride_inner, 1))
    align = VECTOR_BYTES
    if rows.is_contiguous():
        align = max(align, math.gcd(ALIGN_BYTES, hidden * x.element_size()))
    # a copy is contiguous, so it gets the contiguous kernel's alignment
    return rows if rows.data_ptr() % align == 0 else copy_aligned(rows, ALIGN_BYTES)


def kernel_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weight, or a fresh copy when its start is not 16-byte aligned (CuTe assumes 16 for
    every H)."""
    return aligned(weight)


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
    assert weight is not None  # supports_args
    out = empty_aligned(x.shape, x.dtype, x.device, ALIGN_BYTES)
    if out.numel() == 0:
        return out
    norm = NORM.require()
    kernel = norm.gemma_rmsnorm if weight_bias == 1.0 else norm.rmsnorm
    kernel(kernel_rows(x), kernel_weight(weight), epsilon, out=out.view(-1, x.shape[-1]))
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
    out, residual_out = _owned_rows(x), _owned_rows(residual)
    if out.numel() != 0:
        norm = NORM.require()
        kernel = norm.gemma_fused_add_rmsnorm if weight_bias == 1.0 else norm.fused_add_rmsnorm
        kernel(out, residual_out, kernel_weight(weight), epsilon)
    return out.view(x.shape), residual_out.view(residual.shape)


def _owned_rows(t: torch.Tensor) -> torch.Tensor:
    """A new (N, H) copy of ``t`` an in-place kernel may overwrite, aligned as CuTe assumes."""
    return copy_aligned(t.reshape(-1, t.shape[-1]), ALIGN_BYTES)


def _quant_output(x: torch.Tensor) -> torch.Tensor:
    return empty_aligned(x.shape, QUANT_DTYPE, x.device, ALIGN_BYTES)


def rms_norm_fp8_quant_static(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> torch.Tensor:
    """FlashInfer ``rmsnorm_quant``: the fp32 norm of ``x`` times ``weight``, times ``1 /
    scale``, saturated at +-448 and rounded once to float8_e4m3fn.

    ``x`` (..., H) fp16/bf16 as :func:`rms_norm_fp8_quant_static_supports` allows; ``scale``
    one fp32 element. Returns a new fp8 tensor of x's shape; the inputs are not written.
    """
    assert weight is not None  # supports_args
    q = _quant_output(x)
    if q.numel() == 0:
        return q
    NORM.require().rmsnorm_quant(
        q.view(-1, x.shape[-1]), kernel_rows(x), kernel_weight(weight), scale.reshape(1), epsilon
    )
    return q


def fused_add_rms_norm_fp8_quant_static(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashInfer ``fused_add_rmsnorm_quant``: returns ``(q, residual_out)``.

    ``residual_out = x + residual`` (rounded to their dtype; FlashInfer writes it into a fresh
    copy of ``residual``), ``q`` the fp8 of the norm of the fp32 sum. The inputs are not written.
    """
    assert weight is not None  # supports_args
    hidden = x.shape[-1]
    q = _quant_output(x)
    residual_out = _owned_rows(residual)
    if q.numel() != 0:
        NORM.require().fused_add_rmsnorm_quant(
            q.view(-1, hidden),
            kernel_rows(x),
            residual_out,
            kernel_weight(weight),
            scale.reshape(1),
            epsilon,
        )
    return q, residual_out.view(residual.shape)
