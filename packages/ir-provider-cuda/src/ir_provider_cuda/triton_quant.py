"""The ``triton`` provider's fp8 quant ops: the op-signature impls around
:mod:`ir_provider_cuda.triton_quant_kernels` and what they support.

Same provider as :mod:`ir_provider_cuda.triton_norm` (availability, device types, the lazy
kernel import); each impl allocates its outputs (contiguous codes, scales in the op's layout)
and launches one kernel (two for a per-tensor dynamic scale: an amax pass, then the quant).
Every op's numerics are ir-core's native semantics; the kernels' module docstring says how fp8
rounding stays exact on GPUs and in Triton's interpreter.
"""

from __future__ import annotations

from types import ModuleType

import torch

from ir_core import kit
from ir_core.kit import same_shape

from .triton_norm import PROVIDER, _rows_ok, _weight_ok

__all__ = ["IMPLS", "PROVIDER"]

#: The fp8 dtypes the kernels write (their codes are computed exactly on every device).
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e4m3fnuz)
#: Largest group the group kernel loads at once (64 KiB of fp32 values in registers).
MAX_GROUP_SIZE = 16384

#: The kernels (which import Triton), imported on the first call.
KERNELS = kit.LazyVendor(
    PROVIDER, lambda: kit.import_module("ir_provider_cuda.triton_quant_kernels")
)


def _k() -> ModuleType:
    return KERNELS.require()


def _codes(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=device)


def _token_scales(x: torch.Tensor) -> torch.Tensor:
    return torch.empty((*x.shape[:-1], 1), dtype=torch.float32, device=x.device)


def _group_scales(x: torch.Tensor, group_size: int, column_major: bool) -> torch.Tensor:
    """(..., H / group_size) fp32; column-major: the group index outermost in memory."""
    groups = x.shape[-1] // group_size
    if column_major:
        return torch.empty((groups, *x.shape[:-1]), dtype=torch.float32, device=x.device).movedim(
            0, -1
        )
    return torch.empty((*x.shape[:-1], groups), dtype=torch.float32, device=x.device)


def _norm_quant(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float,
    q: torch.Tensor,
    scale: torch.Tensor,
    scale_ub: torch.Tensor | None,
    scale_mode: int,
) -> torch.Tensor | None:
    """Launch a fused (add +) norm + quant into ``q`` (and ``scale``); returns ``residual_out``
    (new, residual's shape and dtype) when there is a residual."""
    residual_out = None
    if residual is not None:
        residual_out = torch.empty(residual.shape, dtype=residual.dtype, device=residual.device)
    _k().launch_quant_rows(
        x,
        q,
        scale,
        scale_mode=scale_mode,
        scale_ub=scale_ub,
        norm=True,
        residual=residual,
        residual_out=residual_out,
        weight=weight,
        epsilon=epsilon,
        weight_bias=weight_bias,
    )
    return residual_out


# --------------------------------------------------------------------------------------------
# supports_args: dtypes, ranks and strides only (FakeTensor-safe)
# --------------------------------------------------------------------------------------------


def _quant_ok(x: torch.Tensor, dtype: torch.dtype) -> bool:
    return _rows_ok(x) and dtype in FP8_DTYPES


def _norm_ok(x: torch.Tensor, weight: torch.Tensor | None, dtype: torch.dtype) -> bool:
    return _quant_ok(x, dtype) and _weight_ok(weight)


def _residual_ok(x: torch.Tensor, residual: torch.Tensor) -> bool:
    return _rows_ok(residual) and same_shape(x, residual)


def _group_ok(group_size: int) -> bool:
    return group_size <= MAX_GROUP_SIZE


def fp8_quant_static_supports(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn
) -> bool:
    """fp32/fp16/bf16 ``x`` with unit stride along H and rows on at most two stride levels
    (every 2-D and 3-D tensor), any H; e4m3fn or e4m3fnuz."""
    return bool(_quant_ok(x, dtype))


def fp8_quant_dynamic_supports(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`fp8_quant_static_supports`, per tensor or per token, with or without
    ``scale_ub``."""
    return bool(_quant_ok(x, dtype))


def fp8_quant_group_supports(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`fp8_quant_static_supports`, any ``group_size`` up to 16384 (not only powers of
    two), row- or column-major scales, UE8M0 or fp32 scale values."""
    return bool(_quant_ok(x, dtype) and _group_ok(group_size))


def rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`fp8_quant_static_supports`; weight (H,) of fp32/fp16/bf16 in any mix with x,
    or None; any ``weight_bias``."""
    return bool(_norm_ok(x, weight, dtype))


def fused_add_rms_norm_fp8_quant_static_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`rms_norm_fp8_quant_static_supports`, with ``residual`` of x's shape (its dtype
    and row strides may differ)."""
    return bool(_norm_ok(x, weight, dtype) and _residual_ok(x, residual))


def rms_norm_fp8_quant_dynamic_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`rms_norm_fp8_quant_static_supports`, with or without ``scale_ub``."""
    return bool(_norm_ok(x, weight, dtype))


def fused_add_rms_norm_fp8_quant_dynamic_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`fused_add_rms_norm_fp8_quant_static_supports`, with or without ``scale_ub``."""
    return bool(_norm_ok(x, weight, dtype) and _residual_ok(x, residual))


def rms_norm_fp8_quant_group_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> bool:
    """As :func:`rms_norm_fp8_quant_static_supports` and :func:`fp8_quant_group_supports`."""
    return bool(_norm_ok(x, weight, dtype) and _group_ok(group_size))


def silu_and_mul_fp8_quant_static_supports(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn
) -> bool:
    """As :func:`fp8_quant_static_supports` for ``x`` of any even last dim (the gate and up
    halves are read in place, e.g. the two halves of a fused projection)."""
    return bool(_quant_ok(x, dtype))


# --------------------------------------------------------------------------------------------
# Impls (the ops' exact signatures)
# --------------------------------------------------------------------------------------------


def fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn
) -> torch.Tensor:
    """``clamp(x / scale, -fmax, fmax)`` into fp8, one Triton launch. ``x``: (..., H) with unit
    stride along H; ``scale``: one fp32 element. Returns new contiguous codes of x's shape."""
    q = _codes(tuple(x.shape), dtype, x.device)
    k = _k()
    k.launch_quant_rows(x, q, scale, scale_mode=k.STATIC)
    return q


def fp8_quant_dynamic(
    x: torch.Tensor,
    per_token: bool = False,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic fp8 quantization: per token in one launch (each program finds its rows' amax
    and scale, then quantizes), per tensor in two (a grid-wide atomic amax, then the quant).
    Returns new ``(q, scale)``: contiguous codes and fp32 scales (``(..., 1)`` or ``(1,)``)."""
    q = _codes(tuple(x.shape), dtype, x.device)
    k = _k()
    if per_token:
        scale, mode = _token_scales(x), k.PER_TOKEN
    else:
        scale, mode = torch.empty(1, dtype=torch.float32, device=x.device), k.PER_TENSOR
    k.launch_quant_rows(x, q, scale, scale_mode=mode, scale_ub=scale_ub)
    return q, scale


def fp8_quant_group(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token, per-group fp8 quantization, one program per row walking its groups. Returns
    new ``(q, scale)``: contiguous codes; fp32 scales (..., H / group_size), column-major when
    asked."""
    q = _codes(tuple(x.shape), dtype, x.device)
    scale = _group_scales(x, group_size, column_major_scales)
    _k().launch_quant_groups(
        x,
        None,
        q,
        scale,
        group_size=group_size,
        column_major=column_major_scales,
        scale_ue8m0=scale_ue8m0,
        norm=False,
    )
    return q, scale


def rms_norm_fp8_quant_static(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    scale: torch.Tensor,
    weight_bias: float = 0.0,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> torch.Tensor:
    """RMS norm and static fp8 quantization of the fp32 norm in one launch; new contiguous
    codes of x's shape. ``x`` is not modified."""
    q = _codes(tuple(x.shape), dtype, x.device)
    _norm_quant(x, None, weight, epsilon, weight_bias, q, scale, None, _k().STATIC)
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
    """Residual add, RMS norm of the fp32 sum and static fp8 quantization in one launch.
    Returns new contiguous ``(q, residual_out)``; neither input is modified."""
    q = _codes(tuple(x.shape), dtype, x.device)
    residual_out = _norm_quant(
        x, residual, weight, epsilon, weight_bias, q, scale, None, _k().STATIC
    )
    return q, residual_out


def rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS norm and per-token dynamic fp8 quantization in one launch. Returns new
    ``(q, scale)``, scale (..., 1) fp32."""
    q, scale = _codes(tuple(x.shape), dtype, x.device), _token_scales(x)
    _norm_quant(x, None, weight, epsilon, weight_bias, q, scale, scale_ub, _k().PER_TOKEN)
    return q, scale


def fused_add_rms_norm_fp8_quant_dynamic(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    scale_ub: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Residual add, RMS norm and per-token dynamic fp8 quantization in one launch. Returns
    new ``(q, scale, residual_out)``."""
    q, scale = _codes(tuple(x.shape), dtype, x.device), _token_scales(x)
    residual_out = _norm_quant(
        x, residual, weight, epsilon, weight_bias, q, scale, scale_ub, _k().PER_TOKEN
    )
    return q, scale, residual_out


def rms_norm_fp8_quant_group(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = torch.float8_e4m3fn,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS norm and per-group fp8 quantization in one launch (the variance pass, then each
    group). Returns new ``(q, scale)`` as :func:`fp8_quant_group`."""
    q = _codes(tuple(x.shape), dtype, x.device)
    scale = _group_scales(x, group_size, column_major_scales)
    _k().launch_quant_groups(
        x,
        weight,
        q,
        scale,
        group_size=group_size,
        column_major=column_major_scales,
        scale_ue8m0=scale_ue8m0,
        norm=True,
        epsilon=epsilon,
        weight_bias=weight_bias,
    )
    return q, scale


def silu_and_mul_fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn
) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` in fp32 and static fp8 quantization, one launch.
    ``x``: (..., 2d), unit stride along it. Returns new contiguous codes (..., d)."""
    q = _codes((*x.shape[:-1], x.shape[-1] // 2), dtype, x.device)
    k = _k()
    k.launch_quant_rows(x, q, scale, scale_mode=k.STATIC, source=k.SILU_AND_MUL)
    return q


#: op name -> (impl, supports_args), as the plugin registers them.
IMPLS = {
    "fp8_quant_static": (fp8_quant_static, fp8_quant_static_supports),
    "fp8_quant_dynamic": (fp8_quant_dynamic, fp8_quant_dynamic_supports),
    "fp8_quant_group": (fp8_quant_group, fp8_quant_group_supports),
    "rms_norm_fp8_quant_static": (rms_norm_fp8_quant_static, rms_norm_fp8_quant_static_supports),
    "fused_add_rms_norm_fp8_quant_static": (
        fused_add_rms_norm_fp8_quant_static,
        fused_add_rms_norm_fp8_quant_static_supports,
    ),
    "rms_norm_fp8_quant_dynamic": (
        rms_norm_fp8_quant_dynamic,
        rms_norm_fp8_quant_dynamic_supports,
    ),
    "fused_add_rms_norm_fp8_quant_dynamic": (
        fused_add_rms_norm_fp8_quant_dynamic,
        fused_add_rms_norm_fp8_quant_dynamic_supports,
    ),
    "rms_norm_fp8_quant_group": (rms_norm_fp8_quant_group, rms_norm_fp8_quant_group_supports),
    "silu_and_mul_fp8_quant_static": (
        silu_and_mul_fp8_quant_static,
        silu_and_mul_fp8_quant_static_supports,
    ),
}
