"""``torch.ops.ir_core.<name>`` and ``torch.ops.ir_core_impl.<name>__<provider>``.

``torch.ops.ir_core.<name>`` is what FX graphs, FakeTensor and ``torch.compile`` see: opaque
until the lowering pass replaces it. Its kernel is registered for no particular device
(CompositeExplicitAutograd through ``device_types=None``), so out-of-tree devices work; the
kernel itself calls the eager dispatcher, so calling the torch op eagerly runs the same impl
``ir_core.ops.<name>`` would. Its fake impl is the native function: the semantics already
computes the right output metadata. Its autograd formula differentiates the native function,
so graphs traced with grad enabled compile (training is not the goal; refusing to compile
``model(x)`` outside ``torch.no_grad()`` would be a trap).

``torch.ops.ir_core_impl.<op>__<provider>`` is one provider's kernel as a graph-callable op: the
lowering pass points an IR node at it when a non-native impl is selected, so the vendor kernel
stays one opaque call in the compiled graph (native impls are inlined instead). It has the op's
schema, the native function as fake impl and, again, no device dispatch key. Its kernel looks
the impl up in the registry on every call, so a plugin registered again (tests, reloads) is
the one that runs.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import torch

from .op import Op
from .registry import registry

NAMESPACE = "ir_core"
IMPL_NAMESPACE = "ir_core_impl"


def define(op: Op) -> Any:
    """Create ``torch.ops.ir_core.<op.name>`` and return its OpOverload."""
    schema = torch.library.infer_schema(op.native, mutates_args=())
    dispatcher = op.dispatcher
    native = op.native

    def kernel(*args: Any) -> Any:
        return dispatcher(*args)

    def fake(*args: Any) -> Any:
        _on_trace()
        return native(*args)

    custom = torch.library.custom_op(
        f"{NAMESPACE}::{op.name}", kernel, mutates_args=(), schema=schema
    )
    custom.register_fake(fake)
    _register_native_autograd(custom, native)
    return getattr(getattr(torch.ops, NAMESPACE), op.name).default


def _register_native_autograd(custom: Any, native: Any) -> None:
    """Differentiate the op through its native semantics.

    Without a formula, AOTAutograd refuses any graph where an IR op sees a tensor that
    requires grad -- plain ``torch.compile(model)`` outside ``torch.no_grad()`` would fail.
    The backward recomputes native on the saved inputs and differentiates it: whichever impl
    ran forward, the gradient is that of the semantics every impl matches.
    """

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.positions = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor)]
        ctx.constants = [None if isinstance(a, torch.Tensor) else a for a in inputs]
        ctx.save_for_backward(*(inputs[i] for i in ctx.positions))

    def backward(ctx: Any, *grads: Any) -> tuple[Any, ...]:
        args = list(ctx.constants)
        wanted = []
        for i, saved in zip(ctx.positions, ctx.saved_tensors):
            args[i] = saved.detach().requires_grad_(ctx.needs_input_grad[i])
            if ctx.needs_input_grad[i]:
                wanted.append(i)
        with torch.enable_grad():
            out = native(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
        result: list[Any] = [None] * len(args)
        if pairs and wanted:
            got = torch.autograd.grad(
                [o for o, _ in pairs],
                [args[i] for i in wanted],
                [g for _, g in pairs],
                allow_unused=True,
            )
            for i, g in zip(wanted, got):
                result[i] = g
        return tuple(result)

    custom.register_autograd(backward, setup_context=setup_context)


def _on_trace() -> None:
    """An IR op is being traced (Dynamo, AOT, export): make sure Inductor will lower it.

    Inductor is never imported here: when it is not loaded no Inductor compile is running
    (Dynamo imports it), and importing it costs seconds. See ``ir_core.compile.inductor``.
    """
    if "torch._inductor.config" in sys.modules:
        # lazy: the one upward edge; compile.inductor imports Inductor (seconds), never at import
        from .compile.inductor import ensure_installed

        ensure_installed()


# -- one provider's kernel as an op ------------------------------------------------------------

_impl_ops: dict[tuple[str, str], Any] = {}
_impl_lock = threading.Lock()


def impl_op_name(op_name: str, provider: str) -> str:
    return f"{op_name}__{provider}"


def impl_op(op: Op, provider: str) -> Any:
    """``torch.ops.ir_core_impl.<op>__<provider>`` (created on first use), an OpOverload."""
    key = (op.name, provider)
    existing = _impl_ops.get(key)
    if existing is not None:
        return existing
    with _impl_lock:
        if key not in _impl_ops:
            _impl_ops[key] = _define_impl_op(op, provider)
        return _impl_ops[key]


def _define_impl_op(op: Op, provider: str) -> Any:
    name = impl_op_name(op.name, provider)
    schema = torch.library.infer_schema(op.native, mutates_args=())
    op_name = op.name

    def kernel(*args: Any) -> Any:
        return current_impl(op_name, provider)(*args)

    custom = torch.library.custom_op(
        f"{IMPL_NAMESPACE}::{name}", kernel, mutates_args=(), schema=schema
    )
    custom.register_fake(op.native)
    return getattr(getattr(torch.ops, IMPL_NAMESPACE), name).default


def current_impl(op_name: str, provider: str) -> Any:
    """The kernel ``provider`` registers for ``op_name`` now; a clear error when it is gone."""
    try:
        return registry.get_op(op_name).impls[provider].fn
    except KeyError:
        raise RuntimeError(
            f"torch.ops.{IMPL_NAMESPACE}.{impl_op_name(op_name, provider)}: provider "
            f"{provider} no longer registers an impl of {op_name} (its plugin was removed "
            "after the graph was compiled)"
        ) from None
