"""Inlining native impls: trace the native function into ATen ops and splice them in.

Inductor fuses what it can see. A native impl left behind an opaque call would run as a
separate Python kernel; traced into the ATen ops it is made of (with Inductor's decompositions,
as the rest of the post-grad graph), the norm fuses with the residual add before it and the
projection after it like any hand-written PyTorch would.

Tracing costs milliseconds, and a model repeats the same call in every layer. Traces are
therefore cached per *signature* -- the op, each tensor argument's dtype, device, sizes and
strides (symbolic sizes by their expression, so ``s0`` tokens in layer 1 and layer 60 match),
and every constant argument -- and each later node gets a copy of the cached subgraph. That
keeps the cost per layer flat (see ``benchmarks/lowering.py``).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx
from torch._guards import detect_fake_mode
from torch.fx.experimental.proxy_tensor import make_fx

from .selection import NotLowerable

#: Node metadata carried from the IR node to the nodes that replace it (provenance in logs,
#: profiles and Inductor's kernel names).
_PROVENANCE = ("stack_trace", "nn_module_stack", "source_fn_stack", "original_aten")


def _signature(name: str, args: Sequence[Any]) -> tuple[Any, ...]:
    parts: list[Any] = [name]
    for arg in args:
        if isinstance(arg, torch.fx.Node):
            val = arg.meta.get("val")
            if not isinstance(val, torch.Tensor):
                raise NotLowerable(f"argument {arg.name} has no tensor example value")
            parts.append(
                (
                    "tensor",
                    val.dtype,
                    val.device,
                    tuple(str(s) for s in val.shape),
                    tuple(str(s) for s in val.stride()),
                )
            )
        else:
            parts.append(("value", type(arg), arg))
    return tuple(parts)


def _distinct(examples: list[Any]) -> list[Any]:
    """``examples`` with every repeated tensor object replaced by a new one of the same
    metadata (in the current fake mode).

    make_fx tracks tensors by identity: handed one object for two placeholders it records
    every use of either as the last one. Two different nodes can carry the same example
    object -- the copies of one cached trace share their ``meta["val"]`` -- so without this
    ``op(norm_a, norm_b)`` after two norms of one signature was traced as ``op(b, b)``.
    """
    seen: set[int] = set()
    result = []
    for value in examples:
        if id(value) in seen and isinstance(value, torch.Tensor):
            value = torch.empty_strided(
                value.shape, value.stride(), dtype=value.dtype, device=value.device
            )
        seen.add(id(value))
        result.append(value)
    return result


class Inliner:
    """Replaces IR nodes by the ATen ops of a Python impl, tracing each signature once."""

    def __init__(self) -> None:
        self._traces: dict[tuple[Any, ...], torch.fx.GraphModule] = {}
        self._decompositions: dict[Any, Any] | None = None

    @property
    def traced(self) -> int:
        """How many distinct signatures were traced (the rest were copies)."""
        return len(self._traces)

    def inline(
        self,
        graph: torch.fx.Graph,
        node: torch.fx.Node,
        fn: Callable[..., Any],
        args: Sequence[Any],
    ) -> None:
        """Replace ``node`` (a call with positional ``args``) by the traced body of ``fn``.

        Raises :class:`NotLowerable`, leaving the graph untouched, when the node's outputs are
        used other than through ``getitem`` or an argument has no example value.
        """
        returns_tuple = isinstance(node.meta.get("val"), (tuple, list))
        if returns_tuple and any(u.target is not operator.getitem for u in node.users):
            raise NotLowerable("a tuple output is used other than through getitem")
        key = (fn, *_signature(str(node.target), args))
        traced = self._traces.get(key)
        if traced is None:
            traced = self._traces[key] = self._trace(fn, args)
        inputs = [a for a in args if isinstance(a, torch.fx.Node)]
        placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
        env: dict[torch.fx.Node, Any] = dict(zip(placeholders, inputs))
        with graph.inserting_before(node):
            out = graph.graph_copy(traced.graph, env)
        provenance = {k: node.meta[k] for k in _PROVENANCE if k in node.meta}
        if provenance:
            for old, new in env.items():
                if old.op != "placeholder":
                    new.meta.update(provenance)
        if returns_tuple:
            for user in list(node.users):
                user.replace_all_uses_with(out[user.args[1]])
                graph.erase_node(user)
        else:
            node.replace_all_uses_with(out)
        graph.erase_node(node)

    def _trace(self, fn: Callable[..., Any], args: Sequence[Any]) -> torch.fx.GraphModule:
        """``fn`` on the node's example values, as ATen ops under Inductor's decompositions.

        Constants are closed over; each node argument becomes a placeholder. Tracing runs in
        the graph's own fake mode, so symbolic sizes stay the graph's symbols.
        """
        positions = [i for i, a in enumerate(args) if isinstance(a, torch.fx.Node)]
        examples = [args[i].meta["val"] for i in positions]
        constants = list(args)

        def body(*tensors: Any) -> Any:
            call = list(constants)
            for i, t in zip(positions, tensors):
                call[i] = t
            return fn(*call)

        from torch._dispatch.python import enable_python_dispatcher

        # functionalized: an impl may update its own temporaries in place (the native norms
        # do, to save eager allocations); the post-grad graph must stay free of mutations
        traceable = torch.func.functionalize(body, remove="mutations")
        fake_mode = detect_fake_mode(examples)
        with fake_mode or contextlib.nullcontext(), enable_python_dispatcher():
            examples = _distinct(examples)
            return make_fx(traceable, self._decomposition_table(), tracing_mode="real")(*examples)

    def _decomposition_table(self) -> dict[Any, Any]:
        """Inductor's table when Inductor is present (the graph is for it), else core ATen."""
        if self._decompositions is None:
            try:
                from torch._inductor.decomposition import select_decomp_table
            except ImportError:  # pragma: no cover - torch built without Inductor
                from torch._decomp import core_aten_decompositions

                self._decompositions = dict(core_aten_decompositions())
            else:
                self._decompositions = select_decomp_table()
        return self._decompositions
