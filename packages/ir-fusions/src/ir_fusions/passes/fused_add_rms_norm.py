"""``s = x + residual; y = rms_norm(s, ...)``  ⇒  ``y, s = fused_add_rms_norm(x, residual, ...)``.

The residual stream of a pre-norm decoder: every layer adds its output to the residual and
normalizes the sum for the next block; the sum itself travels on to the next add. The fused op
returns both, so ``s``'s other users read its second output.

When the rewrite is exact, and when it is within tolerance
-----------------------------------------------------------
Let ``D`` be the dtype of ``s`` (torch's promotion of the two addends). The fused op adds in
fp32, returns ``residual_out`` in ``residual``'s dtype and normalizes the *fp32* sum, returning
``out`` in ``x``'s dtype. The pass rewrites only when that reproduces the unfused graph:

- ``D`` is fp32, fp16 or bf16 (the fused op computes in fp32, so an fp64 sum would lose bits),
  the addends have ``s``'s shape (no broadcasting), and the addend that becomes ``x`` has dtype
  ``D`` (so ``out`` has the unfused output's dtype). Addition commutes exactly, so either addend
  may be ``x``.
- If ``s`` has users besides the norm, both addends have dtype ``D`` (so ``residual_out`` has
  ``s``'s dtype). Otherwise the other addend may be narrower (an fp32 ``x`` plus a bf16
  residual): widening it to fp32 is exact, as it is in ``aten.add``.

Then, for ``D = fp32``, both outputs are bitwise identical to the unfused graph: ``aten.add``
already summed in fp32 and the norm code is the same.

For ``D = fp16/bf16`` (both addends are ``D``), ``residual_out`` is bitwise identical:
``aten.add`` also sums in fp32 and rounds once. ``out`` is not: the unfused norm reads ``s``
*rounded* to ``D``, the fused op reads the fp32 sum (what fused kernels do, and docs/contract.md's
"rounded once"). Rounding ``s`` moves each element by at most half an ulp of ``D``; the
normalized value moves by about as much, so the two outputs differ by at most one ulp of ``D``
(2^-10 relative for fp16, 2^-7 for bf16), inside the op's tolerance (rtol 1e-3 and 1.6e-2).
We take that: it is the whole point of the fusion, and every fused kernel (vLLM's, FlashInfer's)
makes the same trade. A graph that must stay bitwise can disable the pass by name
(``IR_CORE_FUSIONS=-fused_add_rms_norm``).

Any ``epsilon``, ``weight_bias``, ``variance_size`` and weight dtype: the fused op takes the
same parameters with the same meaning, so they are carried over unchanged.
"""

from __future__ import annotations

import torch

import ir_core

from ..pattern import Call, Capture, Literal, Match, same_shape, value_of
from ..rewrite import FusionPass, Replacement, Rule

NAME = "fused_add_rms_norm"
#: First: the all-reduce pass matches the fused add this one produces.
ORDER = 10

_aten = torch.ops.aten
_ir = torch.ops.ir_core

#: Dtypes whose sum the fused op reproduces (its arithmetic is fp32).
SUM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

PATTERN = Call(
    _ir.rms_norm.default,
    bind="norm",
    x=Call(
        _aten.add.Tensor,
        bind="sum",
        self=Capture("a"),
        other=Capture("b"),
        alpha=Literal(1),
    ),
    weight=Capture("weight"),
    epsilon=Capture("epsilon"),
    weight_bias=Capture("weight_bias"),
    variance_size=Capture("variance_size"),
)


def check(match: Match) -> bool:
    """Decide which addend is ``x`` (binds ``x`` and ``residual``); see the module docstring."""
    s, a, b = value_of(match["sum"]), value_of(match["a"]), value_of(match["b"])
    if not all(isinstance(v, torch.Tensor) for v in (s, a, b)):
        return False  # a Python scalar addend, or a node without example value
    if s.dtype not in SUM_DTYPES or not (same_shape(a, s) and same_shape(b, s)):
        return False
    shared = len(match["sum"].users) > 1
    for x, residual in ((match["a"], match["b"]), (match["b"], match["a"])):
        x_dtype, r_dtype = value_of(x).dtype, value_of(residual).dtype
        if x_dtype == s.dtype and (r_dtype == s.dtype or not shared):
            if not value_of(residual).is_floating_point():
                return False
            match["x"], match["residual"] = x, residual
            return True
    return False


def replace(match: Match) -> Replacement:
    norm, s = match["norm"], match["sum"]
    outputs: dict = {norm: 0}
    residual_out = value_of(s)
    if len(s.users) > 1:
        outputs[s] = 1
    else:
        residual_out = torch.empty_like(residual_out, dtype=value_of(match["residual"]).dtype)
    return Replacement(
        target=ir_core.get_op("fused_add_rms_norm").torch_op,
        args=(
            match["x"],
            match["residual"],
            match["weight"],
            match["epsilon"],
            match["weight_bias"],
            match["variance_size"],
        ),
        outputs=outputs,
        values=(value_of(norm), residual_out),
    )


fused_add_rms_norm_pass = FusionPass(
    NAME,
    [Rule(PATTERN, check, replace, name="add -> rms_norm")],
    order=ORDER,
    description="x + residual -> rms_norm  =>  fused_add_rms_norm (residual stream kept)",
)
