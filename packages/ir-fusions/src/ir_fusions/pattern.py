"""A small structural pattern language over FX nodes.

A pattern is a tree of :class:`Call` nodes (an op and patterns for some of its arguments, by
schema name) whose leaves :class:`Capture` whatever sits there, a node or a constant such as
``epsilon``, under a name. Matching reads the graph as it is; nothing is traced.

Why not Inductor's ``pattern_matcher``: its patterns are traced from example functions, once per
combination of the constants baked into them, which is why vLLM registers one pattern per
epsilon, per dtype and per Gemma variant. The graphs ir-core's passes see are small and
high-level (``ir_core`` ops, ``aten.add``, split/slice, ``getitem``, functional collectives), so
walking them structurally is simpler: constants are captured like any other argument and judged
by a rule's check, so one pattern covers every epsilon, ``weight_bias`` and weight dtype.

Arguments are compared by schema name with defaults filled in, so ``rms_norm(x, w, 1e-6)`` and
``rms_norm(x, w, 1e-6, 0.0)`` (or the same with keywords) match the same pattern.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import fx
from torch.fx.experimental.symbolic_shapes import statically_known_true

__all__ = [
    "Call",
    "Capture",
    "Literal",
    "Match",
    "Pattern",
    "arguments",
    "is_float_tensor",
    "same_shape",
    "value_of",
]


def arguments(node: fx.Node) -> dict[str, Any] | None:
    """``node``'s arguments by schema name, defaults filled in.

    Works for any ``OpOverload`` (aten, ``ir_core``, ``_c10d_functional``) and for
    ``operator.getitem`` (``input``, ``index``). Returns None for anything else, or when an
    argument without default is missing (a malformed node).
    """
    target = node.target
    if target is operator.getitem:
        return {"input": node.args[0], "index": node.args[1]}
    schema = getattr(target, "_schema", None)
    if schema is None:
        return None
    found: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args) and not arg.kwarg_only:
            found[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            found[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            found[arg.name] = _default(arg)
        else:
            return None
    return found


def _default(arg: Any) -> Any:
    """A schema argument's default as Python code would pass it.

    torch keeps a ``ScalarType`` default as the dtype's enum number (``dtype=24`` for
    ``torch.float8_e4m3fn``); a pass must see the ``torch.dtype`` that an explicit argument
    (what Dynamo records) would be, so one pattern matches both and the fused op receives what
    its validation accepts.
    """
    value = arg.default_value
    if isinstance(value, int) and str(arg.real_type) == "ScalarType":
        return _dtype_of_enum(value)
    return value


@functools.cache
def _dtype_of_enum(number: int) -> torch.dtype:
    # the op's own argument parsing turns the number into the dtype
    return torch.ops.aten.empty.memory_format([0], dtype=number, device="meta").dtype


def value_of(node: Any) -> Any:
    """The example value (a FakeTensor, or a tuple of them) FX recorded for ``node``.

    Post-grad graphs and ``make_fx`` traces carry it in ``meta["val"]``; checks read dtypes and
    shapes from it. None when ``node`` is not a node or has none (such a node never matches a
    check that needs it).
    """
    if not isinstance(node, fx.Node):
        return None
    return node.meta.get("val")


class Match:
    """What a pattern bound: captured values and named nodes, and every node it matched.

    ``match["epsilon"]`` reads a binding. A rule's check may add or overwrite bindings (e.g. to
    choose which addend becomes ``x``); the replacement reads them.
    """

    __slots__ = ("bindings", "nodes")

    def __init__(self) -> None:
        self.bindings: dict[str, Any] = {}
        #: Nodes matched by :class:`Call` patterns, operands before their users.
        self.nodes: list[fx.Node] = []

    def __getitem__(self, name: str) -> Any:
        return self.bindings[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.bindings[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self.bindings

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in self.bindings.items())
        return f"Match({inner})"


def _short(value: Any) -> str:
    return value.name if isinstance(value, fx.Node) else repr(value)


class Pattern:
    """Base class: ``pattern(node)`` returns a :class:`Match` or None."""

    def match(self, value: Any, match: Match) -> bool:
        """Try to match ``value``, recording bindings in ``match``; False leaves it unusable."""
        raise NotImplementedError

    def __call__(self, value: Any) -> Match | None:
        found = Match()
        return found if self.match(value, found) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, fx.Node) or isinstance(b, fx.Node):
        return a is b
    return type(a) is type(b) and a == b


def _bind(match: Match, name: str, value: Any) -> bool:
    """Bind ``name``; a name bound twice must bind the same node or an equal constant."""
    if name in match.bindings:
        return _same(match.bindings[name], value)
    match.bindings[name] = value
    return True


class Capture(Pattern):
    """Matches anything (a node, a constant, None) and binds it to ``name``.

    The same name used twice in one pattern must capture the same node or an equal constant.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def match(self, value: Any, match: Match) -> bool:
        return _bind(match, self.name, value)

    def __repr__(self) -> str:
        return f"Capture({self.name!r})"


class Literal(Pattern):
    """Matches a constant equal to ``value`` (``1`` matches ``1`` and ``1.0``, not ``True``)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def match(self, value: Any, match: Match) -> bool:
        if isinstance(value, fx.Node) or isinstance(value, bool) != isinstance(self.value, bool):
            return False
        return value == self.value

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


class Call(Pattern):
    """Matches a ``call_function`` node of one of ``targets`` whose named arguments match.

    ``args`` maps schema argument names to patterns (``self=`` too: the op's first argument is
    often called ``self``); arguments not named are not looked at.
    ``bind`` names the matched node itself. ``single_user`` requires that nothing but the
    pattern's own consumer uses the node, for producers the rewrite will remove.
    """

    def __init__(
        self,
        targets: Any | Iterable[Any],
        /,
        *,
        bind: str | None = None,
        single_user: bool = False,
        **args: Pattern,
    ) -> None:
        if isinstance(targets, (list, tuple, set, frozenset)):
            self.targets = frozenset(targets)
        else:
            self.targets = frozenset((targets,))
        self.bind = bind
        self.single_user = single_user
        self.args = args

    def match(self, value: Any, match: Match) -> bool:
        if not (
            isinstance(value, fx.Node)
            and value.op == "call_function"
            and value.target in self.targets
        ):
            return False
        if self.single_user and len(value.users) != 1:
            return False
        found = arguments(value)
        if found is None:
            return False
        for name, pattern in self.args.items():
            if name not in found or not pattern.match(found[name], match):
                return False
        if self.bind is not None and not _bind(match, self.bind, value):
            return False
        match.nodes.append(value)
        return True

    def __repr__(self) -> str:
        names = sorted(str(t) for t in self.targets)
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"Call({'|'.join(names)}{', ' + args if args else ''})"


def is_float_tensor(value: Any) -> bool:
    """``value`` is a (fake) tensor of a floating dtype."""
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def same_shape(a: Any, b: Any) -> bool:
    """``a`` and ``b`` provably have one shape (a shape or a tensor each).

    Decided without adding guards: under dynamic shapes a size that may or may not match is
    "not the same", so a pass declines rather than specialize the compiled graph.
    """
    a = tuple(a.shape) if isinstance(a, torch.Tensor) else tuple(a)
    b = tuple(b.shape) if isinstance(b, torch.Tensor) else tuple(b)
    return len(a) == len(b) and all(statically_known_true(x == y) for x, y in zip(a, b))
