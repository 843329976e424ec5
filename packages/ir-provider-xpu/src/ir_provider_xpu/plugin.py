"""The ir-core plugin of this wheel: registers ``ipex`` and ``xpu_kernels`` and their XPU order.

Found through the entry point ``xpu = "ir_provider_xpu.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither IPEX nor vllm-xpu-kernels; their
availability checks do, once, on first use (IPEX only after its torch version was checked).
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

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
    return kit.plugin_info(
        "xpu", "Intel RMS norm kernels: IPEX (XPU and CPU) and vllm-xpu-kernels (XPU)"
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    kit.register_impls(
        registry,
        ipex_norm.PROVIDER,
        kit.impls_of(ipex_norm, "rms_norm", "fused_add_rms_norm"),
        device_types=("xpu", "cpu"),
        available=ipex_norm.available,
    )
    kit.register_impls(
        registry,
        xpu_kernels_norm.PROVIDER,
        kit.impls_of(xpu_kernels_norm, "rms_norm", "fused_add_rms_norm"),
        device_types=("xpu",),
        available=xpu_kernels_norm.available,
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"xpu": _XPU_PRIORITY})
