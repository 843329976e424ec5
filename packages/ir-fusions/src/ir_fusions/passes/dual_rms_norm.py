"""Two ``rms_norm`` of pieces of one tensor  ⇒  ``dual_rms_norm`` (one launch for both).

MLA (DeepSeek-V2/V3, Kimi-K2) projects the hidden state once and splits the result into the q
latent and the kv latent (and the rope part ``k_pe``), then normalizes both latents::

    q_c, kv_lora = proj.split([q_dim, kv_dim], -1)        # or one split into three
    kv_c, k_pe = kv_lora.split([kv_c_dim, k_pe_dim], -1)   # or slices
    q = rms_norm(q_c, q_w, eps_q); kv = rms_norm(kv_c, kv_w, eps_kv)

No split size is written in the pattern: each norm's input is traced back through
``split_with_sizes`` / ``split`` / ``slice`` (and ``getitem``) to the tensor it is a piece of
along the last dimension, and the piece's width must equal its norm's weight length. So any
model's latent sizes match, nested splits and one split into three alike, and a piece whose
width does not fit its weight is left alone.

Exact: ``dual_rms_norm`` is defined as the two norms (each in fp32, rounded once to its input's
dtype), so the rewritten graph computes bitwise the same values. It has no ``weight_bias`` or
``variance_size`` and needs both weights, so norms with ``weight_bias != 0``, a partial
``variance_size`` or no weight are not paired. Epsilons may differ.
"""

from __future__ import annotations

import operator
from collections.abc import Container, Iterator
from typing import Any, NamedTuple

import torch
from torch import fx

import ir_core

from ..pattern import Call, Capture, Literal, Match, arguments, same_shape, value_of
from ..rewrite import FusionPass, Replacement, Rule

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


def _norm_of_piece(node: fx.Node) -> tuple[Match, Piece] | None:
    match = PATTERN(node)
    if match is None:
        return None
    piece = piece_of(match["x"])
    return (match, piece) if piece is not None else None


def check(match: Match) -> bool:
    """Both norms have a 1-D weight as wide as their piece, and use all of it for the variance."""
    for side in ("a", "b"):
        width = match[f"{side}_width"]
        weight = value_of(match[f"{side}_weight"])
        if not isinstance(weight, torch.Tensor) or not same_shape(weight, (width,)):
            return False
        if match[f"{side}_variance_size"] not in (None, width):
            return False
    return True


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


_RULE = Rule(PATTERN, check, replace, name="split -> rms_norm, rms_norm")


class DualRmsNormPass(FusionPass):
    """Pairs norms whose inputs are pieces of the same tensor, in graph order."""

    def find(self, graph: fx.Graph, gone: Container[fx.Node]) -> Iterator[tuple[Rule, Match]]:
        by_root: dict[fx.Node, list[tuple[Match, Piece]]] = {}
        for node in graph.nodes:
            found = _norm_of_piece(node) if node.op == "call_function" else None
            if found is not None:
                by_root.setdefault(found[1].root, []).append(found)
        for candidates in by_root.values():
            for (a, a_piece), (b, b_piece) in zip(candidates[0::2], candidates[1::2]):
                if a["norm"] in gone or b["norm"] in gone:
                    continue
                yield _RULE, _pair(a, a_piece, b, b_piece)


def _pair(a: Match, a_piece: Piece, b: Match, b_piece: Piece) -> Match:
    pair = Match()
    for side, match, piece in (("a", a, a_piece), ("b", b, b_piece)):
        pair[side] = match["x"]
        pair[f"{side}_weight"] = match["weight"]
        pair[f"{side}_epsilon"] = match["epsilon"]
        pair[f"{side}_variance_size"] = match["variance_size"]
        pair[f"{side}_width"] = piece.stop - piece.start
        pair.nodes.append(match["norm"])
    return pair


dual_rms_norm_pass = DualRmsNormPass(
    NAME,
    [_RULE],
    order=ORDER,
    description="split -> two rms_norm (MLA q/kv latents)  =>  dual_rms_norm",
)
