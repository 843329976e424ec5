"""IR ops inside ``torch.compile``: fusion passes, then lowering to the selected kernels.

This package stays light to import: the Inductor and Dynamo parts load only when a compile
needs them.
"""

from __future__ import annotations

from .passes import ENV_FUSIONS, FusionPass, FusionPassError, FusionPassRegistry, fusion_passes

__all__ = [
    "ENV_FUSIONS",
    "FusionPass",
    "FusionPassError",
    "FusionPassRegistry",
    "fusion_passes",
]
