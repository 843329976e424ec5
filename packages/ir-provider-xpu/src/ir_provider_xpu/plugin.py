"""The ir-core plugin of this wheel: registers ``ipex`` and ``xpu_kernels`` and their XPU order.

Found through the entry point ``xpu = "ir_provider_xpu.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither IPEX nor vllm-xpu-kernels; their
availability checks do, once, on first use (IPEX only after its torch version was checked).
"""

from __future__ import annotations

from typing import Any

import ir_core

from . import ipex_norm, xpu_kernels_norm

# On Intel GPUs vllm-xpu-kernels comes first: it is maintained alongside vLLM, while IPEX is
# archived upstream. IPEX follows for what xpu_kernels declines (fp16 fused add). On CPU no
# default is given: IPEX on CPU is opt-in (IR_CORE_OP_PRIORITY="rms_norm=ipex" or
# ir_core.set_priority), since nothing here measured it against native on the user's CPU.
_XPU_PRIORITY = {
    "rms_norm": [xpu_kernels_norm.PROVIDER, ipex_norm.PROVIDER],
    "fused_add_rms_norm": [xpu_kernels_norm.PROVIDER, ipex_norm.PROVIDER],
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return {
        "name": "xpu",
        "api_version": ir_core.API_VERSION,
        "description": "Intel RMS norm kernels: IPEX (XPU and CPU) and vllm-xpu-kernels (XPU)",
    }


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    for op, fn, supports in (
        ("rms_norm", ipex_norm.rms_norm, ipex_norm.rms_norm_supports),
        ("fused_add_rms_norm", ipex_norm.fused_add_rms_norm, ipex_norm.fused_add_rms_norm_supports),
    ):
        registry.register_impl(
            op,
            ipex_norm.PROVIDER,
            fn,
            device_types=("xpu", "cpu"),
            supports_args=supports,
            available=ipex_norm.available,
        )
    for op, fn, supports in (
        ("rms_norm", xpu_kernels_norm.rms_norm, xpu_kernels_norm.rms_norm_supports),
        (
            "fused_add_rms_norm",
            xpu_kernels_norm.fused_add_rms_norm,
            xpu_kernels_norm.fused_add_rms_norm_supports,
        ),
    ):
        registry.register_impl(
            op,
            xpu_kernels_norm.PROVIDER,
            fn,
            device_types=("xpu",),
            supports_args=supports,
            available=xpu_kernels_norm.available,
        )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    if platform == "xpu":
        return {op: list(order) for op, order in _XPU_PRIORITY.items()}
    return None
