"""``torch.ops.ir_core.<name>``: every op as a torch custom op.

The custom op is what FX graphs, FakeTensor and ``torch.compile`` see: opaque until the lowering
pass replaces it. Its kernel is registered for no particular device (CompositeExplicitAutograd
through ``device_types=None``), so out-of-tree devices work; the kernel itself calls the eager
dispatcher, so calling the torch op eagerly runs the same impl ``ir_core.ops.<name>`` would.
Its fake impl is the native function: the semantics already computes the right output metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .op import Op

NAMESPACE = "ir_core"


def define(op: Op) -> Any:
    """Create ``torch.ops.ir_core.<op.name>`` and return its OpOverload."""
    schema = torch.library.infer_schema(op.native, mutates_args=())
    dispatcher = op.dispatcher

    def kernel(*args: Any) -> Any:
        return dispatcher(*args)

    custom = torch.library.custom_op(
        f"{NAMESPACE}::{op.name}", kernel, mutates_args=(), schema=schema
    )
    custom.register_fake(op.native)
    return getattr(getattr(torch.ops, NAMESPACE), op.name).default
