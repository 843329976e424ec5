"""The ``aiter`` provider's fp8 quant ops: the ones whose AITER semantics are the op's.

Read in ROCm/aiter (``aiter/ops/quant.py``, ``aiter/ops/rmsnorm.py``,
``csrc/kernels/quant_kernels.cu``, ``csrc/kernels/rmsnorm_quant_kernels.cu``; the saturation in
``csrc/include/aiter_opus_plus.h``) at v0.1.12 .. v0.1.20.post1. Every kernel writes
``aiter.dtypes.fp8`` only, the fp8 dtype of the GPU: ``float8_e4m3fnuz`` (max 240) on gfx942 /
MI300, ``float8_e4m3fn`` (max 448) on gfx950 / MI350; any other ``dtype`` is declined. Values
are ``x * rcp(scale)`` clamped to that max and converted once (``v_med3_f32`` then
``v_cvt_pk_fp8_f32``): the op's ``clamp(x / scale)`` within its one-fp8-step tolerance.

Registered:

- ``fp8_quant_static`` -> ``static_per_tensor_quant(out, input, scale)``: fp16/bf16 input
  (``AITER_DISPATCH_FLOATING16_TYPES``), rows at ``blockIdx.x * cols`` (a contiguous copy).
- ``fp8_quant_group`` -> ``per_group_quant_hip(x, quant_dtype=, group_size=, transpose_scale=)``:
  group scale ``max(amax, 1e-10) / fmax`` exactly as the op's; groups of 32, 64 or 128;
  ``transpose_scale`` writes the same values column-major (``scale[g * rows + row]``), which
  is the op's ``column_major_scales`` layout. No power-of-two (ue8m0) rounding of fp32 scales.
- ``rms_norm_fp8_quant_group`` -> ``rmsnorm2d_fwd_with_dynamicquant(out, input, yscale, weight,
  epsilon, group_size=, shuffle_scale=)``: the HIP kernel (CK and opus have no group path), so
  2-D fp16/bf16 rows of H <= 8192, the norm in fp32 and quantized from fp32, the same group
  scale. Its ``thread_data_size`` is 8 for H <= 2048, 16 <= 4096, 24 <= 6144, 32 <= 8192, and
  ``group_size`` must be a multiple of it, at most 64 times it, with a power-of-two quotient
  (``"group_size not support"``): e.g. no group of 128 for 4096 < H <= 6144. No Gemma.

Left out, because AITER's results differ from the op's on inputs ``supports_args`` cannot see
(it reads metadata, never values):

- ``fp8_quant_dynamic``: ``dynamic_per_tensor_quant`` and ``dynamic_per_token_scaled_quant``
  take amax from 0 with no floor (an all-zero row gets scale 0, then ``rcp(0)``), where the op
  floors the scale at ``1 / (fmax * 512)``; ``scale_ub`` is accepted and never read.
- ``rms_norm_fp8_quant_dynamic`` / ``fused_add_rms_norm_fp8_quant_dynamic``
  (``rmsnorm2d_fwd_with(_add)_dynamicquant`` per token): the scale floor is ``1e-10 / fmax``,
  not ``1 / (fmax * 512)`` (rows of amax < 1/512 get other scales), and no ``scale_ub``.
- ``rms_norm_fp8_quant_static`` / ``fused_add_rms_norm_fp8_quant_static``: AITER has these
  only as Triton kernels (``aiter.ops.triton.quant.fused_fp8_quant``), whose module cannot be
  imported without a GPU to check it against; not wrapped yet.
- ``silu_and_mul_fp8_quant_static`` (``scaled_silu_and_mul``): its kernel converts with a plain
  ``opus::cast`` whose saturation was not confirmed in the source; the op clamps.
"""

from __future__ import annotations

import torch

from ir_core import kit

from .aiter_api import (
    AITER,
    HIP_MAX_HIDDEN,
    MODULE_HIP_NORM,
    MODULE_QUANT,
    PROVIDER,
    AiterApi,
    available_if,
    loaded_api,
    two_d,
)

__all__ = ["PROVIDER"]

INPUT_DTYPES = (torch.float16, torch.bfloat16)
#: Group sizes of ``per_group_quant_hip`` (asserted) and its kernel.
QUANT_GROUP_SIZES = (32, 64, 128)
DEFAULT_FP8 = torch.float8_e4m3fn


def fp8_quant_static_supported(api: AiterApi | None, x: torch.Tensor, dtype: torch.dtype) -> bool:
    """fp16/bf16 x, ``dtype`` the GPU's fp8 dtype (``aiter.dtypes.fp8``); any layout."""
    return api is not None and x.dtype in INPUT_DTYPES and dtype == api.fp8


def fp8_quant_group_supported(
    api: AiterApi | None, x: torch.Tensor, group_size: int, scale_ue8m0: bool, dtype: torch.dtype
) -> bool:
    """As :func:`fp8_quant_static_supported`, groups of 32, 64 or 128, no ``scale_ue8m0``."""
    return (
        fp8_quant_static_supported(api, x, dtype)
        and group_size in QUANT_GROUP_SIZES
        and not scale_ue8m0
    )


def _group_scales(x: torch.Tensor, group_size: int, column_major: bool) -> torch.Tensor:
    """fp32 (..., H / group_size), rows or, column-major, the group index outermost."""
    lead, groups = tuple(x.shape[:-1]), x.shape[-1] // group_size
    if column_major:
        return torch.empty((groups, *lead), dtype=torch.float32, device=x.device).movedim(0, -1)
    return torch.empty((*lead, groups), dtype=torch.float32, device=x.device)


def _as_op_layout(flat: torch.Tensor, x: torch.Tensor, group_size: int, column_major: bool):
    """AITER's scale memory (``(rows, G)``, or ``[g][row]`` when transposed) in the op's shape."""
    lead, groups = tuple(x.shape[:-1]), x.shape[-1] // group_size
    flat = flat.reshape(-1)
    if column_major:
        return flat.view(groups, *lead).movedim(0, -1)
    return flat.view(*lead, groups)


def hip_group_ok(hidden: int, group_size: int) -> bool:
    """The group sizes ``rmsnorm_quant``'s HIP kernel takes for rows of ``hidden``."""
    if hidden > HIP_MAX_HIDDEN:
        return False
    tds = 8 if hidden <= 2048 else 16 if hidden <= 4096 else 24 if hidden <= 6144 else 32
    lanes = group_size // tds
    return group_size % tds == 0 and group_size <= 64 * tds and lanes & (lanes - 1) == 0


# -- availability ------------------------------------------------------------------------------


def _fp8_problem(api: AiterApi) -> str | None:
    if api.fp8 is None:
        return f"aiter.dtypes.fp8 of AITER {api.version} is not an fp8 dtype (unknown GPU arch)"
    return None


def problem_fp8_quant_static(api: AiterApi) -> str | None:
    return _fp8_problem(api) or api.problem("static_per_tensor_quant", MODULE_QUANT)


def problem_fp8_quant_group(api: AiterApi) -> str | None:
    return _fp8_problem(api) or api.problem("per_group_quant_hip", MODULE_QUANT)


def problem_rms_norm_fp8_quant_group(api: AiterApi) -> str | None:
    entry = "rmsnorm2d_fwd_with_dynamicquant"
    found = _fp8_problem(api) or api.problem(entry, MODULE_HIP_NORM)
    if found is None and not api.group_dynamicquant:
        return f"aiter.{entry} of AITER {api.version} has no group_size"
    return found


def available_fp8_quant_static() -> tuple[bool, str]:
    return available_if(problem_fp8_quant_static)


def available_fp8_quant_group() -> tuple[bool, str]:
    return available_if(problem_fp8_quant_group)


def available_rms_norm_fp8_quant_group() -> tuple[bool, str]:
    return available_if(problem_rms_norm_fp8_quant_group)


# -- fp8_quant_static --------------------------------------------------------------------------


def call_fp8_quant_static(
    api: AiterApi, x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``static_per_tensor_quant(out2d, x2d, scale)`` into new codes of x's shape."""
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    if x.numel() == 0:
        return out
    api.fn("static_per_tensor_quant")(out.view(-1, x.shape[-1]), two_d(x), scale.reshape(1))
    return out


def fp8_quant_static(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> torch.Tensor:
    """``clamp(x / scale)`` in AITER's fp8 dtype; see :func:`call_fp8_quant_static`."""
    return call_fp8_quant_static(AITER.require(), x, scale, dtype)


def fp8_quant_static_supports(
    x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = DEFAULT_FP8
) -> bool:
    return fp8_quant_static_supported(loaded_api(), x, dtype)


# -- fp8_quant_group ---------------------------------------------------------------------------


def call_fp8_quant_group(
    api: AiterApi,
    x: torch.Tensor,
    group_size: int,
    column_major_scales: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_group_quant_hip(x, quant_dtype=dtype, group_size=, transpose_scale=)`` on a
    contiguous x; its scales are re-viewed into the op's layout (same memory)."""
    if x.numel() == 0:
        return (
            torch.empty(x.shape, dtype=dtype, device=x.device),
            _group_scales(x, group_size, column_major_scales),
        )
    q, scale = api.fn("per_group_quant_hip")(
        x.contiguous(),
        quant_dtype=dtype,
        group_size=group_size,
        transpose_scale=column_major_scales,
    )
    return q, _as_op_layout(scale, x, group_size, column_major_scales)


def fp8_quant_group(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token, per-group fp8 quantization by AITER; see :func:`call_fp8_quant_group`."""
    return call_fp8_quant_group(AITER.require(), x, group_size, column_major_scales, dtype)


def fp8_quant_group_supports(
    x: torch.Tensor,
    group_size: int = 128,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> bool:
    return fp8_quant_group_supported(loaded_api(), x, group_size, scale_ue8m0, dtype)


# -- rms_norm_fp8_quant_group ------------------------------------------------------------------


def call_rms_norm_fp8_quant_group(
    api: AiterApi,
    x: torch.Tensor,
    weight: torch.Tensor,
    epsilon: float,
    group_size: int,
    column_major_scales: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rmsnorm2d_fwd_with_dynamicquant(out2d, x2d, yscale, weight, epsilon, group_size=,
    shuffle_scale=)`` into new codes and scales (AITER writes the scales' raw memory: rows of
    groups, or with ``shuffle_scale`` groups of rows, the op's column-major layout)."""
    q = torch.empty(x.shape, dtype=dtype, device=x.device)
    if x.numel() == 0:
        return q, _group_scales(x, group_size, column_major_scales)
    x2d = two_d(x)
    rows, groups = x2d.shape[0], x.shape[-1] // group_size
    flat = torch.empty(rows * groups, dtype=torch.float32, device=x.device)
    api.fn("rmsnorm2d_fwd_with_dynamicquant")(
        q.view(x2d.shape),
        x2d,
        flat.view(rows, groups),
        weight,
        epsilon,
        group_size=group_size,
        shuffle_scale=column_major_scales,
    )
    return q, _as_op_layout(flat, x, group_size, column_major_scales)


def rms_norm_fp8_quant_group(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm then group quantization in one AITER kernel; see
    :func:`call_rms_norm_fp8_quant_group`."""
    assert weight is not None
    return call_rms_norm_fp8_quant_group(
        AITER.require(), x, weight, epsilon, group_size, column_major_scales, dtype
    )


def rms_norm_fp8_quant_group_supported(
    api: AiterApi | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    group_size: int,
    weight_bias: float,
    scale_ue8m0: bool,
    dtype: torch.dtype,
) -> bool:
    """fp16/bf16 x with a (H,) weight of its dtype, AITER's fp8 dtype, no ``weight_bias`` and
    no ``scale_ue8m0``, and a ``group_size`` the HIP kernel takes for this H
    (:func:`hip_group_ok`)."""
    return bool(
        fp8_quant_static_supported(api, x, dtype)
        and api.group_dynamicquant
        and api.runs(MODULE_HIP_NORM)
        and kit.is_weight_for(x, weight)
        and weight_bias == 0.0
        and not scale_ue8m0
        and hip_group_ok(x.shape[-1], group_size)
    )


def rms_norm_fp8_quant_group_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    group_size: int = 128,
    weight_bias: float = 0.0,
    column_major_scales: bool = False,
    scale_ue8m0: bool = False,
    dtype: torch.dtype = DEFAULT_FP8,
) -> bool:
    return rms_norm_fp8_quant_group_supported(
        loaded_api(), x, weight, group_size, weight_bias, scale_ue8m0, dtype
    )
