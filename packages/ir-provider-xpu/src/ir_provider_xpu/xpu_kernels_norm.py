"""The ``xpu_kernels`` provider: vLLM's SYCL norm kernels for Intel GPUs (vllm-xpu-kernels).

``import vllm_xpu_kernels._C`` registers, among others (``csrc/layernorm.cpp``):

- ``torch.ops._C.rms_norm(out, input, weight, epsilon) -> ()``: writes the norm into ``out``
  (contiguous, required); ``input`` needs a unit last stride; rank 2 to 4.
- ``torch.ops._C.fused_add_rms_norm(input, residual, weight, epsilon) -> ()``: IN PLACE,
  ``residual += input`` then ``input = norm(residual)``; rows of ``residual`` are assumed
  contiguous.

Both take fp32, fp16 or bf16 with the weight in the same dtype. Our ops are functional, so
``rms_norm`` gets an output allocated here, and ``fused_add_rms_norm`` gets contiguous copies of
x and residual that become the two outputs.

Precision, read from the kernels: the normalised value is rounded to the element type before
the weight multiply, and the fused kernel normalises the sum *rounded* to the element type
(vLLM's CUDA semantics). Each rounding is at most half an ulp: one extra rounding keeps fp16
``rms_norm`` within its 1e-3 tolerance and bf16 within 1.6e-2, but the two of fp16
``fused_add_rms_norm`` can exceed 1e-3, so that case is left to other providers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from ir_core import kit

PROVIDER = "xpu_kernels"
DISTRIBUTION = "vllm-xpu-kernels"
INSTALL_HINT = "pip install 'ir-provider-xpu[xpu-kernels]' with the release built for your torch"
RMS_NORM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: fp16 excluded: two roundings to fp16 inside the fused kernel (see the module docstring).
FUSED_ADD_DTYPES = (torch.float32, torch.bfloat16)
_OPS = ("rms_norm", "fused_add_rms_norm")


def environment_problems() -> list[str]:
    """Why vllm-xpu-kernels cannot run here, without importing it (empty when it can try)."""
    problems = []
    if kit.module_missing("vllm_xpu_kernels"):
        problems.append(f"vllm-xpu-kernels is not installed ({INSTALL_HINT})")
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        problems.append("no Intel GPU (torch.xpu.is_available() is False)")
    return problems


def import_ops(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[Any | None, str]:
    """Import ``vllm_xpu_kernels._C`` and return ``torch.ops._C``; any exception is a reason."""
    _, reason = kit.import_module("vllm_xpu_kernels._C", import_module)
    if reason:  # built for another torch, missing SYCL runtime, ...
        return None, reason
    ops = torch.ops._C
    missing = [name for name in _OPS if not hasattr(ops, name)]
    if missing:
        return None, f"vllm_xpu_kernels registered no torch.ops._C.{', '.join(missing)}"
    return ops, ""


#: ``torch.ops._C`` once vllm-xpu-kernels registered its ops: loaded on first use, once.
KERNELS = kit.LazyVendor(PROVIDER, import_ops, problems=environment_problems)
#: ``(torch.ops._C, "")`` when the kernels are usable here, else ``(None, reason)``.
load = KERNELS.load
available = KERNELS.available


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp32/fp16/bf16 x and a contiguous (H,) weight of its dtype; no ``weight_bias`` and no
    ``variance_size < H`` (the kernels have neither). Any layout: the wrapper copies to rows."""
    return bool(
        x.dtype in RMS_NORM_DTYPES
        and kit.is_weight_for(x, weight)
        and weight_bias == 0.0
        and (variance_size is None or variance_size == x.shape[-1])
    )


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports` but fp32/bf16 only, residual of x's shape and dtype."""
    return bool(
        x.dtype in FUSED_ADD_DTYPES
        and residual.dtype == x.dtype
        and tuple(residual.shape) == tuple(x.shape)
        and kit.is_weight_for(x, weight)
        and weight_bias == 0.0
        and (variance_size is None or variance_size == x.shape[-1])
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``ops`` is ``torch.ops._C`` or a test's recorder.
# --------------------------------------------------------------------------------------------


def call_rms_norm(ops: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``ops.rms_norm(out, x2d, weight, epsilon)`` into a new contiguous ``out`` of x's shape."""
    out = kit.empty_output(x)
    if x.numel() == 0:
        return out
    hidden = x.shape[-1]
    ops.rms_norm(out.view(-1, hidden), x.reshape(-1, hidden).contiguous(), weight, epsilon)
    return out


def call_fused_add_rms_norm(
    ops: Any, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ops.fused_add_rms_norm(out, residual_out, weight, epsilon)`` on owned copies of x and
    residual: the kernel turns them into the norm and the sum. x and residual stay untouched."""
    out, residual_out = kit.in_place_outputs(ops.fused_add_rms_norm, (x, residual), weight, epsilon)
    return out, residual_out


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
    """RMSNorm of x (..., H) on an Intel GPU; see :func:`call_rms_norm`. Functional."""
    assert weight is not None
    return call_rms_norm(KERNELS.require(), x, weight, epsilon)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(x + residual), x + residual)`` on an Intel GPU; see
    :func:`call_fused_add_rms_norm`. Functional."""
    assert weight is not None
    return call_fused_add_rms_norm(KERNELS.require(), x, residual, weight, epsilon)
