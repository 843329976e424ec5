"""The ``torch_fused`` provider: ``torch.nn.functional.rms_norm`` on CUDA.

From torch 2.9, a CUDA (or ROCm) build runs RMS norm as one fused kernel
(``aten::_fused_rms_norm``) that computes in fp32 and rounds once, which is exactly our
semantics when the weight has x's dtype and there is no ``weight_bias`` or ``variance_size``.
It needs no extra library, which makes it a useful fallback ahead of ``native`` where neither
Triton nor FlashInfer applies. torch has no fused residual-add variant, so only ``rms_norm``
is provided.

Where torch takes its composite instead (about eight kernels; before 2.9 always, and in the
2.4-era source it rounds the normalized value before the weight multiply), this provider has
nothing to offer over ``native``, so it declines:

- torch without a CUDA kernel for ``aten::_fused_rms_norm`` (2.8 has the op for MPS only, 2.7
  and earlier not at all): unavailable. Detected by asking the dispatcher, so a backport counts.
- a weight of another dtype than x, or a channels-last input: ``rms_norm`` sends those to the
  composite (with a once-per-process warning for the dtype), so ``supports_args`` declines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ir_core.kit import has_unit_last_stride, known

PROVIDER = "torch_fused"

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


#: The fused op, and the dispatch key its GPU kernel is registered under (ROCm builds too).
FUSED_OP = "aten::_fused_rms_norm"
_GPU_KEY = "CUDA"


def has_fused_gpu_kernel(op: str = FUSED_OP) -> bool:
    """torch's dispatcher has a CUDA kernel for ``op`` (False when the op does not exist).

    True on CUDA/ROCm builds of torch >= 2.9; False on 2.8 (MPS only), earlier releases (no such
    op) and CPU-only builds.
    """
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(op, _GPU_KEY))
    except RuntimeError:  # "operator ... does not exist"
        return False


def available() -> tuple[bool, str]:
    """Available with a CUDA/ROCm device and a torch whose ``rms_norm`` has a fused GPU kernel
    (torch >= 2.9)."""
    if not torch.cuda.is_available():
        return False, "no CUDA device (torch's fused rms_norm kernel runs on GPUs only)"
    if not has_fused_gpu_kernel():
        return False, (
            f"torch {torch.__version__} has no fused CUDA rms_norm kernel ({FUSED_OP} has one "
            "from torch 2.9; before, rms_norm is a composite of several kernels)"
        )
    return True, ""


def _maybe_channels_last(x: torch.Tensor) -> bool:
    """x may be laid out channels-last, which rms_norm sends to its composite: a 4-D or 5-D x
    whose last stride is not provably 1 (decided from strides, without guards)."""
    return x.dim() in (4, 5) and not has_unit_last_stride(x)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp32/fp16/bf16 x (not channels-last), weight None or of x's dtype, weight_bias 0.0, no
    variance_size (or H).

    A mixed-dtype weight or a channels-last x would leave torch's fused path, and it has no
    weight bias or partial variance at all.
    """
    return bool(
        x.dtype in SUPPORTED_DTYPES
        and (weight is None or weight.dtype == x.dtype)
        and not _maybe_channels_last(x)
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
