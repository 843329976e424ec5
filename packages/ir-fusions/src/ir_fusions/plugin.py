"""The ir-core plugin of this wheel: declares the fused all-reduce norm ops and contributes the
fusion passes.

Found through the entry point ``fusions = "ir_fusions.plugin"`` in the group ``ir_core.plugins``.
"""

from __future__ import annotations

from typing import Any

import ir_core

from . import collective_norms
from .passes import PASSES


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return {
        "name": "fusions",
        "api_version": ir_core.API_VERSION,
        "description": "Fusion passes (add + RMSNorm, MLA dual RMSNorm, all-reduce + RMSNorm, "
        "norm / SwiGLU + fp8 quant) and the fused all-reduce norm ops",
    }


@ir_core.hookimpl
def register_ops(registry: ir_core.Registry) -> None:
    collective_norms.register_ops(registry)


@ir_core.hookimpl
def register_fusion_passes(registry: Any) -> None:
    """Register every pass under its name and order (``registry.register(name, fn, order=)``).

    What is registered is the pass without its own lint and recompile (``for_pipeline``): the
    registry lints after each pass, and Inductor recompiles once after lowering.
    """
    for fusion in PASSES:
        registry.register(fusion.name, fusion.for_pipeline(), order=fusion.order)
