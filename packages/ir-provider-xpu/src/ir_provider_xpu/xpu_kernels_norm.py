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
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

import torch

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
    if importlib.util.find_spec("vllm_xpu_kernels") is None:
        problems.append(f"vllm-xpu-kernels is not installed ({INSTALL_HINT})")
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        problems.append("no Intel GPU (torch.xpu.is_available() is False)")
    return problems


def import_ops(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[Any | None, str]:
    """Import ``vllm_xpu_kernels._C`` and return ``torch.ops._C``; any exception is a reason."""
    try:
        import_module("vllm_xpu_kernels._C")
    except Exception as exc:  # built for another torch, missing SYCL runtime, ...
        return None, f"import vllm_xpu_kernels._C failed ({type(exc).__name__}: {exc})"
    ops = torch.ops._C
    missing = [name for name in _OPS if not hasattr(ops, name)]
    if missing:
        return None, f"vllm_xpu_kernels registered no torch.ops._C.{', '.join(missing)}"
    return ops, ""


_lock = threading.Lock()
_loaded: tuple[Any | None, str] | None = None


def load() -> tuple[Any | None, str]:
    """``(torch.ops._C, "")`` when the kernels are usable here, else ``(None, reason)``."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                problems = environment_problems()
                _loaded = (None, "; ".join(problems)) if problems else import_ops()
    return _loaded


def available() -> tuple[bool, str]:
    ops, reason = load()
    return ops is not None, reason


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def _weight_ok(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    return (
        weight is not None
        and weight.dtype == x.dtype
        and weight.dim() == 1
        and (weight.shape[0] == 1 or weight.stride(0) == 1)
    )


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
        and _weight_ok(x, weight)
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
        and _weight_ok(x, weight)
        and weight_bias == 0.0
        and (variance_size is None or variance_size == x.shape[-1])
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``ops`` is ``torch.ops._C`` or a test's recorder.
# --------------------------------------------------------------------------------------------


def _owned_rows(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous (N, H) copy of t that the in-place kernel may overwrite."""
    rows = torch.empty((t.numel() // t.shape[-1], t.shape[-1]), dtype=t.dtype, device=t.device)
    return rows.copy_(t.reshape(rows.shape))


def call_rms_norm(ops: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``ops.rms_norm(out, x2d, weight, epsilon)`` into a new contiguous ``out`` of x's shape."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
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
    if x.numel() == 0:
        return (
            torch.empty(x.shape, dtype=x.dtype, device=x.device),
            torch.empty(residual.shape, dtype=residual.dtype, device=residual.device),
        )
    out, residual_out = _owned_rows(x), _owned_rows(residual)
    ops.fused_add_rms_norm(out, residual_out, weight, epsilon)
    return out.view(x.shape), residual_out.view(residual.shape)


# --------------------------------------------------------------------------------------------
# Impls
# --------------------------------------------------------------------------------------------


def _ops() -> Any:
    ops, reason = load()
    if ops is None:  # ir-core never dispatches to an unavailable provider
        raise RuntimeError(f"the xpu_kernels provider is unavailable: {reason}")
    return ops


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMSNorm of x (..., H) on an Intel GPU; see :func:`call_rms_norm`. Functional."""
    assert weight is not None
    return call_rms_norm(_ops(), x, weight, epsilon)


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
    return call_fused_add_rms_norm(_ops(), x, residual, weight, epsilon)
