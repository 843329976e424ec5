"""The ops ir-core itself declares; plugins add more through ``register_ops``."""

from __future__ import annotations

from ..registry import Registry
from . import activations, norms, quant, rotary

#: Version of this catalogue's op signatures and semantics (2: the gated activations,
#: rotary_embedding and gated_rms_norm; 3: the fp8 quant and fused norm/activation + quant ops).
OP_API = 3


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
    registry.register_op(
        norms.gated_rms_norm,
        tolerances=norms.GATED_RMS_NORM_TOLERANCES,
        validate=norms.validate_gated_rms_norm,
        sample_inputs=norms.gated_rms_norm_samples,
        example_inputs=norms.gated_rms_norm_example,
    )
    registry.register_op(
        activations.silu_and_mul,
        tolerances=activations.TOLERANCES,
        validate=activations.validate_silu_and_mul,
        sample_inputs=activations.silu_and_mul_samples,
        example_inputs=activations.silu_and_mul_example,
    )
    registry.register_op(
        activations.gelu_and_mul,
        tolerances=activations.TOLERANCES,
        validate=activations.validate_gelu_and_mul,
        sample_inputs=activations.gelu_and_mul_samples,
        example_inputs=activations.gelu_and_mul_example,
    )
    registry.register_op(
        rotary.rotary_embedding,
        validate=rotary.validate_rotary_embedding,
        sample_inputs=rotary.rotary_embedding_samples,
        example_inputs=rotary.rotary_embedding_example,
    )
    quant.register_quant_ops(registry)
