"""The ops ir-core itself declares; plugins add more through ``register_ops``.

Each op lives in a module named for its family (``norms.py``: native function, validation,
sample and example inputs) and is declared by one row of :data:`BUILTIN_OPS`, in the order
they register. :mod:`ir_core.ops` registers the table when ir_core is imported. A new op: its
functions in a family module, one :class:`~ir_core.op.OpDeclaration` row here, and its
semantics in docs/contract.md.
"""

from __future__ import annotations

from ..op import OpDeclaration
from . import norms

#: Version of this catalogue's op signatures and semantics.
OP_API = 1

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
)
