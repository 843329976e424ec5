"""Lowering: replace every ``torch.ops.ir_core.*`` node by the impl the priority selects.

For each IR node, in graph order:

1. the arguments are bound to the op's signature (defaults filled in) and its example values
   read from ``node.meta["val"]``;
2. :class:`~ir_core.compile.selection.Selector` picks the impl on those values -- validation
   and ``supports_args`` see size hints, never symbolic sizes, so nothing is specialized;
3. a ``native`` choice is inlined (traced into ATen ops Inductor can fuse, see
   :mod:`~ir_core.compile.inline`); any other provider's kernel becomes one opaque call to
   ``torch.ops.ir_core_impl.<op>__<provider>``, registered on first use.

A node that cannot be lowered stays the opaque ``torch.ops.ir_core`` call, which still runs
correctly (its kernel dispatches eagerly); it is listed in the compile report with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx

from .. import library
from ..op import NATIVE
from .graph import IrOps, bound_args, fake_value, is_ir_node
from .inline import Inliner
from .report import LoweredNode, UnloweredNode
from .selection import NotLowerable, Selector


@dataclass
class LoweringResult:
    lowered: list[LoweredNode]
    unlowered: list[UnloweredNode]
    traced: int


def lower(gm: torch.fx.GraphModule) -> LoweringResult:
    """Lower every IR node of ``gm`` in place; see the module docstring."""
    graph = gm.graph
    ir_ops = IrOps()
    selector = Selector()
    inliner = Inliner()
    lowered: list[LoweredNode] = []
    unlowered: list[UnloweredNode] = []
    for node, op in ir_ops.nodes(graph):
        name = node.name
        where = f"{op.name} node {name}"
        try:
            args = bound_args(op, node)
            chosen = selector.select(op, [fake_value(a) for a in args], where=where)
            if chosen.provider == NATIVE:
                inliner.inline(graph, node, op.native, args)
            else:
                # same schema: the node keeps its arguments as written, so metadata that
                # Inductor keys on them (eager_input_vals) stays consistent
                node.target = library.impl_op(op, chosen.provider)
        except NotLowerable as exc:
            unlowered.append(UnloweredNode(op.name, name, str(exc)))
            continue
        lowered.append(LoweredNode(op.name, chosen.provider, name))
    known = {u.node for u in unlowered}
    for node in graph.nodes:
        if is_ir_node(node) and node.name not in known:
            unlowered.append(UnloweredNode(str(node.target), node.name, "op not registered"))
    return LoweringResult(lowered, unlowered, inliner.traced)
