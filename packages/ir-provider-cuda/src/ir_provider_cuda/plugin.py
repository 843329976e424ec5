"""The ir-core plugin of this wheel: registers the ``triton``, ``flashinfer``, ``torch_fused``,
``quack`` and ``liger`` providers and their default order per platform.

Found through the entry point ``cuda = "ir_provider_cuda.plugin"`` in the group
``ir_core.plugins``. Importing this module imports no kernel library (Triton, FlashInfer,
quack, liger): each provider's ``available`` check does that, once, when ir-core first
considers the provider.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import (
    flashinfer_activation,
    flashinfer_allreduce,
    flashinfer_norm,
    flashinfer_rotary,
    liger_norm,
    quack_norm,
    torch_fused_norm,
    triton_activation,
    triton_gated_norm,
    triton_norm,
    triton_quant,
    triton_rotary,
)

TRITON = triton_norm.PROVIDER
FLASHINFER = flashinfer_norm.PROVIDER
QUACK = quack_norm.PROVIDER
LIGER = liger_norm.PROVIDER
TORCH_FUSED = torch_fused_norm.PROVIDER

# Default provider order on NVIDIA GPUs. PROVISIONAL AND UNMEASURED: no GPU was available when
# this was written, so it is reasoned from published numbers and the kernels' memory traffic;
# run `nox -s gpu` (benchmarks/norms.py) on the target GPU and reorder from its table.
# - rms_norm: quack first (its published RMSNorm reaches ~90 % of H100 copy bandwidth; sm_90+
#   only, unavailable elsewhere), then FlashInfer (16-byte vectors, several rows per block,
#   cluster reductions for wide rows; what SGLang and vLLM's FlashInfer paths ship), then our
#   Triton kernel (the same bytes, but Triton's heavier launch at decode sizes outside CUDA
#   graphs), liger (Triton too, one row per program), torch's generic fused kernel last.
# - fused_add_rms_norm: quack and Triton are single-pass and out of place; FlashInfer's kernel
#   is in place, so keeping the op functional costs a copy of x and residual first (8
#   row-passes of memory instead of 4).
# - dual_rms_norm: only Triton does both norms in one launch.
# - silu_and_mul, gelu_and_mul, rotary_embedding: FlashInfer first (a vendor kernel tuned per
#   architecture), then our Triton kernels; gated_rms_norm: Triton only.
# - fp8 quant: Triton's own kernels; FlashInfer for the static norm + quant pair (out of place
#   for rms_norm, a residual copy for the fused add, hence after Triton there).
# Capabilities verified in the kernels' code (docs/provider-api.md): the Triton norms reduce each
# row inside one program, in a block size and warp count chosen from the hidden size and dtype
# only (triton_kernels.launch_config); the row count changes only how many rows a program
# walks, never a row's reduction, and no atomics are used. So a row's bits depend on the row
# alone: batch-invariant and deterministic. Nothing else is tagged: the other kernels were not
# checked (the fp8 per-tensor quant uses an atomic max, order-free but not verified per row).
_TRITON_NORM_CAPABILITIES = frozenset({"batch_invariant", "deterministic"})
TRITON_CAPABILITIES = {
    op: _TRITON_NORM_CAPABILITIES for op in ("rms_norm", "fused_add_rms_norm", "dual_rms_norm")
}

_TRITON_LAYER_OPS = ("silu_and_mul", "gelu_and_mul", "rotary_embedding", "gated_rms_norm")
_CUDA_PRIORITY = {
    "rms_norm": [QUACK, FLASHINFER, TRITON, LIGER, TORCH_FUSED],
    "fused_add_rms_norm": [QUACK, TRITON, FLASHINFER],
    "dual_rms_norm": [TRITON],
    "silu_and_mul": [FLASHINFER, TRITON],
    "gelu_and_mul": [FLASHINFER, TRITON],
    "rotary_embedding": [FLASHINFER, TRITON],
    "gated_rms_norm": [TRITON],
    **{op: [TRITON] for op in triton_quant.IMPLS},
    "rms_norm_fp8_quant_static": [FLASHINFER, TRITON],
    "fused_add_rms_norm_fp8_quant_static": [TRITON, FLASHINFER],
}

# AMD GPUs (torch device type "cuda", platform "rocm"): FlashInfer and quack are NVIDIA-only,
# liger is untested there and the fused torch kernel is not preferred over Triton's, so only
# Triton is listed.
_ROCM_PRIORITY = {
    "rms_norm": [TRITON],
    "fused_add_rms_norm": [TRITON],
    "dual_rms_norm": [TRITON],
    **{op: [TRITON] for op in _TRITON_LAYER_OPS},
    **{op: [TRITON] for op in triton_quant.IMPLS},
}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "cuda",
        "Triton, FlashInfer, quack, liger and torch-fused kernels (norms, gated activations, "
        "RoPE, gated RMS norm, fp8 quant) for NVIDIA and AMD GPUs",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    kit.register_impls(
        registry,
        TRITON,
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
        capabilities=TRITON_CAPABILITIES,
    )
    gpu_only: list[tuple[Any, tuple[str, ...]]] = [
        (
            flashinfer_norm,
            (
                "rms_norm",
                "fused_add_rms_norm",
                "rms_norm_fp8_quant_static",
                "fused_add_rms_norm_fp8_quant_static",
            ),
        ),
        (flashinfer_activation, ("silu_and_mul", "gelu_and_mul")),
        (flashinfer_rotary, ("rotary_embedding",)),
        (torch_fused_norm, ("rms_norm",)),
        (quack_norm, ("rms_norm", "fused_add_rms_norm")),
        (liger_norm, ("rms_norm",)),
    ]
    declared = {op.name for op in registry.ops()}
    for module, ops in gpu_only:
        kit.register_impls(
            registry,
            module.PROVIDER,
            kit.impls_of(module, *(op for op in ops if op in declared)),
            device_types=("cuda",),
            available=module.available,
        )
    flashinfer_allreduce.register_impls(registry)  # when ir-fusions declared the ops


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"cuda": _CUDA_PRIORITY, "rocm": _ROCM_PRIORITY})
