"""A norm whose only reader quantizes it to fp8  ⇒  one fused norm + quant op.

FP8 checkpoints quantize the input of every linear layer, so each attention and MLP input is
``rms_norm`` (or the residual stream's ``fused_add_rms_norm``) followed by a quant::

    q = fp8_quant_static(rms_norm(x, w, eps), scale)                  # per-tensor scale
    q, s = fp8_quant_dynamic(rms_norm(x, w, eps), per_token=True)     # per-token scale
    q, s = fp8_quant_group(rms_norm(x, w, eps), 128)                  # DeepSeek's 1x128 blocks
    out, residual = fused_add_rms_norm(x, residual, w, eps); q = fp8_quant_static(out, scale)

Two passes, each enabled by name:

- ``rms_norm_fp8_quant``: ``rms_norm`` then ``fp8_quant_static`` / ``fp8_quant_dynamic``
  (per token) / ``fp8_quant_group`` ⇒ ``rms_norm_fp8_quant_static`` / ``_dynamic`` / ``_group``.
- ``fused_add_rms_norm_fp8_quant``: ``fused_add_rms_norm``'s normalized output then
  ``fp8_quant_static`` / ``fp8_quant_dynamic`` (per token) ⇒
  ``fused_add_rms_norm_fp8_quant_static`` / ``_dynamic``; readers of ``residual_out`` read the
  fused op's. Ordered after ``fused_add_rms_norm`` (which makes the fused add this pass
  matches) and after ``all_reduce_rms_norm`` (which also consumes fused adds: saving a
  cross-GPU round trip is worth more than saving one pass over the activations).

Any ``epsilon``, ``weight_bias`` (Gemma's 1.0), weight (or none), fp8 ``dtype``, ``scale``,
``scale_ub``, group size and scale layout: the fused ops take the same parameters with the same
meaning, so they are carried over. Not fused: a norm with a partial ``variance_size`` (the
fused ops have none), a norm output read by anything but the quant (the norm would have to run
twice), a per-tensor dynamic quant (no fused op: its scale needs the whole tensor first), and
group quant after a fused add (no such fused op).

When the rewrite is exact, and by how much it may differ
--------------------------------------------------------
The unfused graph rounds the norm to x's dtype and quantizes that; the fused op quantizes the
fp32 norm (ir-core's contract for fused quant ops: one rounding, what fused kernels do).

- fp32 ``x`` (and fp64): the rounding is exact, so codes, scales and ``residual_out`` are
  bitwise those of the unfused graph.
- fp16/bf16 ``x``: the unfused norm moves each value by at most half an ulp of x's dtype
  (2^-11 / 2^-8 relative). An fp8 step is 2^-3 relative, so a code moves across at most one
  rounding boundary: codes differ by at most one fp8 step where they differ. Dynamic and group
  scales (from the amax) differ by at most that half ulp, relative; with ``scale_ue8m0`` a group
  whose ``amax / fmax`` lies that close to a power of two may get the neighbouring power of two,
  its codes halved or doubled with it, and dequantized values still within one fp8 step.
  ``residual_out`` is bitwise equal. This is the op's declared tolerance (dequantized values
  within one fp8 step); disable a pass by name (``IR_CORE_FUSIONS=-rms_norm_fp8_quant``) where
  a graph must stay bitwise.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

import ir_core

from ..pattern import Call, Capture, Literal, Match, Pattern, is_float_tensor, value_of
from ..rewrite import FusionPass, Replacement, Rule

RMS_NORM_NAME = "rms_norm_fp8_quant"
FUSED_ADD_NAME = "fused_add_rms_norm_fp8_quant"
#: After fused_add_rms_norm (10), dual_rms_norm (20) and all_reduce_rms_norm (30).
ORDER = 40

_ir = torch.ops.ir_core

_NORM_PARAMS = {
    "x": Capture("x"),
    "weight": Capture("weight"),
    "epsilon": Capture("epsilon"),
    "weight_bias": Capture("weight_bias"),
    "variance_size": Literal(None),
}

#: ``rms_norm(x, ...)`` read by the quant alone.
RMS_NORM = Call(_ir.rms_norm.default, bind="norm", single_user=True, **_NORM_PARAMS)
#: ``fused_add_rms_norm(x, residual, ...)[0]``, read by the quant alone.
FUSED_ADD_OUT = Call(
    operator.getitem,
    bind="out",
    single_user=True,
    input=Call(
        _ir.fused_add_rms_norm.default, bind="norm", residual=Capture("residual"), **_NORM_PARAMS
    ),
    index=Literal(0),
)


def static(source: Pattern) -> Call:
    return Call(
        _ir.fp8_quant_static.default,
        bind="quant",
        x=source,
        scale=Capture("scale"),
        dtype=Capture("dtype"),
    )


def per_token(source: Pattern) -> Call:
    return Call(
        _ir.fp8_quant_dynamic.default,
        bind="quant",
        x=source,
        per_token=Literal(True),
        scale_ub=Capture("scale_ub"),
        dtype=Capture("dtype"),
    )


def group(source: Pattern) -> Call:
    return Call(
        _ir.fp8_quant_group.default,
        bind="quant",
        x=source,
        group_size=Capture("group_size"),
        column_major_scales=Capture("column_major_scales"),
        scale_ue8m0=Capture("scale_ue8m0"),
        dtype=Capture("dtype"),
    )


def check(match: Match) -> bool:
    """A floating input and an fp8 dtype given as a dtype (the fused op validates the rest)."""
    return is_float_tensor(value_of(match["x"])) and isinstance(match["dtype"], torch.dtype)


def _getitems(node: Any) -> dict[Any, int] | None:
    """``{getitem node: index}`` for every user of a tuple-valued node; None if another kind
    of user reads it."""
    found = {}
    for user in node.users:
        if user.target is not operator.getitem or not isinstance(user.args[1], int):
            return None
        found[user] = user.args[1]
    return found


def check_fused_add(match: Match) -> bool:
    """As :func:`check`, and the fused add is read only through ``getitem`` (its ``out`` by the
    quant, its ``residual_out`` by anyone); binds the ``residual_out`` readers."""
    readers = _getitems(match["norm"])
    if not check(match) or readers is None or not is_float_tensor(value_of(match["residual"])):
        return False
    match["residual_outs"] = [node for node, index in readers.items() if index == 1]
    return all(index == 1 or node is match["out"] for node, index in readers.items())


def check_fused_add_dynamic(match: Match) -> bool:
    """As :func:`check_fused_add`, and the quant's ``(q, scale)`` read through ``getitem``."""
    readers = _getitems(match["quant"])
    if readers is None or not check_fused_add(match):
        return False
    match["quant_outs"] = readers
    return True


def _norm_args(match: Match) -> tuple[Any, ...]:
    return (match["x"], match["weight"], match["epsilon"])


def _replace_whole(op_name: str, args: tuple[Any, ...], match: Match) -> Replacement:
    """The fused op returns what the quant returned (q, or (q, scale)): it replaces it whole."""
    quant = match["quant"]
    value = value_of(quant)
    return Replacement(
        target=ir_core.get_op(op_name).torch_op,
        args=args,
        outputs={quant: None},
        values=tuple(value) if isinstance(value, (tuple, list)) else (value,),
    )


def replace_rms_norm_static(match: Match) -> Replacement:
    args = (*_norm_args(match), match["scale"], match["weight_bias"], match["dtype"])
    return _replace_whole("rms_norm_fp8_quant_static", args, match)


def replace_rms_norm_dynamic(match: Match) -> Replacement:
    args = (*_norm_args(match), match["weight_bias"], match["scale_ub"], match["dtype"])
    return _replace_whole("rms_norm_fp8_quant_dynamic", args, match)


def replace_rms_norm_group(match: Match) -> Replacement:
    args = (
        *_norm_args(match),
        match["group_size"],
        match["weight_bias"],
        match["column_major_scales"],
        match["scale_ue8m0"],
        match["dtype"],
    )
    return _replace_whole("rms_norm_fp8_quant_group", args, match)


def replace_fused_add_static(match: Match) -> Replacement:
    x, weight, epsilon = _norm_args(match)
    args = (x, match["residual"], weight, epsilon, match["scale"])
    outputs: dict[Any, int | None] = {match["quant"]: 0}
    outputs.update(dict.fromkeys(match["residual_outs"], 1))
    return Replacement(
        target=ir_core.get_op("fused_add_rms_norm_fp8_quant_static").torch_op,
        args=(*args, match["weight_bias"], match["dtype"]),
        outputs=outputs,
        values=(value_of(match["quant"]), value_of(match["norm"])[1]),
    )


def replace_fused_add_dynamic(match: Match) -> Replacement:
    x, weight, epsilon = _norm_args(match)
    args = (x, match["residual"], weight, epsilon, match["weight_bias"], match["scale_ub"])
    outputs: dict[Any, int | None] = dict(match["quant_outs"])  # q -> 0, scale -> 1
    outputs.update(dict.fromkeys(match["residual_outs"], 2))
    return Replacement(
        target=ir_core.get_op("fused_add_rms_norm_fp8_quant_dynamic").torch_op,
        args=(*args, match["dtype"]),
        outputs=outputs,
        values=(*value_of(match["quant"]), value_of(match["norm"])[1]),
    )


rms_norm_fp8_quant_pass = FusionPass(
    RMS_NORM_NAME,
    [
        Rule(static(RMS_NORM), check, replace_rms_norm_static, name="rms_norm -> static"),
        Rule(per_token(RMS_NORM), check, replace_rms_norm_dynamic, name="rms_norm -> per token"),
        Rule(group(RMS_NORM), check, replace_rms_norm_group, name="rms_norm -> group"),
    ],
    order=ORDER,
    description="rms_norm -> fp8_quant_static / _dynamic (per token) / _group  =>  "
    "rms_norm_fp8_quant_*",
)

fused_add_rms_norm_fp8_quant_pass = FusionPass(
    FUSED_ADD_NAME,
    [
        Rule(
            static(FUSED_ADD_OUT),
            check_fused_add,
            replace_fused_add_static,
            name="fused_add_rms_norm -> static",
        ),
        Rule(
            per_token(FUSED_ADD_OUT),
            check_fused_add_dynamic,
            replace_fused_add_dynamic,
            name="fused_add_rms_norm -> per token",
        ),
    ],
    order=ORDER,
    description="fused_add_rms_norm -> fp8_quant_static / _dynamic (per token)  =>  "
    "fused_add_rms_norm_fp8_quant_*",
)
