"""The ir-core plugin of this wheel: registers the ``aiter`` provider and its ROCm priority.

Found through the entry point ``rocm_aiter = "ir_provider_rocm_aiter.plugin"`` in the group
``ir_core.plugins``. Importing this module does not import AITER (whose import needs ROCm and
may start JIT builds); :mod:`.aiter_norm`'s availability checks do, once, on first use.
"""

from __future__ import annotations

from typing import Any

import ir_core

from . import aiter_norm

# On AMD GPUs AITER is the vendor's own tuned library (CK / HIP kernels), so it goes first for
# every op it has; where its supports_args declines (fp32, Gemma on old releases or wide rows,
# variance_size), dispatch moves on to the next provider and finally native.
_ROCM_PRIORITY = {
    "rms_norm": [aiter_norm.PROVIDER],
    "fused_add_rms_norm": [aiter_norm.PROVIDER],
    "dual_rms_norm": [aiter_norm.PROVIDER],
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return {
        "name": "rocm_aiter",
        "api_version": ir_core.API_VERSION,
        "description": "AMD AITER RMS norm kernels (rms_norm, fused add, dual q/k) for ROCm GPUs",
    }


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # torch calls ROCm devices "cuda", so that is the device type AITER's kernels run on.
    for op, fn, supports, available in (
        (
            "rms_norm",
            aiter_norm.rms_norm,
            aiter_norm.rms_norm_supports,
            aiter_norm.available_rms_norm,
        ),
        (
            "fused_add_rms_norm",
            aiter_norm.fused_add_rms_norm,
            aiter_norm.fused_add_rms_norm_supports,
            aiter_norm.available_fused_add_rms_norm,
        ),
        (
            "dual_rms_norm",
            aiter_norm.dual_rms_norm,
            aiter_norm.dual_rms_norm_supports,
            aiter_norm.available_dual_rms_norm,
        ),
    ):
        registry.register_impl(
            op,
            aiter_norm.PROVIDER,
            fn,
            device_types=("cuda",),
            supports_args=supports,
            available=available,
        )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    if platform == "rocm":
        return {op: list(order) for op, order in _ROCM_PRIORITY.items()}
    return None
