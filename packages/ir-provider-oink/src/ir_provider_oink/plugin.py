"""The ir-core plugin of this wheel: registers the ``oink`` provider and its CUDA priority.

Found through the entry point ``oink = "ir_provider_oink.plugin"`` in the group
``ir_core.plugins``. Importing this module imports neither kernelagent-oink nor CuTeDSL.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import oink_norm

# Oink's rms_norm is a tuned CuTeDSL kernel for Blackwell and is functional as it is, so it goes
# first on CUDA (on older GPUs it reports itself unavailable and dispatch moves on). Its fused
# add is in place: keeping our op functional costs a copy of x and residual (8 row-passes of
# memory instead of 4), so an out-of-place kernel from another provider should win; oink stays
# opt-in there (IR_CORE_OP_PRIORITY="fused_add_rms_norm=oink").
_CUDA_PRIORITY = {"rms_norm": [oink_norm.PROVIDER]}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        "oink", "KernelAgent-Oink CuTeDSL RMS norm kernels for NVIDIA Blackwell (SM100+)"
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    # each op has its own availability check (available_<op>): Oink registers its ops one by one
    kit.register_impls(
        registry,
        oink_norm.PROVIDER,
        kit.impls_of(oink_norm, "rms_norm", "fused_add_rms_norm"),
        device_types=("cuda",),
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, {"cuda": _CUDA_PRIORITY})
