"""The ops ir-core itself declares; plugins add more through ``register_ops``."""

from __future__ import annotations

from ..registry import Registry
from . import norms, quant

#: Version of this catalogue's op signatures and semantics.
OP_API = 1


def register_builtin_ops(registry: Registry) -> None:
    registry.register_op(
        norms.rms_norm,
        validate=norms.validate_rms_norm,
        sample_inputs=norms.rms_norm_samples,
        example_inputs=norms.rms_norm_example,
    )
    registry.register_op(
        norms.fused_add_rms_norm,
        validate=norms.validate_fused_add_rms_norm,
        sample_inputs=norms.fused_add_rms_norm_samples,
        example_inputs=norms.fused_add_rms_norm_example,
    )
    registry.register_op(
        norms.dual_rms_norm,
        validate=norms.validate_dual_rms_norm,
        sample_inputs=norms.dual_rms_norm_samples,
        example_inputs=norms.dual_rms_norm_example,
    )
    quant.register_quant_ops(registry)
