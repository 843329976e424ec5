"""The ir-core plugin of this wheel: registers ``ipex`` and ``xpu_kernels`` and their XPU order.

Found through the entry point ``xpu = "ir_provider_xpu.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither IPEX nor vllm-xpu-kernels; their
availability checks do, once, on first use (each only after its torch version was checked).
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import ipex_norm, ipex_ops, xpu_kernels_norm, xpu_kernels_ops, xpu_kernels_quant

#: IPEX's norms run on XPU (XPU builds) and CPU; its activations and rotary on CPU only.
IPEX_NORMS = kit.impls_of(ipex_norm, "rms_norm", "fused_add_rms_norm")
IPEX_CPU_OPS = kit.impls_of(ipex_ops, "silu_and_mul", "gelu_and_mul", "rotary_embedding")
XPU_KERNELS_IMPLS = {
    **kit.impls_of(xpu_kernels_norm, "rms_norm", "fused_add_rms_norm"),
    **kit.impls_of(xpu_kernels_ops, "silu_and_mul", "gelu_and_mul", "rotary_embedding"),
    **kit.impls_of(
        xpu_kernels_quant,
        "fp8_quant_static",
        "fp8_quant_dynamic",
        "rms_norm_fp8_quant_static",
        "fused_add_rms_norm_fp8_quant_static",
        "rms_norm_fp8_quant_dynamic",
        "fused_add_rms_norm_fp8_quant_dynamic",
        "silu_and_mul_fp8_quant_static",
    ),
}

# On Intel GPUs vllm-xpu-kernels comes first: it is maintained alongside vLLM, while IPEX is
# archived upstream. IPEX follows for the norms it serves on XPU (the fp16 fused add that
# xpu_kernels declines); its activations and rotary embedding are registered for CPU only. On
# CPU no default is given: IPEX on CPU is opt-in (IR_CORE_OP_PRIORITY="rms_norm=ipex" or
# ir_core.set_priority), since nothing here measured it against native on the user's CPU.
# Not measured on an Intel GPU either (none was available).
_XPU_PRIORITY = {
    op: [xpu_kernels_norm.PROVIDER, *([ipex_norm.PROVIDER] if op in IPEX_NORMS else [])]
    for op in XPU_KERNELS_IMPLS
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "xpu",
        "Intel kernels: IPEX (XPU and CPU: RMS norms; CPU: gated activations, rotary) and "
        "vllm-xpu-kernels (XPU: RMS norms, gated activations, rotary, fp8 quant)",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # each op has its own availability check: a release may lack a function or kernel
    kit.register_impls(registry, ipex_norm.PROVIDER, IPEX_NORMS, device_types=("xpu", "cpu"))
    kit.register_impls(registry, ipex_norm.PROVIDER, IPEX_CPU_OPS, device_types=("cpu",))
    kit.register_impls(
        registry, xpu_kernels_norm.PROVIDER, XPU_KERNELS_IMPLS, device_types=("xpu",)
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"xpu": _XPU_PRIORITY})
