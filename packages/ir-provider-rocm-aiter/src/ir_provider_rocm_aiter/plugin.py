"""The ir-core plugin of this wheel: registers the ``aiter`` provider and its ROCm priority.

Found through the entry point ``rocm_aiter = "ir_provider_rocm_aiter.plugin"`` in the group
``ir_core.plugins``. Importing this module does not import AITER (whose import needs ROCm and
may start JIT builds); the availability checks of :mod:`.aiter_api` do, once, on first use.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import aiter_activations, aiter_norm, aiter_quant, aiter_rotary
from .aiter_api import PROVIDER

#: Each module's ops; every op has its own availability check (``available_<op>``): releases
#: and CK-free builds lack some entry points or the modules behind them.
IMPLS = {
    **kit.impls_of(aiter_norm, "rms_norm", "fused_add_rms_norm", "dual_rms_norm"),
    **kit.impls_of(aiter_activations, "silu_and_mul", "gelu_and_mul"),
    **kit.impls_of(aiter_rotary, "rotary_embedding"),
    **kit.impls_of(aiter_quant, "fp8_quant_static", "fp8_quant_group", "rms_norm_fp8_quant_group"),
}

# On AMD GPUs AITER is the vendor's own tuned library, so it goes first for every op it has;
# where its supports_args declines (fp32 norms, Gemma on old releases, odd gated widths, a
# rot_dim its RoPE cannot take, an fp8 dtype not of this GPU, ...), dispatch moves on to the
# next provider and finally native. Not measured here (no AMD GPU was available).
_ROCM_PRIORITY = {op: [PROVIDER] for op in IMPLS}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "rocm_aiter",
        "AMD AITER kernels for ROCm GPUs: RMS norms (plain, fused add, dual q/k), gated "
        "activations, rotary embedding, fp8 static/group quant and RMSNorm + group quant",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # torch calls ROCm devices "cuda", so that is the device type AITER's kernels run on
    kit.register_impls(registry, PROVIDER, IMPLS, device_types=("cuda",))


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"rocm": _ROCM_PRIORITY})
