"""Finding IR nodes in an FX graph and reading their arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.fx

from .. import library
from ..op import Op
from ..registry import registry


class IrOps:
    """``torch.ops.ir_core.*`` overloads of the registered ops, looked up by node target.

    Built once per pass run (a dict lookup per node instead of parsing op names), after
    plugins are loaded so fused ops they declare are known.
    """

    def __init__(self) -> None:
        registry.ensure_loaded()
        self.by_target: dict[Any, Op] = {
            op.torch_op: op for op in registry.ops() if op.torch_op is not None
        }

    def of(self, node: torch.fx.Node) -> Op | None:
        """The IR op ``node`` calls, or None when it calls something else."""
        if node.op != "call_function":
            return None
        return self.by_target.get(node.target)

    def nodes(self, graph: torch.fx.Graph) -> Iterator[tuple[torch.fx.Node, Op]]:
        """Every IR node of ``graph`` with its op, in graph order (a snapshot: safe to edit)."""
        for node in list(graph.nodes):
            op = self.of(node)
            if op is not None:
                yield node, op


def is_ir_node(node: torch.fx.Node) -> bool:
    """Whether ``node`` calls ``torch.ops.ir_core.*`` (registered or not)."""
    target = node.target
    return (
        node.op == "call_function"
        and isinstance(target, torch._ops.OpOverload)
        and target.namespace == library.NAMESPACE
    )


def bound_args(op: Op, node: torch.fx.Node) -> tuple[Any, ...]:
    """The node's arguments, all positional, the op's defaults filled in."""
    return op.bind(node.args, dict(node.kwargs))


def fake_value(arg: Any) -> Any:
    """The example value FX recorded for a node argument (constants pass through)."""
    if isinstance(arg, torch.fx.Node):
        return arg.meta.get("val")
    return arg
