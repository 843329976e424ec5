"""The ``xpu_kernels`` provider's fp8 quant ops: those whose results stay within the op's
tolerance (dequantized values within one fp8 step, fp32 scales within 1e-5).

Read in vllm-xpu-kernels v0.1.13 (``csrc/torch_bindings.cpp``, ``csrc/layernorm_quant.cpp``,
``csrc/quantization/fp8/``, ``csrc/activation.cpp``). Every kernel writes OCP
``float8_e4m3fn`` (or e5m2, which no op here produces), never ``e4m3fnuz``; values are
``x * (1 / scale)`` clamped to +-fmax, which is the op's ``clamp(x / scale)`` within one step.

Registered (schema -> op):

- ``static_scaled_fp8_quant(Tensor! result, Tensor input, Tensor scale, (int, int)?
  group_shape=None)`` -> ``fp8_quant_static``: exact semantics; fp32/fp16/bf16.
- ``dynamic_per_token_scaled_fp8_quant(Tensor! result, Tensor input, Tensor! scale, Tensor?
  scale_ub)`` -> ``fp8_quant_dynamic(per_token=True)``: the op's scale
  ``max(min(amax, scale_ub) / fmax, 1 / (fmax * 512))`` exactly. Per tensor is left out:
  ``dynamic_scaled_fp8_quant`` has no scale floor (an all-zero input gets scale 0).
- ``rms_norm_dynamic_per_token_quant(Tensor! result, Tensor input, Tensor weight, Tensor!
  scale, float epsilon, Tensor? scale_ub, Tensor!? residual)`` -> ``rms_norm_fp8_quant_dynamic``
  (the norm in fp32, the op's scale exactly, every dtype) and, with ``residual``,
  ``fused_add_rms_norm_fp8_quant_dynamic`` for fp32 only: the kernel updates the residual in
  place with the sum **rounded to the element type** and normalises that, which for fp16/bf16
  moves the per-token scale by up to half an ulp of bf16 (2^-9), beyond the scales' 1e-5.
- ``rms_norm_static_fp8_quant(Tensor! result, Tensor input, Tensor weight, Tensor scale, float
  epsilon)`` and ``fused_add_rms_norm_static_fp8_quant(Tensor! result, Tensor input, Tensor!
  residual, Tensor weight, Tensor scale, float epsilon)`` -> the static norm+quant ops: the
  kernel rounds ``x * inv_rms`` to the element type, multiplies by the weight in the element
  type (a second rounding) and quantizes that, and the fused add normalises the rounded sum.
  For fp32 that is the op's arithmetic; for fp16/bf16 the value quantized is at most
  3 * 2^-9 (0.6 %) away from the op's fp32 value, less than one fp8 step (2^-4 to 2^-3 of
  the value), so a code can move by one step at most: inside the op's tolerance, and the
  same difference the op's docstring states for fused against unfused.
- ``silu_and_mul_quant(Tensor! result, Tensor input, Tensor scale)`` ->
  ``silu_and_mul_fp8_quant_static``: fp16/bf16 only (``TORCH_CHECK``), the activation and
  the product each rounded to the element type before quantizing (2 * 2^-9 at most: one fp8
  step at most, as above).

Left out: the group ops (``per_token_group_fp8_quant``, ``rms_norm_per_block_quant``): their
scale is ``max(amax / fmax, 1 / (fmax * 512))``, the op's is ``max(amax, 1e-10) / fmax``:
different for any group of amax below 1/512, which ``supports_args`` cannot see.
"""

from __future__ import annotations

from typing import Any

import torch

from ir_core import kit

from .xpu_kernels_norm import KERNELS, PROVIDER, XpuKernels, available_with
from .xpu_kernels_ops import fresh_contiguous

__all__ = ["PROVIDER"]

FP8 = torch.float8_e4m3fn
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SIXTEEN_BIT = (torch.float16, torch.bfloat16)


def available_fp8_quant_static() -> tuple[bool, str]:
    return available_with("static_scaled_fp8_quant")


def available_fp8_quant_dynamic() -> tuple[bool, str]:
    return available_with("dynamic_per_token_scaled_fp8_quant")


def available_rms_norm_fp8_quant_static() -> tuple[bool, str]:
    return available_with("rms_norm_static_fp8_quant")


def available_fused_add_rms_norm_fp8_quant_static() -> tuple[bool, str]:
    return available_with("fused_add_rms_norm_static_fp8_quant")


def available_rms_norm_fp8_quant_dynamic() -> tuple[bool, str]:
    return available_with("rms_norm_dynamic_per_token_quant")


available_fused_add_rms_norm_fp8_quant_dynamic = available_rms_norm_fp8_quant_dynamic


def available_silu_and_mul_fp8_quant_static() -> tuple[bool, str]:
    return available_with("silu_and_mul_quant")


# -- helpers -------------------------------------------------------------------------------------


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(N, H) contiguous rows of t (a view when t is contiguous): the kernels index
    ``token * hidden``."""
    return t.reshape(-1, t.shape[-1]).contiguous()


def _codes(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, dtype=FP8, device=x.device)


def _token_scales(x: torch.Tensor) -> torch.Tensor:
    return torch.empty((*x.shape[:-1], 1), dtype=torch.float32, device=x.device)


def _ub(scale_ub: torch.Tensor | None) -> torch.Tensor | None:
    return None if scale_ub is None else scale_ub.reshape(1)


def _norm_ok(
    kernels: XpuKernels | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    dtype: torch.dtype,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
) -> bool:
    """fp8 e4m3fn out, ``x`` of ``dtypes`` with a (H,) weight of its dtype (``TORCH_CHECK``:
    not None, not fp32 with 16-bit x), no ``weight_bias`` (no Gemma kernels)."""
    return bool(
        kernels is not None
        and dtype == FP8
        and x.dtype in dtypes
        and kit.is_weight_for(x, weight)
        and weight_bias == 0.0
    )


def _residual_ok(x: torch.Tensor, residual: torch.Tensor) -> bool:
    return residual.dtype == x.dtype and kit.same_shape(residual, x)


# -- fp8_quant_static / fp8_quant_dynamic --------------------------------------------------------


def call_fp8_quant_static(ops: Any, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    q = _codes(x)
    if x.numel():
        ops.static_scaled_fp8_quant(q.view(-1, x.shape[-1]), _rows(x), scale.reshape(1))
    return q


def fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = FP8
) -> torch.Tensor:
    """``clamp(x / scale)`` in fp8 on an Intel GPU."""
    return call_fp8_quant_static(KERNELS.require().ops, x, scale)


def fp8_quant_static_supports(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = FP8
) -> bool:
    return KERNELS.loaded() is not None and dtype == FP8 and x.dtype in DTYPES


def call_fp8_quant_dynamic(
    ops: Any, x: torch.Tensor, scale_ub: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    q, scale = _codes(x), _token_scales(x)
    if x.numel():
        ops.dynamic_per_token_scaled_fp8_quant(
            q.view(-1, x.shape[-1]), _rows(x), scale.view(-1, 1), _ub(scale_ub)
        )
    return q, scale


def fp8_quant_dynamic(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token dynamic fp8 quantization on an Intel GPU (per tensor is declined)."""
    return call_fp8_quant_dynamic(KERNELS.require().ops, x, scale_ub)


def fp8_quant_dynamic_supports(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> bool:
    return KERNELS.loaded() is not None and per_token and dtype == FP8 and x.dtype in DTYPES


# -- static norm + quant -------------------------------------------------------------------------


def call_rms_norm_fp8_quant_static(
    ops: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float, scale: torch.Tensor
) -> torch.Tensor:
    q = _codes(x)
    if x.numel():
        ops.rms_norm_static_fp8_quant(
            q.view(-1, x.shape[-1]), _rows(x), weight, scale.reshape(1), epsilon
        )
    return q


def rms_norm_fp8_quant_static(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = FP8,
) -> torch.Tensor:
    """RMSNorm then static fp8 quantization in one kernel on an Intel GPU."""
    assert weight is not None
    return call_rms_norm_fp8_quant_static(KERNELS.require().ops, x, weight, epsilon, scale)


def rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = FP8,
) -> bool:
    return _norm_ok(KERNELS.loaded(), x, weight, weight_bias, dtype)


def call_fused_add_rms_norm_fp8_quant_static(
    ops: Any,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    epsilon: float,
    scale: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel writes the codes and turns an owned copy of residual into the sum."""
    q = _codes(x)
    if x.numel() == 0:
        return q, kit.empty_output(residual)
    residual_out = kit.owned_rows(residual)
    ops.fused_add_rms_norm_static_fp8_quant(
        q.view(-1, x.shape[-1]), _rows(x), residual_out, weight, scale.reshape(1), epsilon
    )
    return q, residual_out.view(residual.shape)


def fused_add_rms_norm_fp8_quant_static(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add, RMSNorm and static fp8 quantization in one kernel on an Intel GPU."""
    assert weight is not None
    return call_fused_add_rms_norm_fp8_quant_static(
        KERNELS.require().ops, x, residual, weight, epsilon, scale
    )


def fused_add_rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = FP8,
) -> bool:
    return _residual_ok(x, residual) and _norm_ok(KERNELS.loaded(), x, weight, weight_bias, dtype)


# -- dynamic norm + quant ------------------------------------------------------------------------


def call_rms_norm_fp8_quant_dynamic(
    ops: Any,
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    epsilon: float,
    scale_ub: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """``(q, scale)``, or ``(q, scale, residual_out)`` when ``residual`` is given (an owned
    copy the kernel turns into the sum)."""
    q, scale = _codes(x), _token_scales(x)
    residual_out = None if residual is None else kit.empty_output(residual)
    if x.numel():
        if residual is not None:
            residual_out = kit.owned_rows(residual)
        ops.rms_norm_dynamic_per_token_quant(
            q.view(-1, x.shape[-1]), _rows(x), weight, scale.view(-1, 1), epsilon,
            _ub(scale_ub), residual_out,
        )  # fmt: skip
    if residual is None:
        return q, scale
    return q, scale, residual_out.view(residual.shape)


def rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm then per-token dynamic fp8 quantization in one kernel on an Intel GPU."""
    assert weight is not None
    q, scale = call_rms_norm_fp8_quant_dynamic(
        KERNELS.require().ops, x, None, weight, epsilon, scale_ub
    )
    return q, scale


def rms_norm_fp8_quant_dynamic_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> bool:
    return _norm_ok(KERNELS.loaded(), x, weight, weight_bias, dtype)


def fused_add_rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Add, RMSNorm and per-token dynamic fp8 quantization in one kernel (fp32)."""
    assert weight is not None
    q, scale, residual_out = call_rms_norm_fp8_quant_dynamic(
        KERNELS.require().ops, x, residual, weight, epsilon, scale_ub
    )
    return q, scale, residual_out


def fused_add_rms_norm_fp8_quant_dynamic_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = FP8,
) -> bool:
    """fp32 only (see the module docstring), residual of x's shape and dtype."""
    return _residual_ok(x, residual) and _norm_ok(
        KERNELS.loaded(), x, weight, weight_bias, dtype, (torch.float32,)
    )


# -- silu_and_mul + static quant -----------------------------------------------------------------


def call_silu_and_mul_fp8_quant_static(
    ops: Any, x: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    q = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=FP8, device=x.device)
    if q.numel():
        ops.silu_and_mul_quant(q, fresh_contiguous(x), scale.reshape(1))
    return q


def silu_and_mul_fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = FP8
) -> torch.Tensor:
    """SwiGLU's activation quantized to fp8 with a static scale, on an Intel GPU."""
    return call_silu_and_mul_fp8_quant_static(KERNELS.require().ops, x, scale)


def silu_and_mul_fp8_quant_static_supports(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = FP8
) -> bool:
    """fp16/bf16 x only (the kernel's ``TORCH_CHECK``), e4m3fn out."""
    return KERNELS.loaded() is not None and dtype == FP8 and x.dtype in SIXTEEN_BIT
