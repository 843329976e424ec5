"""``ir_core.ops.<name>``: the calls engines make, and the composition root that makes them.

Every op the registry accepts is bound here, before it is stored, to its generated eager
dispatcher (:func:`ir_core.dispatch.make_dispatcher`) and its torch op
(:func:`ir_core.library.define`); then the built-in catalogue is declared, so that
``ir_core.ops.rms_norm`` is a plain module attribute. Ops that plugins declare are found
through ``__getattr__`` once plugins are loaded. ``dir(ir_core.ops)`` lists the ops only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import catalogue, dispatch, library
from .op import Op
from .registry import registry


def _bind(op: Op) -> None:
    """Give a new op its ``ir_core.ops`` dispatcher and its ``torch.ops.ir_core`` op."""
    op.dispatcher = dispatch.make_dispatcher(op)
    op.torch_op = library.define(op)


def _declare_builtin_ops() -> None:
    for row in catalogue.BUILTIN_OPS:
        op = registry.register_op(
            row.fn,
            name=row.name,
            tolerances=row.tolerances,
            validate=row.validate,
            sample_inputs=row.sample_inputs,
            example_inputs=row.example_inputs,
            compare=row.compare,
        )
        globals()[op.name] = op.dispatcher


registry.on_new_op(_bind)
_declare_builtin_ops()


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    registry.ensure_loaded()
    try:
        return registry.get_op(name).dispatcher
    except KeyError as exc:
        raise AttributeError(f"module 'ir_core.ops' has no op {name!r}: {exc.args[0]}") from None


def __dir__() -> list[str]:
    return sorted(op.name for op in registry.ops())
