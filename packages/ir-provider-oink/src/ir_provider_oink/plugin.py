"""The ir-core plugin of this wheel: registers the ``oink`` provider and its CUDA priority.

Found through the entry point ``oink = "ir_provider_oink.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither kernelagent-oink nor CuTeDSL.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import oink_norm

# Oink's kernels are tuned CuTeDSL kernels for Blackwell, and both entry points used are out of
# place (the fused add through fused_add_rmsnorm_forward, no copies), so oink goes first on CUDA
# for both (on older GPUs it reports itself unavailable and dispatch moves on). Not measured
# here: no Blackwell GPU was available.
_CUDA_PRIORITY = {op: [oink_norm.PROVIDER] for op in ("rms_norm", "fused_add_rms_norm")}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "oink", "KernelAgent-Oink CuTeDSL RMS norm kernels for NVIDIA Blackwell (SM100+)"
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # each op has its own availability check (available_<op>): rms_norm needs the torch op
    # Oink registers, the fused add its Python entry point
    kit.register_impls(
        registry,
        oink_norm.PROVIDER,
        kit.impls_of(oink_norm, "rms_norm", "fused_add_rms_norm"),
        device_types=("cuda",),
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"cuda": _CUDA_PRIORITY})
