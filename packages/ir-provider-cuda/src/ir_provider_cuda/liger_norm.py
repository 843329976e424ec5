"""The ``liger`` provider: liger-kernel's Triton RMSNorm (LinkedIn), in its "gemma" casting mode.

Wrapped function: ``liger_kernel.ops.rms_norm.rms_norm_forward(X, W, eps, offset, casting_mode,
row_mode) -> (Y, X_2d, RSTD, BLOCK_SIZE, num_warps, casting_mode)``, the forward behind
``LigerRMSNormFunction`` without its autograd Function and its ``.contiguous()`` copies (the
same signature from liger-kernel 0.6.0 to 0.8.5, the newest when read; ``W=None`` from 0.6.5,
the lowest release accepted). Out of place: ``Y`` is a new ``(rows, H)`` tensor of X's dtype.

``casting_mode`` (read in the 0.8.5 kernel ``_rms_norm_forward_kernel``):

- ``"gemma"``: x and w cast to fp32, ``y = x * rsqrt(mean(x^2) + eps) * (offset + w)`` in
  fp32, rounded once at the store: our fp32-once semantics, with ``offset = weight_bias`` and a
  weight of any float dtype. This is the mode used.
- ``"llama"`` rounds ``x * rstd`` to x's dtype before the weight multiply (two roundings, as
  Hugging Face's Llama does) and ``"none"`` computes in x's dtype: neither is our op.

Not wrapped: liger's fused add + RMSNorm (``fused_add_rms_norm_forward``, 0.6.1+) stores the sum
rounded to x's dtype and normalizes that rounded sum, where our ``fused_add_rms_norm``
normalizes the fp32 sum. They differ by up to one ulp of the sum in the norm's input: within
tolerance, but not the op's semantics, and the out-of-place ``triton`` and ``quack`` impls give
the exact op at the same memory traffic, so it is left out rather than registered.

Kernel limits: X viewable as ``(-1, H)`` with a unit last stride (its row stride is passed, the
last is assumed 1); W read as a contiguous ``(H,)`` vector; ``next_power_of_2(H) <= 65536``
(a RuntimeError above). Triton's kernels need a CUDA or ROCm GPU: as released (0.8.2+ call
``eps.to(...)`` on a scalar; <= 0.8.1 use libdevice's rsqrt) they do not run under
``TRITON_INTERPRET=1``, so there is no CPU device here.
"""

from __future__ import annotations

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, known, row_layout

from .vendor_release import availability, package_problems

PROVIDER = "liger"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CASTING_MODE = "gemma"
#: Releases checked: >= 0.6.5 (rms_norm_forward with row_mode and an optional W), < 0.9 (the
#: extra's bound too).
MIN_VERSION = (0, 6, 5)
BELOW_VERSION = (0, 9)
#: liger's largest Triton block (``calculate_settings``): rows of up to this many elements.
MAX_HIDDEN = 65536


def environment_problems() -> list[str]:
    """What this machine lacks for liger, found without importing it."""
    problems = package_problems("liger_kernel", "liger-kernel", MIN_VERSION, BELOW_VERSION, "liger")
    if not torch.cuda.is_available():
        problems.append(
            "no CUDA/ROCm device (liger's Triton kernels do not run under TRITON_INTERPRET as "
            "released)"
        )
    return problems


#: ``liger_kernel.ops.rms_norm``, imported the first time the provider is found usable.
LIBRARY = kit.LazyVendor(PROVIDER, lambda: kit.import_module("liger_kernel.ops.rms_norm"))


def available() -> tuple[bool, str]:
    """liger-kernel (>= 0.6.5, < 0.9) importable, with a CUDA or ROCm GPU for its Triton kernels."""
    return availability(environment_problems(), LIBRARY)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp16/bf16/fp32 x; a contiguous (H,) weight of any of those dtypes, or none; any
    weight_bias; no variance_size (or H); H <= 65536; rows of one stride level with a unit
    last stride (viewable as (-1, H))."""
    hidden = x.shape[-1]
    layout = row_layout(x)
    return bool(
        x.dtype in SUPPORTED_DTYPES
        and (
            weight is None
            or (
                weight.dtype in SUPPORTED_DTYPES
                and weight.dim() == 1
                and has_unit_last_stride(weight)
            )
        )
        and (variance_size is None or known(variance_size == hidden))
        and known(hidden <= MAX_HIDDEN)
        and has_unit_last_stride(x)
        and layout is not None
        and layout.single_level
    )


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """liger ``rms_norm_forward`` in "gemma" mode: a new tensor of x's shape and dtype; the
    inputs are not written."""
    if x.numel() == 0:
        return kit.empty_output(x)
    layout = row_layout(x)
    assert layout is not None and layout.single_level
    rows = x.as_strided((layout.n_rows, x.shape[-1]), (layout.stride_inner, 1))
    y = LIBRARY.require().rms_norm_forward(
        rows, weight, epsilon, float(weight_bias), CASTING_MODE, None
    )[0]
    return y.view(x.shape)
