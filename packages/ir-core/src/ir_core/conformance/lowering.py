"""The compile side of the kit: compile a one-op function under a provider's priority.

Kept apart from :mod:`checks` because it is about ``ir_core.compile`` (the lowering pass and
the ``ir_core`` backend) rather than about the impl alone.

The function compiled takes only the tensors; the op's other arguments (epsilon, flags) are
constants of the function, as they are in a model, so Dynamo does not turn them into symbolic
scalars. Each compile gets a fresh code object: Dynamo caches compiled code per code object
and would otherwise hit its recompile limit after a few targets and silently run eagerly.
``fullgraph=True`` makes any graph break an error instead of a silent fallback.
"""

from __future__ import annotations

import itertools
import types
from typing import Any

import torch

from ..compile import compile_report, ir_core_backend
from ..op import NATIVE
from ..priority import set_priority

_fresh = itertools.count()


def _one_op_function(op: Any, args: tuple[Any, ...]) -> Any:
    """``f(*tensors) -> ir_core.ops.<op>(...)`` with the non-tensor arguments baked in."""
    dispatcher = op.dispatcher
    layout = tuple(isinstance(a, torch.Tensor) for a in args)
    constants = tuple(None if is_tensor else a for a, is_tensor in zip(args, layout))

    def call_op(*tensors: torch.Tensor) -> Any:
        it = iter(tensors)
        return dispatcher(*(next(it) if t else c for t, c in zip(layout, constants)))

    name = f"ir_core_conformance_{op.name}_{next(_fresh)}"
    code = call_op.__code__.replace(co_name=name)
    return types.FunctionType(code, call_op.__globals__, name, None, call_op.__closure__)


def compile_and_run(op: Any, provider: str, args: tuple[Any, ...]) -> tuple[Any, str | None]:
    """Compile the op alone under ``set_priority({op: [provider, native]})`` with the
    ``ir_core`` backend, run it on ``args``, and return ``(output, provider it was lowered to)``.

    The provider is None when the graph came from Inductor's FX graph cache, which runs no pass
    (its cache key includes ``ir_core.priority_hash()``, so it was lowered under this priority).
    """
    fn = _one_op_function(op, args)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = compile_report()
    with set_priority({op.name: [provider, NATIVE]}):
        compiled = torch.compile(fn, backend=ir_core_backend, fullgraph=True, dynamic=False)
        output = compiled(*tensors)
    report = compile_report()
    if report is None or report is before:
        return output, None
    providers = {n.provider for n in report.lowered if n.op == op.name}
    unlowered = [n for n in report.unlowered if n.op == op.name]
    if unlowered:
        return output, f"nothing (left opaque: {unlowered[0].reason})"
    return output, ", ".join(sorted(providers)) or None
