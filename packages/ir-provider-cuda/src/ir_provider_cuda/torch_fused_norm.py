"""The ``torch_fused`` provider: ``torch.nn.functional.rms_norm`` on CUDA.

On a CUDA (or ROCm) device torch runs RMS norm as one fused kernel (``aten::_fused_rms_norm``)
that computes in fp32 and rounds once, which is exactly our semantics when the weight has x's
dtype and there is no ``weight_bias`` or ``variance_size``. It needs no extra library, which
makes it a useful fallback ahead of ``native`` where neither Triton nor FlashInfer applies.
torch has no fused residual-add variant, so only ``rms_norm`` is provided.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ir_core.kit import known

PROVIDER = "torch_fused"

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def available() -> tuple[bool, str]:
    """Available with a CUDA/ROCm device (torch's fused kernel is a GPU kernel)."""
    if not torch.cuda.is_available():
        return False, "no CUDA device (torch's fused rms_norm kernel runs on GPUs only)"
    return True, ""


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp32/fp16/bf16 x, weight None or of x's dtype, weight_bias 0.0, no variance_size (or H).

    A mixed-dtype weight would leave torch's fused path, and it has no weight bias or partial
    variance at all.
    """
    return bool(
        x.dtype in SUPPORTED_DTYPES
        and (weight is None or weight.dtype == x.dtype)
        and weight_bias == 0.0
        and (variance_size is None or known(variance_size == x.shape[-1]))
    )


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """``F.rms_norm(x, (H,), weight, epsilon)``: x (..., H) fp32/fp16/bf16, weight (H,) of x's
    dtype or None. Returns a new tensor of x's shape and dtype; the inputs are not modified."""
    return F.rms_norm(x, (x.shape[-1],), weight, epsilon)
