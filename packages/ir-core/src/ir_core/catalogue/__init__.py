"""The ops ir-core itself declares; plugins add more through ``register_ops``.

Each op lives in a module named for its family (``norms.py``, ``activations.py``,
``rotary.py``, ``quant.py``: native function, validation,
sample and example inputs) and is declared by one row of :data:`BUILTIN_OPS`, in the order
they register. :mod:`ir_core.ops` registers the table when ir_core is imported. A new op: its
functions in a family module, one :class:`~ir_core.op.OpDeclaration` row here, and its
semantics in docs/contract.md.
"""

from __future__ import annotations

from ..op import OpDeclaration
from . import activations, norms, quant, rotary

#: Version of this catalogue's op signatures and semantics (2: the gated activations,
#: rotary_embedding and gated_rms_norm; 3: the fp8 quant and fused norm/activation + quant ops).
OP_API = 3

#: Every built-in op, in registration order.
BUILTIN_OPS: tuple[OpDeclaration, ...] = (
    OpDeclaration(
        norms.rms_norm,
        validate=norms.validate_rms_norm,
        sample_inputs=norms.rms_norm_samples,
        example_inputs=norms.rms_norm_example,
    ),
    OpDeclaration(
        norms.fused_add_rms_norm,
        validate=norms.validate_fused_add_rms_norm,
        sample_inputs=norms.fused_add_rms_norm_samples,
        example_inputs=norms.fused_add_rms_norm_example,
    ),
    OpDeclaration(
        norms.dual_rms_norm,
        validate=norms.validate_dual_rms_norm,
        sample_inputs=norms.dual_rms_norm_samples,
        example_inputs=norms.dual_rms_norm_example,
    ),
    OpDeclaration(
        norms.gated_rms_norm,
        tolerances=norms.GATED_RMS_NORM_TOLERANCES,
        validate=norms.validate_gated_rms_norm,
        sample_inputs=norms.gated_rms_norm_samples,
        example_inputs=norms.gated_rms_norm_example,
    ),
    OpDeclaration(
        activations.silu_and_mul,
        tolerances=activations.TOLERANCES,
        validate=activations.validate_silu_and_mul,
        sample_inputs=activations.silu_and_mul_samples,
        example_inputs=activations.silu_and_mul_example,
    ),
    OpDeclaration(
        activations.gelu_and_mul,
        tolerances=activations.TOLERANCES,
        validate=activations.validate_gelu_and_mul,
        sample_inputs=activations.gelu_and_mul_samples,
        example_inputs=activations.gelu_and_mul_example,
    ),
    OpDeclaration(
        rotary.rotary_embedding,
        validate=rotary.validate_rotary_embedding,
        sample_inputs=rotary.rotary_embedding_samples,
        example_inputs=rotary.rotary_embedding_example,
    ),
    *quant.QUANT_OPS,
)
