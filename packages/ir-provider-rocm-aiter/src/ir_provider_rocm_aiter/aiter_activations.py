"""The ``aiter`` provider's gated activations: ``silu_and_mul`` and ``gelu_and_mul``.

AITER's entry points (``aiter/ops/activation.py``, ``@compile_ops("module_activation")``, every
tag v0.1.10 .. v0.1.20.post1; kernels in ``csrc/kernels/activation_kernels.cu``):
``silu_and_mul(out, input[, limit=0.0])`` (``limit`` from 0.1.14; 0 clamps nothing),
``gelu_and_mul(out, input)`` (erf GELU), ``gelu_tanh_and_mul(out, input)``. Out first, written
in place, nothing returned; ``input`` is ``(..., 2d)``, ``out`` ``(..., d)``.

What the kernels need, and why ``supports_args`` reads what it reads:

- rows are addressed as ``token * 2d`` and ``token * d``: input and out must be contiguous
  (not checked by AITER). The wrapper passes a contiguous copy of a strided x and a fresh out.
- fp32, fp16 or bf16 input; a 16-bit input needs an out of the same dtype (``AITER_CHECK``).
  The activation and the product are fp32 (``v_pk_mul_f32``) and rounded once, as the op is.
- loads and stores are bounded to ``d`` rounded up to 4 bytes: for a 16-bit dtype and an odd
  ``d`` the last element of a row is written one past it, into the next row. Declined.
- ``module_activation`` needs CK headers to build: unavailable in a CK-free AITER build unless
  prebuilt (see :mod:`.aiter_api`).
"""

from __future__ import annotations

import torch

from ir_core import kit

from .aiter_api import AITER, MODULE_ACTIVATION, PROVIDER, AiterApi, available_if, loaded_api

__all__ = ["PROVIDER"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Our ``approximate`` argument -> AITER's function.
GELU_ENTRIES = {"none": "gelu_and_mul", "tanh": "gelu_tanh_and_mul"}


def problem_silu_and_mul(api: AiterApi) -> str | None:
    return api.problem("silu_and_mul", MODULE_ACTIVATION)


def problem_gelu_and_mul(api: AiterApi) -> str | None:
    problems = (api.problem(entry, MODULE_ACTIVATION) for entry in GELU_ENTRIES.values())
    return next((p for p in problems if p), None)


def available_silu_and_mul() -> tuple[bool, str]:
    return available_if(problem_silu_and_mul)


def available_gelu_and_mul() -> tuple[bool, str]:
    return available_if(problem_gelu_and_mul)


def gated_supported(x: torch.Tensor) -> bool:
    """fp32/fp16/bf16 ``x`` (..., 2d); for 16-bit dtypes an even ``d`` (see the module
    docstring). Any layout: the wrapper copies a strided x to contiguous rows."""
    if x.dtype not in DTYPES:
        return False
    return x.dtype == torch.float32 or kit.known(x.shape[-1] % 4 == 0)


def call_gated(api: AiterApi, entry: str, x: torch.Tensor) -> torch.Tensor:
    """``aiter.<entry>(out, x)`` into a new contiguous ``out`` of shape (..., d)."""
    out = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    api.fn(entry)(out, x.contiguous())
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` by AITER's ``silu_and_mul``. Functional."""
    return call_gated(AITER.require(), "silu_and_mul", x)


def silu_and_mul_supports(x: torch.Tensor) -> bool:
    return loaded_api() is not None and gated_supported(x)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(x[..., :d], approximate) * x[..., d:]`` by AITER's ``gelu_and_mul`` (erf) or
    ``gelu_tanh_and_mul`` (tanh). Functional."""
    return call_gated(AITER.require(), GELU_ENTRIES[approximate], x)


def gelu_and_mul_supports(x: torch.Tensor, approximate: str = "none") -> bool:
    return loaded_api() is not None and approximate in GELU_ENTRIES and gated_supported(x)
