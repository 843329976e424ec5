"""The ``flashinfer`` provider's gated activations: ``silu_and_mul`` and ``gelu_and_mul``.

Wrapped functions (``flashinfer.activation``; the same signature in 0.6.12 and 0.7.4):
``silu_and_mul(input, out=None, enable_pdl=None)``, ``gelu_and_mul`` (exact erf GELU) and
``gelu_tanh_and_mul`` (the tanh approximation), each ``out = act(input[..., :d]) *
input[..., d:]`` computed in fp32 and rounded once: our ops' semantics. They write into ``out``,
which this module allocates, so nothing is copied.

What the kernels handle (read in both wheels' ``activation.py`` and ``activation.cuh``):

- fp16/bf16 only;
- the kernel ignores strides (row ``t`` is read at ``t * 2d``): x must be contiguous;
- 0.6.12 to 0.7.0 load fixed 16-byte vectors, so ``d`` must be a multiple of ``16 / element
  size`` (their Python check, ``2d * element size % 16``, lets e.g. bf16 d = 12 through to
  misaligned loads); from 0.7.1 the vector is the widest that divides ``d`` and any even last
  dim is accepted;
- zero tokens launch an empty grid (an error): skipped here;
- ``enable_pdl`` is left to FlashInfer (``None``: only where the device supports it; an
  explicit True would be passed to the launch even on GPUs without PDL).
"""

from __future__ import annotations

import torch

from ir_core.kit import known

from . import flashinfer_lib
from .flashinfer_lib import ACTIVATION
from .vendor_layout import VECTOR_BYTES, aligned, dense_rows

PROVIDER = flashinfer_lib.PROVIDER
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: Our ``approximate`` -> FlashInfer's function.
GELU_KERNELS = {"none": "gelu_and_mul", "tanh": "gelu_tanh_and_mul"}


def available() -> tuple[bool, str]:
    """flashinfer-python (>= 0.6.12, < 0.8) importable, on a CUDA (not ROCm) GPU >= sm_75."""
    return flashinfer_lib.availability(ACTIVATION)


def _x_ok(x: torch.Tensor) -> bool:
    if x.dtype not in SUPPORTED_DTYPES or not dense_rows(x):
        return False
    if flashinfer_lib.relaxed_activations():
        return True
    return known((x.shape[-1] // 2) % (VECTOR_BYTES // x.element_size()) == 0)


def silu_and_mul_supports(x: torch.Tensor) -> bool:
    """fp16/bf16, contiguous; before FlashInfer 0.7.1 also ``d`` a multiple of 16 bytes."""
    return _x_ok(x)


def gelu_and_mul_supports(x: torch.Tensor, approximate: str = "none") -> bool:
    """As :func:`silu_and_mul_supports`, for both approximations."""
    return approximate in GELU_KERNELS and _x_ok(x)


def _run(kernel_name: str, x: torch.Tensor) -> torch.Tensor:
    out = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    kernel = getattr(ACTIVATION.require(), kernel_name)
    kernel(aligned(x), out=out)
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """FlashInfer ``silu_and_mul`` into a new ``(..., d)`` tensor; x (..., 2d) is only read."""
    return _run("silu_and_mul", x)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """FlashInfer ``gelu_and_mul`` (``"none"``) or ``gelu_tanh_and_mul`` (``"tanh"``) into a
    new ``(..., d)`` tensor; x (..., 2d) is only read."""
    return _run(GELU_KERNELS[approximate], x)
