"""ir-fusions: graph rewrites of ir-core ops into fused ops, and the fused ops they need.

Passes run on the post-grad ATen FX graph that still holds ``torch.ops.ir_core.*`` nodes, before
ir-core lowers them; ir-core collects them through this plugin's ``register_fusion_passes`` hook
and runs them in order (``IR_CORE_FUSIONS="-dual_rms_norm"`` disables one by name). Each pass
can also be called directly: ``count = fused_add_rms_norm_pass(gm)``.

To write a pass: a :class:`Pattern` (``Call``/``Capture``/``Literal``, matched structurally on
the graph, constants captured rather than baked in), a check, and a replacement returning a
:class:`Replacement`; see ``ir_fusions.passes`` for examples.
"""

from __future__ import annotations

from .collective_norms import ALL_REDUCE_FUSED_ADD_RMS_NORM, ALL_REDUCE_RMS_NORM
from .passes import (
    PASSES,
    all_reduce_rms_norm_pass,
    dual_rms_norm_pass,
    fused_add_rms_norm_fp8_quant_pass,
    fused_add_rms_norm_pass,
    rms_norm_fp8_quant_pass,
    silu_and_mul_fp8_quant_pass,
)
from .pattern import (
    Call,
    Capture,
    Literal,
    Match,
    Pattern,
    arguments,
    is_float_tensor,
    same_shape,
    value_of,
)
from .rewrite import FusionPass, NodeOrder, Replacement, Rule, apply_replacement

__version__ = "0.1.0"

__all__ = [
    "ALL_REDUCE_FUSED_ADD_RMS_NORM",
    "ALL_REDUCE_RMS_NORM",
    "PASSES",
    "Call",
    "Capture",
    "FusionPass",
    "Literal",
    "Match",
    "NodeOrder",
    "Pattern",
    "Replacement",
    "Rule",
    "all_reduce_rms_norm_pass",
    "apply_replacement",
    "arguments",
    "dual_rms_norm_pass",
    "fused_add_rms_norm_fp8_quant_pass",
    "fused_add_rms_norm_pass",
    "is_float_tensor",
    "rms_norm_fp8_quant_pass",
    "same_shape",
    "silu_and_mul_fp8_quant_pass",
    "value_of",
]
