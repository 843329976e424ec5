"""Fusion passes: rules of (pattern, check, replacement) applied to an FX graph in place.

A :class:`Rule` says *what* to rewrite: a :class:`~ir_fusions.pattern.Pattern` anchored at one
node, an extra ``check`` on the match (dtypes, shapes, constants), and a ``replace`` function that
returns a :class:`Replacement`: the fused op, its arguments, and which old node each of its
outputs stands for. A :class:`FusionPass` says *how*: it finds matches, inserts the fused node
where every input is defined and before every user, reroutes the users, erases what became dead,
and returns how many matches it rewrote. Graph surgery lives here, once; rules stay declarative.

Cost: a pass is linear in the graph. Node positions are numbered once per pass
(:class:`NodeOrder`) and kept valid as nodes are inserted and erased, so a match costs the size
of the match, not of the graph; the graph is linted and recompiled at most once per pass, and not
at all by the pipeline's entry (:meth:`FusionPass.for_pipeline`), whose caller lints and
recompiles.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import fx

from ir_core.digest import source_digest

from .pattern import Match, Pattern

__all__ = ["FusionPass", "NodeOrder", "PipelinePass", "Replacement", "Rule", "apply_replacement"]


@dataclass(frozen=True)
class Replacement:
    """One fused node and the old nodes its outputs replace.

    ``outputs`` maps an old node to the index of the fused op's output that replaces it, or to
    None when the fused node replaces it whole (both return the same tuple, or both one tensor).
    ``values`` are the fused op's example outputs (``meta["val"]``), one per output, so later
    passes and lowering can read dtypes and shapes of the new nodes as they could of the old
    ones.
    """

    target: Any
    args: tuple[Any, ...]
    outputs: dict[fx.Node, int | None]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Rule:
    """``pattern`` finds a candidate, ``check`` accepts it, ``replace`` says what replaces it.

    ``check`` may refine the match's bindings (e.g. choose which addend becomes ``x``) and
    returns whether the rewrite preserves the semantics; ``replace`` returns the
    :class:`Replacement`, or None to decline after all.
    """

    pattern: Pattern
    check: Callable[[Match], bool]
    replace: Callable[[Match], Replacement | None]
    name: str = ""


@dataclass(repr=False)
class FusionPass:
    """A named, ordered graph rewrite: ``pass_(gm)`` rewrites in place and returns the count.

    ``order`` places it among the other passes (lower runs first); ``name`` is what
    ``IR_CORE_FUSIONS="-name"`` disables. Accepts a ``GraphModule`` (linted and recompiled once
    when changed) or a bare ``fx.Graph`` (what Inductor's post-grad hooks hand over; linted).
    ir-core's pipeline registers :meth:`for_pipeline` instead, which leaves both to its caller.

    :meth:`fingerprint` is stable across processes and changes with the source of the pass
    (its rules' modules and this driver): ir-core's compile-cache key reads it (the
    ``fingerprint()`` protocol of fusion callables, see ``ir_core.compile.passes``).
    """

    name: str
    rules: Sequence[Rule]
    order: int = 100
    description: str = ""
    _fingerprint: str = field(default="", init=False)

    def __call__(self, gm: fx.GraphModule | fx.Graph) -> int:
        graph = gm.graph if isinstance(gm, fx.GraphModule) else gm
        count = self.rewrite(graph)
        if count:
            graph.lint()
            if isinstance(gm, fx.GraphModule):
                gm.recompile()
        return count

    def rewrite(self, graph: fx.Graph) -> int:
        """Rewrite every match in ``graph`` in place; return the count. No lint, no recompile.

        Node positions are numbered once here and kept up to date by :func:`apply_replacement`,
        so the whole pass is linear in the graph.
        """
        order = NodeOrder(graph)
        gone: set[fx.Node] = set()
        count = 0
        for rule, match in self.find(graph, gone):
            if not rule.check(match):
                continue
            replacement = rule.replace(match)
            if replacement is None:
                continue
            erased = apply_replacement(graph, replacement, match.nodes, order)
            if erased is None:
                continue
            gone.update(erased)
            count += 1
        return count

    def for_pipeline(self) -> PipelinePass:
        """This pass as ir-core's pipeline runs it: rewrites ``gm.graph``, leaves the rest.

        ir-core's registry lints the graph after every pass that rewrote, lowering edits the
        graph after the fusions, and Inductor recompiles the module once at the end of its
        post-grad passes; a recompile per pass there is wasted (seconds on deep models).
        """
        return PipelinePass(self)

    def fingerprint(self) -> str:
        """A digest of the source this pass runs: its class, its rules' modules, this driver."""
        if self._fingerprint:
            return self._fingerprint
        modules = {type(self).__module__, __name__}
        for rule in self.rules:
            modules.update(f.__module__ for f in (rule.check, rule.replace))
        parts = [sys.modules.get(name, name) for name in sorted(modules)]
        self._fingerprint = source_digest(*parts)[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        return f"<FusionPass {self.name} order={self.order} source={self.fingerprint()}>"

    def find(self, graph: fx.Graph, gone: Container[fx.Node]) -> Iterator[tuple[Rule, Match]]:
        """Candidate matches: every rule's pattern tried at every node, in graph order.

        Runs over a snapshot of the nodes, lazily, so rewrites made meanwhile are seen; nodes
        in ``gone`` (erased by an earlier rewrite) are skipped, and once a node is rewritten no
        further rule is tried on it (a rule whose check declines leaves the next one a chance).
        Passes whose matches span several anchors (two sibling norms) override this.
        """
        for node in list(graph.nodes):
            if node.op != "call_function":
                continue
            for rule in self.rules:
                if node in gone:  # rewritten by the previous rule
                    break
                match = rule.pattern(node)
                if match is not None:
                    yield rule, match


def _input_nodes(args: Any) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(args, found.append)
    return found


class PipelinePass:
    """``fusion.rewrite(gm.graph)`` as a registered ``fn(gm) -> int``; see
    :meth:`FusionPass.for_pipeline`. Its ``fingerprint()`` and ``repr`` are the pass's."""

    __slots__ = ("fusion",)

    def __init__(self, fusion: FusionPass) -> None:
        self.fusion = fusion

    def __call__(self, gm: fx.GraphModule | fx.Graph) -> int:
        return self.fusion.rewrite(gm.graph if isinstance(gm, fx.GraphModule) else gm)

    def fingerprint(self) -> str:
        """What ir-core's compile-cache key reads: the pass's own fingerprint."""
        return self.fusion.fingerprint()

    def __repr__(self) -> str:
        return repr(self.fusion)


class NodeOrder:
    """Where each node of a graph stands, numbered once and kept valid while a pass edits it.

    ``order[node]`` is a number that increases along the graph. Original nodes are numbered
    0, 1, 2, ...; a node inserted since gets the midpoint of its neighbours' numbers
    (:meth:`inserted`), an erased one is dropped (:meth:`erased`). Nodes never move otherwise,
    so the numbers stay in graph order and each lookup is O(1). Should the numbers run out of
    precision, or a node appear that nobody reported, the graph is renumbered (O(n), rare).
    """

    __slots__ = ("_graph", "_index", "renumbered")

    def __init__(self, graph: fx.Graph) -> None:
        self._graph = graph
        self._index: dict[fx.Node, float] = {}
        #: How many times the whole graph was numbered (1 for a pass that keeps up with it).
        self.renumbered = 0
        self._renumber()

    def _renumber(self) -> None:
        self._index = {node: float(i) for i, node in enumerate(self._graph.nodes)}
        self.renumbered += 1

    def __getitem__(self, node: fx.Node) -> float:
        index = self._index.get(node)
        if index is None:  # inserted behind our back
            self._renumber()
            index = self._index[node]
        return index

    def _neighbour(self, node: fx.Node, default: float) -> float | None:
        if node.op == "root":  # the sentinel before the first and after the last node
            return default
        return self._index.get(node)

    def inserted(self, node: fx.Node) -> None:
        """Number ``node``, just inserted between two numbered nodes."""
        before = self._neighbour(node.prev, -1.0)
        after = None if before is None else self._neighbour(node.next, before + 2.0)
        if before is not None and after is not None:
            middle = (before + after) / 2
            if before < middle < after:
                self._index[node] = middle
                return
        self._renumber()

    def erased(self, node: fx.Node) -> None:
        self._index.pop(node, None)


def apply_replacement(
    graph: fx.Graph,
    replacement: Replacement,
    matched: Sequence[fx.Node],
    order: NodeOrder | None = None,
) -> list[fx.Node] | None:
    """Insert the fused node, reroute users of the nodes it replaces, erase the dead ones.

    The fused node goes right before the first user (outside the match) of any node it
    replaces, which must come after the last of its inputs. An input computed after that user
    by pure ops that read only earlier nodes (a scale sliced out of a tensor, a view) is moved
    up to just before it; when that is not possible, nothing is changed and None is returned.
    (A residual stream read by the next layer before this layer's quant is such a case.)
    Nodes of the match and the
    replaced nodes are erased when nothing uses them any more (so a producer still used
    elsewhere, like a split, stays). Returns the erased nodes.

    ``order`` is the graph's :class:`NodeOrder`, updated here; a pass passes the one it made
    for all its matches (without one, each call numbers the whole graph).
    """
    position = NodeOrder(graph) if order is None else order
    candidates = set(matched) | set(replacement.outputs)
    users = [u for old in replacement.outputs for u in old.users if u not in candidates]
    if not users:
        return None
    first_user = min(users, key=position.__getitem__)
    late = [n for n in _input_nodes(replacement.args) if position[n] >= position[first_user]]
    if late and not _hoist(late, first_user, position, candidates):
        return None

    anchor = max(candidates, key=position.__getitem__)
    with graph.inserting_before(first_user):
        fused = graph.call_function(replacement.target, replacement.args)
        position.inserted(fused)
        single = len(replacement.values) == 1 and _returns_one_tensor(replacement.target)
        _copy_meta(anchor, fused, replacement.values[0] if single else tuple(replacement.values))
        for old, index in replacement.outputs.items():
            if index is None:
                new = fused
            else:
                new = graph.call_function(operator.getitem, (fused, index))
                position.inserted(new)
                _copy_meta(anchor, new, replacement.values[index])
            # the fused node itself may read a replaced node (an input it recomputes from)
            old.replace_all_uses_with(new, delete_user_cb=lambda user: user is not fused)

    erased = []
    for node in sorted(candidates, key=position.__getitem__, reverse=True):
        if not node.users:
            graph.erase_node(node)
            position.erased(node)
            erased.append(node)
    return erased


def _hoist(
    nodes: Sequence[fx.Node], before: fx.Node, position: NodeOrder, keep: Container[fx.Node]
) -> bool:
    """Move ``nodes``, and what they read from at or after ``before``, to just before it.

    Only pure ``call_function`` nodes outside ``keep`` (the match) move, in dependency order,
    so every node still follows its inputs and precedes its users; False (nothing moved) when
    one of them cannot.
    """
    limit = position[before]
    plan: list[fx.Node] = []
    planned: set[fx.Node] = set()

    def visit(node: fx.Node) -> bool:
        if position[node] < limit or node in planned:
            return True
        if node is before or node.op != "call_function" or node in keep or node.is_impure():
            return False
        if not all(visit(i) for i in node.all_input_nodes):
            return False
        planned.add(node)
        plan.append(node)
        return True

    if not all(visit(n) for n in nodes):
        return False
    for node in plan:
        before.prepend(node)
        position.erased(node)
        position.inserted(node)
    return True


def _returns_one_tensor(target: Any) -> bool:
    """An op with one return, whose node's value is that tensor itself, not a tuple."""
    schema = getattr(target, "_schema", None)
    return schema is not None and len(schema.returns) == 1


def _copy_meta(source: fx.Node, target: fx.Node, value: Any) -> None:
    """``meta["val"]`` for the new node, and the source location of the code it came from."""
    target.meta["val"] = value
    for key in ("stack_trace", "nn_module_stack", "source_fn_stack"):
        if key in source.meta:
            target.meta[key] = source.meta[key]
