"""Two independent ``rms_norm``  ⇒  ``dual_rms_norm`` (one launch for both).

``dual_rms_norm`` is two RMSNorms in one launch; nothing ties its two inputs together. MLA
(DeepSeek-V2/V3, Kimi-K2) normalizes its q and kv latents, Qwen3 and Gemma3 their per-head
queries and keys: two norms per layer that neither feeds the other.

Which pairs the pass takes
--------------------------
A norm is a *candidate* when its weight is a 1-D tensor as wide as its input's last dimension,
``weight_bias`` is 0 and ``variance_size`` is None or that width (what ``dual_rms_norm``
computes). Two candidates are *independent* when neither depends on the other, directly or
through pairs fused before them. Every norm is paired at most once, in two rounds:

1. **MLA pairs**: candidates whose inputs are pieces (split / slice pieces along the last
   dimension, nested or not) of one tensor, two by two in graph order. That is vLLM's merged
   ``fused_qkv_a_proj`` layout; the pieces are traced back to their tensor without reading any
   split size from the pattern, so every model's latent sizes match.
2. **Any other independent pair**: each remaining candidate, in graph order, with the first
   later independent candidate. On HF's DeepSeek-V3 (``q_a_proj`` and ``kv_a_proj_with_mqa``
   are two Linears) that is the q/kv latent pair; on Qwen3 and Llama-like models with q/k norms,
   each layer's ``q_norm`` and ``k_norm``.

The fused node needs all four inputs before it and every user of both norms after it. When the
graph already allows that, it goes before the first user. Otherwise the pass makes room, and
declines when it cannot:

- **hoist**: if every node between the first user and the late input that the input needs is a
  pure view (``split``, ``getitem``, ``view``/``reshape``, ``slice``, ``permute``...), those
  views move up before the first user (HF's statement order on the merged layout: the kv split
  is written after ``q_b_proj`` consumed the q norm);
- **sink**: else the fused node goes right after the late input, and the nodes in between that
  consume either norm move down behind it, in their order (HF's stock layout: ``q_b_proj``
  runs before ``kv_a_proj_with_mqa``).

Either way, the pass declines when any node between the first user and the late input has
side effects, mutates an argument or draws random numbers: moving nodes across such a node
could change what it, or they, see.

Why it is never slower
----------------------
The fused op reads and writes exactly the bytes of the two norms and does their arithmetic;
where a provider has a one-launch kernel (Triton's, AITER's ``fused_qk_rmsnorm``) it saves one
launch per pair, and where none is chosen the ``native`` lowering inlines the two norms back
into the graph, as before. The rewrite adds no compute: it only moves nodes (views, which cost
nothing, or consumers of the norms, which run once either way, later) and adds ``getitem``\\s.
No collective, mutation or random op is reordered. What the pass cannot know is whether the
dual op's chosen kernel is as fast per byte as the single norm's: that is its priority list's
job (a dual kernel is only worth listing if it is).

Exact: ``dual_rms_norm`` is defined as the two norms (each in fp32, rounded once to its input's
dtype), so the rewritten graph computes bitwise the same values. Epsilons may differ. Norms with
``weight_bias != 0`` (Gemma's ``1 + weight``), a partial ``variance_size`` or no weight are not
paired: the op has no per-side ``weight_bias``, and the kernels implementing it have none either.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import torch
from torch import fx

import ir_core

from ..pattern import Call, Capture, Literal, Match, arguments, same_shape, value_of
from ..rewrite import FusionPass, NodeOrder, Replacement, Rule, apply_replacement

NAME = "dual_rms_norm"
ORDER = 20

_aten = torch.ops.aten
_ir = torch.ops.ir_core

#: One norm that may be half of a pair: plain weights (``weight_bias`` 0).
PATTERN = Call(
    _ir.rms_norm.default,
    bind="norm",
    x=Capture("x"),
    weight=Capture("weight"),
    epsilon=Capture("epsilon"),
    weight_bias=Literal(0.0),
    variance_size=Capture("variance_size"),
)


class Piece(NamedTuple):
    """``root[..., start:stop]`` along ``dim`` (the last one), as a split or slice makes it."""

    root: fx.Node
    dim: int
    start: int
    stop: int


def _rank(node: Any) -> int | None:
    value = value_of(node)
    return value.dim() if isinstance(value, torch.Tensor) else None


def _size(node: fx.Node, dim: int) -> int | None:
    value = value_of(node)
    size = value.shape[dim] if isinstance(value, torch.Tensor) else None
    return size if isinstance(size, int) else None  # symbolic widths are not split sizes


def _split_bounds(node: fx.Node, index: int) -> tuple[fx.Node, int, int, int] | None:
    """(source, dim, start, stop) of output ``index`` of a split node."""
    args = arguments(node)
    if args is None:
        return None
    source, dim, rank = args["self"], args["dim"], _rank(args["self"])
    if not isinstance(source, fx.Node) or rank is None or not isinstance(dim, int):
        return None
    dim %= rank
    if node.target is _aten.split_with_sizes.default:
        sizes = args["split_sizes"]
    else:  # aten.split.Tensor: equal chunks of split_size, the last one shorter
        total, step = _size(source, dim), args["split_size"]
        if total is None or not isinstance(step, int) or step <= 0:
            return None
        sizes = [min(step, total - i) for i in range(0, total, step)]
    if not all(isinstance(s, int) for s in sizes) or not 0 <= index < len(sizes):
        return None
    start = sum(sizes[:index])
    return source, dim, start, start + sizes[index]


def _slice_bounds(node: fx.Node) -> tuple[fx.Node, int, int, int] | None:
    """(source, dim, start, stop) of a unit-step ``aten.slice``."""
    args = arguments(node)
    source = args["self"] if args else None
    rank = _rank(source)
    if args is None or rank is None or args["step"] != 1 or not isinstance(args["dim"], int):
        return None
    dim = args["dim"] % rank
    total = _size(source, dim)
    start, stop = args["start"], args["end"]
    start = 0 if start is None else start
    stop = total if stop is None else stop
    if total is None or not isinstance(start, int) or not isinstance(stop, int):
        return None
    start, stop = (i + total if i < 0 else i for i in (start, stop))
    start, stop = min(max(start, 0), total), min(max(stop, 0), total)
    return source, dim, start, max(start, stop)


_SPLITS = (_aten.split_with_sizes.default, _aten.split.Tensor)


def piece_of(node: Any) -> Piece | None:
    """Which part of which tensor ``node`` is, along its last dimension; None if not a piece.

    Follows ``getitem(split…)`` and ``slice`` back through nested splits along the same
    dimension, so ``split(split(p, [q, kv])[1], [c, r])[0]`` is ``p[..., q:q + c]``.
    """
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return None
    bounds = None
    if node.target is operator.getitem:
        split, index = node.args
        if isinstance(split, fx.Node) and split.target in _SPLITS and isinstance(index, int):
            bounds = _split_bounds(split, index)
    elif node.target is _aten.slice.Tensor:
        bounds = _slice_bounds(node)
    if bounds is None:
        return None
    source, dim, start, stop = bounds
    rank = _rank(node)
    if rank is None or dim != rank - 1:
        return None
    parent = piece_of(source)
    if parent is not None and parent.dim == dim:
        return Piece(parent.root, dim, parent.start + start, parent.start + stop)
    return Piece(source, dim, start, stop)


def candidate(node: fx.Node) -> Match | None:
    """``node``'s match if it is a norm ``dual_rms_norm`` can compute, else None.

    Its weight is a 1-D tensor as wide as the input's last dimension, and the variance is
    taken over all of it (``dual_rms_norm`` has no ``variance_size``).
    """
    match = PATTERN(node)
    if match is None:
        return None
    x, weight = value_of(match["x"]), value_of(match["weight"])
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor) or x.dim() < 1:
        return None
    width = x.shape[-1]
    if not same_shape(weight, (width,)):
        return None
    if match["variance_size"] is not None and not same_shape((match["variance_size"],), (width,)):
        return None
    return match


def check(match: Match) -> bool:
    """Both halves are still candidates (the match was made from the current graph)."""
    return all(candidate(node) is not None for node in match.nodes)


def replace(match: Match) -> Replacement:
    first, second = match.nodes
    return Replacement(
        target=ir_core.get_op("dual_rms_norm").torch_op,
        args=(
            match["a"],
            match["a_weight"],
            match["b"],
            match["b_weight"],
            match["a_epsilon"],
            match["b_epsilon"],
        ),
        outputs={first: 0, second: 1},
        values=(value_of(first), value_of(second)),
    )


_RULE = Rule(PATTERN, check, replace, name="rms_norm, rms_norm (independent)")


def _pair(a: Match, b: Match) -> Match:
    pair = Match()
    for side, match in (("a", a), ("b", b)):
        pair[side] = match["x"]
        pair[f"{side}_weight"] = match["weight"]
        pair[f"{side}_epsilon"] = match["epsilon"]
        pair.nodes.append(match["norm"])
    return pair


class Ancestry:
    """Which candidate norms each candidate depends on, kept true as pairs are fused.

    One bit per candidate; ``depends[n]`` has the bits of the candidates ``n`` reads, directly
    or through any chain of nodes. Built in one walk of the graph. Fusing ``u`` and ``v`` makes
    everything downstream of either depend on everything upstream of both (the fused node reads
    both inputs), which :meth:`fuse` adds, so a later pair is tested against the graph as it is
    then, never one that would close a cycle through an earlier fused node.
    """

    __slots__ = ("bit", "depends")

    def __init__(self, graph: fx.Graph, norms: Iterable[fx.Node]) -> None:
        self.bit = {node: 1 << i for i, node in enumerate(norms)}
        self.depends: dict[fx.Node, int] = {}
        reads: dict[fx.Node, int] = {}  # bits of the candidates at or above each node
        for node in graph.nodes:
            above = 0
            for source in node.all_input_nodes:
                above |= reads.get(source, 0)
            if node in self.bit:
                self.depends[node] = above
                above |= self.bit[node]
            if above:
                reads[node] = above

    def independent(self, a: fx.Node, b: fx.Node) -> bool:
        return not (self.depends[a] & self.bit[b] or self.depends[b] & self.bit[a])

    def fuse(self, a: fx.Node, b: fx.Node) -> None:
        pair = self.bit[a] | self.bit[b]
        upstream = self.depends[a] | self.depends[b] | pair
        for node, depends in self.depends.items():
            if depends & pair:
                self.depends[node] = depends | upstream


def _movable(node: fx.Node) -> bool:
    """Pure and deterministic: moving it among its neighbours cannot change what it computes."""
    if node.op != "call_function":
        return node.op in ("placeholder", "get_attr")
    if getattr(node.target, "__module__", None) == "_operator":
        return True  # getitem, and arithmetic on sizes (SymInts) under dynamic shapes
    schema = getattr(node.target, "_schema", None)
    if schema is None or schema.is_mutable or node.is_impure():
        return False
    return torch.Tag.nondeterministic_seeded not in getattr(node.target, "tags", ())


def _is_view(node: fx.Node) -> bool:
    return node.op == "call_function" and (
        node.target is operator.getitem or getattr(node.target, "is_view", False)
    )


def _make_room(graph: fx.Graph, order: NodeOrder, pair: Match) -> bool:
    """Reorder ``graph`` so that the pair's inputs precede every user of both norms.

    Returns False (graph unchanged) when neither hoisting views nor sinking the norms' users
    can do it legally; see the module docstring.
    """
    norms = set(pair.nodes)
    users = [u for n in pair.nodes for u in n.users if u not in norms]
    inputs = [pair[k] for k in ("a", "a_weight", "b", "b_weight") if isinstance(pair[k], fx.Node)]
    if not users:
        return False
    first_user = min(users, key=order.__getitem__)
    last_input = max(inputs, key=order.__getitem__)
    if order[last_input] < order[first_user]:
        return True

    span = [first_user]  # the nodes from the first user up to (without) the last input
    while span[-1].next is not last_input:
        span.append(span[-1].next)
    if not all(_movable(n) for n in span):
        return False

    # hoist: what the inputs need from after the first user, if it is views only
    bound = order[first_user]
    late: set[fx.Node] = set()
    stack = [n for n in inputs if order[n] > bound]
    while stack:
        node = stack.pop()
        if node not in late:
            late.add(node)
            stack.extend(s for s in node.all_input_nodes if order[s] > bound)
    if all(_is_view(n) for n in late):
        _move(order, sorted(late, key=order.__getitem__), before=first_user)
        return True

    # sink: the consumers of either norm that run before the last input, behind it
    downstream = set(pair.nodes)
    moving = []
    for node in span:
        if any(s in downstream for s in node.all_input_nodes):
            downstream.add(node)
            moving.append(node)
    if any(s in downstream for s in last_input.all_input_nodes):
        return False  # a cycle: Ancestry rules such pairs out before they get here
    _move(order, moving, after=last_input)
    return True


def _move(
    order: NodeOrder,
    nodes: list[fx.Node],
    *,
    before: fx.Node | None = None,
    after: fx.Node | None = None,
) -> None:
    """Move ``nodes`` (in graph order) together, right before ``before`` or after ``after``."""
    for node in nodes:
        order.erased(node)
        if before is not None:
            before.prepend(node)
        else:
            after.append(node)
            after = node
        order.inserted(node)


class DualRmsNormPass(FusionPass):
    """Pairs independent norms (MLA pieces of one tensor first), making room where it must.

    A match spans two anchors chosen with the whole graph in view, and may move nodes first,
    so this pass overrides :meth:`rewrite` (not ``find``); its one rule is what it reports.
    """

    def rewrite(self, graph: fx.Graph) -> int:
        order = NodeOrder(graph)
        found = [(node, candidate(node)) for node in graph.nodes if node.op == "call_function"]
        norms = {node: match for node, match in found if match is not None}
        ancestry = Ancestry(graph, norms)
        paired: set[fx.Node] = set()
        count = 0
        for a, b in self._pairs(list(norms), ancestry, paired):
            pair = _pair(norms[a], norms[b])
            if not check(pair) or not _make_room(graph, order, pair):
                continue
            replacement = replace(pair)
            if apply_replacement(graph, replacement, pair.nodes, order) is None:
                continue
            ancestry.fuse(a, b)
            paired.update((a, b))
            count += 1
        return count

    def _pairs(
        self, norms: list[fx.Node], ancestry: Ancestry, paired: set[fx.Node]
    ) -> Iterator[tuple[fx.Node, fx.Node]]:
        """Pairs to try, in preference order; reads ``paired`` and ``ancestry`` as they change."""

        def free(a: fx.Node, b: fx.Node) -> bool:
            return a not in paired and b not in paired and ancestry.independent(a, b)

        by_root: dict[fx.Node, list[fx.Node]] = {}
        for norm in norms:
            piece = piece_of(arguments(norm)["x"])
            if piece is not None:
                by_root.setdefault(piece.root, []).append(norm)
        for pieces in by_root.values():
            for i, a in enumerate(pieces):
                b = next((b for b in pieces[i + 1 :] if free(a, b)), None)
                if b is not None:
                    yield a, b
        for i, a in enumerate(norms):
            b = next((b for b in norms[i + 1 :] if free(a, b)), None)
            if b is not None:
                yield a, b


dual_rms_norm_pass = DualRmsNormPass(
    NAME,
    [_RULE],
    order=ORDER,
    description="two independent rms_norm (MLA latents, q/k norms)  =>  dual_rms_norm",
)
