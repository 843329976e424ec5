"""The fusion passes ir-fusions contributes, in the order they run.

Each is a :class:`~ir_fusions.FusionPass`: ``pass_(gm)`` rewrites the graph in place and returns
how many matches it rewrote. Their module docstrings state when each rewrite is exact.
"""

from __future__ import annotations

from ..rewrite import FusionPass
from .all_reduce_rms_norm import all_reduce_rms_norm_pass
from .dual_rms_norm import dual_rms_norm_pass
from .fused_add_rms_norm import fused_add_rms_norm_pass
from .norm_fp8_quant import fused_add_rms_norm_fp8_quant_pass, rms_norm_fp8_quant_pass
from .silu_and_mul_fp8_quant import silu_and_mul_fp8_quant_pass

#: Every pass, sorted by ``order``: fused add first (the all-reduce pass matches its output),
#: the fp8 quant fusions last (they match the norms the others leave).
PASSES: tuple[FusionPass, ...] = tuple(
    sorted(
        (
            fused_add_rms_norm_pass,
            dual_rms_norm_pass,
            all_reduce_rms_norm_pass,
            rms_norm_fp8_quant_pass,
            fused_add_rms_norm_fp8_quant_pass,
            silu_and_mul_fp8_quant_pass,
        ),
        key=lambda p: (p.order, p.name),
    )
)

__all__ = [
    "PASSES",
    "all_reduce_rms_norm_pass",
    "dual_rms_norm_pass",
    "fused_add_rms_norm_fp8_quant_pass",
    "fused_add_rms_norm_pass",
    "rms_norm_fp8_quant_pass",
    "silu_and_mul_fp8_quant_pass",
]
