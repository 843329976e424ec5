"""All-reduce followed by a norm  ⇒  one fused all-reduce + norm op.

Under tensor parallelism a row-parallel linear (attention's o_proj, the MLP's down_proj) leaves
a partial sum on every rank; the sum is all-reduced and goes straight into the next RMSNorm,
with or without the residual add. Post-grad FX graphs hold the all-reduce as torch's functional
collective (what ``torch.distributed._functional_collectives.all_reduce`` traces to in torch
2.13)::

    t = _c10d_functional.all_reduce(x, "sum", group_name)
    h = _c10d_functional.wait_tensor(t)

Rules (any ``epsilon``, ``weight_bias`` such as Gemma's 1.0, ``variance_size`` and weight
dtype, since the fused ops take the same norm parameters):

- ``rms_norm(h, …)`` ⇒ ``out, h = all_reduce_rms_norm(x, group_name, …)``; other users of ``h``
  (the first layer's residual stream) read the second output.
- ``fused_add_rms_norm(h, residual, …)`` ⇒ ``all_reduce_fused_add_rms_norm(x, residual,
  group_name, …)``, and with ``h`` as the *residual* argument when both have one dtype (the
  fp32 sum is commutative, the output dtypes then agree). ``h`` must have no other user: the
  fused op does not return it. Run after ``fused_add_rms_norm``, which turns ``h + residual →
  rms_norm`` into the fused add this rule matches.

Exact: the fused ops' native semantics *is* the same functional all-reduce followed by the same
norm op, so the rewritten graph computes bitwise what the unfused one did. How a kernel sums
across ranks (FlashInfer in fp32) is that kernel's tolerance against native, not this pass's.
Only ``"sum"`` reductions with a group given by name are matched.
"""

from __future__ import annotations

import torch

import ir_core

from ..collective_norms import ALL_REDUCE_FUSED_ADD_RMS_NORM, ALL_REDUCE_RMS_NORM
from ..pattern import Call, Capture, Match, Pattern, is_float_tensor, value_of
from ..rewrite import FusionPass, Replacement, Rule

NAME = "all_reduce_rms_norm"
#: After ``fused_add_rms_norm`` (order 10), whose output it matches.
ORDER = 30

_ir = torch.ops.ir_core
_c10d = torch.ops._c10d_functional

_NORM_PARAMS = {
    "weight": Capture("weight"),
    "epsilon": Capture("epsilon"),
    "weight_bias": Capture("weight_bias"),
    "variance_size": Capture("variance_size"),
}


def _reduced(*, sole_user: bool) -> Pattern:
    """``wait_tensor(all_reduce(input, reduce_op, group_name))``."""
    return Call(
        _c10d.wait_tensor.default,
        bind="wait",
        single_user=sole_user,
        tensor=Call(
            _c10d.all_reduce.default,
            bind="all_reduce",
            single_user=True,  # an all-reduce is read only through its wait
            input=Capture("input"),
            reduce_op=Capture("reduce_op"),
            group_name=Capture("group_name"),
        ),
    )


NORM_PATTERN = Call(_ir.rms_norm.default, bind="norm", x=_reduced(sole_user=False), **_NORM_PARAMS)
FUSED_ADD_PATTERN = Call(
    _ir.fused_add_rms_norm.default,
    bind="norm",
    x=_reduced(sole_user=True),
    residual=Capture("residual"),
    **_NORM_PARAMS,
)
#: The reduced tensor passed as ``residual``, the other addend as ``x``.
FUSED_ADD_SWAPPED_PATTERN = Call(
    _ir.fused_add_rms_norm.default,
    bind="norm",
    x=Capture("residual"),
    residual=_reduced(sole_user=True),
    **_NORM_PARAMS,
)


def check(match: Match) -> bool:
    """A sum over a group given by name, of a floating tensor."""
    return (
        isinstance(match["reduce_op"], str)
        and match["reduce_op"].lower() == "sum"
        and isinstance(match["group_name"], str)
        and is_float_tensor(value_of(match["input"]))
    )


def check_swapped(match: Match) -> bool:
    """As :func:`check`, and ``x`` and the reduced tensor share a dtype (outputs keep theirs)."""
    residual, reduced = value_of(match["residual"]), value_of(match["wait"])
    return (
        check(match)
        and isinstance(residual, torch.Tensor)
        and isinstance(reduced, torch.Tensor)
        and residual.dtype == reduced.dtype
    )


def _norm_args(match: Match) -> tuple:
    return (match["weight"], match["epsilon"], match["weight_bias"], match["variance_size"])


def replace_norm(match: Match) -> Replacement:
    norm, wait = match["norm"], match["wait"]
    outputs: dict = {norm: 0}
    if len(wait.users) > 1:
        outputs[wait] = 1
    return Replacement(
        target=ir_core.get_op(ALL_REDUCE_RMS_NORM).torch_op,
        args=(match["input"], match["group_name"], *_norm_args(match)),
        outputs=outputs,
        values=(value_of(norm), value_of(wait)),
    )


def replace_fused_add(match: Match) -> Replacement:
    norm = match["norm"]
    return Replacement(
        target=ir_core.get_op(ALL_REDUCE_FUSED_ADD_RMS_NORM).torch_op,
        args=(match["input"], match["residual"], match["group_name"], *_norm_args(match)),
        outputs={norm: None},
        values=tuple(value_of(norm)),
    )


all_reduce_rms_norm_pass = FusionPass(
    NAME,
    [
        Rule(NORM_PATTERN, check, replace_norm, name="all_reduce -> rms_norm"),
        Rule(FUSED_ADD_PATTERN, check, replace_fused_add, name="all_reduce -> fused_add"),
        Rule(
            FUSED_ADD_SWAPPED_PATTERN,
            check_swapped,
            replace_fused_add,
            name="all_reduce as residual -> fused_add",
        ),
    ],
    order=ORDER,
    description=(
        "all_reduce -> rms_norm / fused_add_rms_norm  =>  "
        "all_reduce_rms_norm / all_reduce_fused_add_rms_norm"
    ),
)
