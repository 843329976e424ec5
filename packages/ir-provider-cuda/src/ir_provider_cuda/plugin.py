"""The ir-core plugin of this wheel: registers the ``triton``, ``flashinfer`` and
``torch_fused`` providers and their default order per platform.

Found through the entry point ``cuda = "ir_provider_cuda.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither Triton nor FlashInfer: each provider's
``available`` check does that, once, when ir-core first considers the provider.
"""

from __future__ import annotations

from typing import Any

import ir_core

from . import flashinfer_allreduce, flashinfer_norm, torch_fused_norm, triton_norm, triton_quant

# Default provider order on NVIDIA GPUs. PROVISIONAL: no GPU was available when this was
# written, so it is reasoned from published numbers and the kernels' memory traffic, not
# measured; run `python benchmarks/norms.py` on the target GPU and reorder from its table.
# - rms_norm: FlashInfer first. Its CUDA/CuTe-DSL kernels use 16-byte vector loads,
#   several rows per block and (sm_90+) cluster reductions for wide rows, and are what SGLang
#   and vLLM's FlashInfer paths ship; their published numbers sit close to the copy bandwidth.
#   Our Triton kernel reads and writes the same bytes once, but Triton's Python launcher costs
#   more host time per call, which shows at decode sizes outside CUDA graphs. torch's fused
#   kernel is generic and comes last.
# - fused_add_rms_norm: Triton first. FlashInfer's kernel is in place, so keeping the op
#   functional costs a copy of x and residual first: 8 row-passes of memory instead of 4.
# - dual_rms_norm: only Triton does both norms in one launch.
_CUDA_PRIORITY = {
    "rms_norm": [flashinfer_norm.PROVIDER, triton_norm.PROVIDER, torch_fused_norm.PROVIDER],
    "fused_add_rms_norm": [triton_norm.PROVIDER, flashinfer_norm.PROVIDER],
    "dual_rms_norm": [triton_norm.PROVIDER],
    # fp8 quant and fused norm/activation + quant: Triton's own kernels (the only ones so far)
    **{op: [triton_quant.PROVIDER] for op in triton_quant.IMPLS},
}

# AMD GPUs (torch device type "cuda", platform "rocm"): FlashInfer is NVIDIA-only, and the
# fused torch kernel is not preferred over Triton's, so only Triton is listed.
_ROCM_PRIORITY = {
    "rms_norm": [triton_norm.PROVIDER],
    "fused_add_rms_norm": [triton_norm.PROVIDER],
    "dual_rms_norm": [triton_norm.PROVIDER],
    **{op: [triton_quant.PROVIDER] for op in triton_quant.IMPLS},
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return {
        "name": "cuda",
        "api_version": ir_core.API_VERSION,
        "description": "Triton, FlashInfer and torch-fused RMS norms for NVIDIA and AMD GPUs",
    }


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # Read TRITON_INTERPRET now: with it, the Triton kernels also run on CPU tensors.
    triton_devices = triton_norm.device_types()
    for op, fn, supports in (
        ("rms_norm", triton_norm.rms_norm, triton_norm.rms_norm_supports),
        (
            "fused_add_rms_norm",
            triton_norm.fused_add_rms_norm,
            triton_norm.fused_add_rms_norm_supports,
        ),
        ("dual_rms_norm", triton_norm.dual_rms_norm, triton_norm.dual_rms_norm_supports),
        *((op, fn, supports) for op, (fn, supports) in triton_quant.IMPLS.items()),
    ):
        registry.register_impl(
            op,
            triton_norm.PROVIDER,
            fn,
            device_types=triton_devices,
            supports_args=supports,
            available=triton_norm.available,
        )

    for op, fn, supports in (
        ("rms_norm", flashinfer_norm.rms_norm, flashinfer_norm.rms_norm_supports),
        (
            "fused_add_rms_norm",
            flashinfer_norm.fused_add_rms_norm,
            flashinfer_norm.fused_add_rms_norm_supports,
        ),
    ):
        registry.register_impl(
            op,
            flashinfer_norm.PROVIDER,
            fn,
            device_types=("cuda",),
            supports_args=supports,
            available=flashinfer_norm.available,
        )

    registry.register_impl(
        "rms_norm",
        torch_fused_norm.PROVIDER,
        torch_fused_norm.rms_norm,
        device_types=("cuda",),
        supports_args=torch_fused_norm.rms_norm_supports,
        available=torch_fused_norm.available,
    )

    flashinfer_allreduce.register_impls(registry)  # when ir-fusions declared the ops


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    if platform == "cuda":
        return {op: list(order) for op, order in _CUDA_PRIORITY.items()}
    if platform == "rocm":
        return {op: list(order) for op, order in _ROCM_PRIORITY.items()}
    return None
