"""The ir-core plugin of this wheel: registers the ``triton``, ``flashinfer`` and
``torch_fused`` providers and their default order per platform.

Found through the entry point ``cuda = "ir_provider_cuda.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither Triton nor FlashInfer: each provider's
``available`` check does that, once, when ir-core first considers the provider.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import (
    flashinfer_allreduce,
    flashinfer_norm,
    torch_fused_norm,
    triton_activation,
    triton_gated_norm,
    triton_norm,
    triton_quant,
    triton_rotary,
)

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
# - silu_and_mul, gelu_and_mul, rotary_embedding, gated_rms_norm, the fp8 quant ops and the
#   fused norm/activation + quant ops: Triton (the only GPU impls registered here so far).
_TRITON_OPS = (
    "silu_and_mul",
    "gelu_and_mul",
    "rotary_embedding",
    "gated_rms_norm",
    *triton_quant.IMPLS,
)
_CUDA_PRIORITY = {
    "rms_norm": [flashinfer_norm.PROVIDER, triton_norm.PROVIDER, torch_fused_norm.PROVIDER],
    "fused_add_rms_norm": [triton_norm.PROVIDER, flashinfer_norm.PROVIDER],
    "dual_rms_norm": [triton_norm.PROVIDER],
    **{op: [triton_norm.PROVIDER] for op in _TRITON_OPS},
}

# AMD GPUs (torch device type "cuda", platform "rocm"): FlashInfer is NVIDIA-only, and the
# fused torch kernel is not preferred over Triton's, so only Triton is listed.
_ROCM_PRIORITY = {
    "rms_norm": [triton_norm.PROVIDER],
    "fused_add_rms_norm": [triton_norm.PROVIDER],
    "dual_rms_norm": [triton_norm.PROVIDER],
    **{op: [triton_norm.PROVIDER] for op in _TRITON_OPS},
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "cuda",
        "Triton, FlashInfer and torch-fused RMS norms; Triton gated activations, RoPE, gated "
        "RMS norm and fp8 quant (alone and fused with norms and SwiGLU); for NVIDIA and AMD GPUs",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    kit.register_impls(
        registry,
        triton_norm.PROVIDER,
        {
            **kit.impls_of(triton_norm, "rms_norm", "fused_add_rms_norm", "dual_rms_norm"),
            **kit.impls_of(triton_activation, "silu_and_mul", "gelu_and_mul"),
            **kit.impls_of(triton_rotary, "rotary_embedding"),
            **kit.impls_of(triton_gated_norm, "gated_rms_norm"),
            **triton_quant.IMPLS,
        },
        # read TRITON_INTERPRET now: with it, the Triton kernels also run on CPU tensors
        device_types=triton_norm.device_types(),
        available=triton_norm.available,
    )
    kit.register_impls(
        registry,
        flashinfer_norm.PROVIDER,
        kit.impls_of(flashinfer_norm, "rms_norm", "fused_add_rms_norm"),
        device_types=("cuda",),
        available=flashinfer_norm.available,
    )
    kit.register_impls(
        registry,
        torch_fused_norm.PROVIDER,
        kit.impls_of(torch_fused_norm, "rms_norm"),
        device_types=("cuda",),
        available=torch_fused_norm.available,
    )
    flashinfer_allreduce.register_impls(registry)  # when ir-fusions declared the ops


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"cuda": _CUDA_PRIORITY, "rocm": _ROCM_PRIORITY})
