"""The ir-core plugin of this wheel: registers the ``aiter`` provider and its ROCm priority.

Found through the entry point ``rocm_aiter = "ir_provider_rocm_aiter.plugin"`` in the group
``ir_core.plugins``. Importing this module does not import AITER (whose import needs ROCm and
may start JIT builds); :mod:`.aiter_norm`'s availability checks do, once, on first use.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

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
    return kit.plugin_info(
        "rocm_aiter",
        "AMD AITER RMS norm kernels (rms_norm, fused add, dual q/k) for ROCm GPUs",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # each op has its own availability check (available_<op>): releases lack some entry points
    kit.register_impls(
        registry,
        aiter_norm.PROVIDER,
        kit.impls_of(aiter_norm, "rms_norm", "fused_add_rms_norm", "dual_rms_norm"),
        # torch calls ROCm devices "cuda", so that is the device type AITER's kernels run on
        device_types=("cuda",),
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"rocm": _ROCM_PRIORITY})
