"""Choosing an impl for an IR node at compile time, without specializing symbolic shapes.

The node's example values may have symbolic sizes (``s0`` tokens). Letting ``supports_args`` or
the op's validation compare such a size with a number would record a guard in the shape
environment: the compiled graph would then be valid for, say, ``s0 % 8 == 0`` only, and another
token count would recompile. So predicates never see a symbolic value: every tensor argument is
replaced by a stand-in FakeTensor of the same device, dtype and layout whose sizes and strides
are the size *hints* (the values seen when the graph was traced), read without guarding. The
choice is therefore made for the hinted shape and kept for every token count the graph serves;
this is why ``supports_args`` must not depend on the token count beyond what the shape says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

try:  # torch >= 2.10
    from torch.fx.experimental.symbolic_shapes import optimization_hint
except ImportError:  # torch 2.6-2.9
    from torch.fx.experimental.symbolic_shapes import has_hint, hint_int

    def optimization_hint(value: int | torch.SymInt, *, fallback: int) -> int:
        if isinstance(value, torch.SymInt) and not has_hint(value):
            return fallback
        return hint_int(value)


from .. import dispatch, priority
from ..dispatch import Explanation
from ..op import Op

#: Hint for a data-dependent (unbacked) size, which has no traced value (ShapeEnv's default).
UNBACKED_HINT = 8192


class LoweringError(RuntimeError):
    """An IR node's arguments are invalid for its op; the message names the node."""


class NotLowerable(Exception):
    """The node is left as the opaque ``torch.ops.ir_core`` call (it still runs, dispatched
    eagerly); the message says why."""


def _hint(value: int | torch.SymInt) -> int:
    """The traced value of a size, read without adding a guard."""
    return optimization_hint(value, fallback=UNBACKED_HINT)


def _describe(value: Any) -> Any:
    """A hashable description of one argument as the predicates may read it."""
    if isinstance(value, torch.Tensor):
        return (
            "tensor",
            value.device,
            value.dtype,
            tuple(_hint(s) for s in value.shape),
            tuple(_hint(s) for s in value.stride()),
        )
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        raise NotLowerable(f"symbolic scalar argument {value}: only tensor sizes may be symbolic")
    return ("value", type(value), value)


class Selector:
    """Selects impls for the IR nodes of one graph, caching by what predicates may read."""

    def __init__(self) -> None:
        self._mode = FakeTensorMode()
        self._chosen: dict[Any, Explanation] = {}

    def select(self, op: Op, args: Sequence[Any], *, where: str) -> Explanation:
        """The impl the current priority picks for ``args`` (example values, maybe symbolic).

        ``where`` names the node in errors. Validation runs here too, on the same stand-ins:
        in compiled code no other place checks the arguments.
        """
        descriptors = tuple(_describe(a) for a in args)
        key = (op.name, priority.current_scope.get(), descriptors)
        chosen = self._chosen.get(key)
        if chosen is None:
            stand_ins = [self._stand_in(d, a) for d, a in zip(descriptors, args)]
            try:
                op.validate(stand_ins)
            except (TypeError, ValueError) as exc:
                raise LoweringError(f"{where}: {exc}") from exc
            chosen = self._chosen[key] = dispatch.select(op, stand_ins)
        return chosen

    def _stand_in(self, descriptor: Any, value: Any) -> Any:
        if descriptor[0] != "tensor":
            return value
        _, device, dtype, shape, stride = descriptor
        with self._mode:
            return torch.empty_strided(shape, stride, dtype=dtype, device=device)
