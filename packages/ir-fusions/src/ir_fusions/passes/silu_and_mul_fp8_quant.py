"""``fp8_quant_static(silu_and_mul(x), scale)``  ⇒  ``silu_and_mul_fp8_quant_static(x, scale)``.

A SwiGLU MLP of an fp8 checkpoint quantizes the activation before the down projection with the
layer's static input scale. The pass matches any ``scale`` and fp8 ``dtype`` when the
activation is read by the quant alone (otherwise it would be computed twice).

Exact for fp32 ``x`` (and fp64): both compute ``silu(gate) * up`` in fp32, the unfused graph
then rounds it to fp32 (a no-op) before quantizing, so the codes are bitwise equal. For
fp16/bf16 ``x`` the unfused product is rounded to x's dtype first (half an ulp: 2^-11 / 2^-8
relative) and the fused op quantizes the fp32 product: codes differ by at most one fp8 step
(2^-3 relative) where they differ, the op's declared tolerance. Disable by name
(``IR_CORE_FUSIONS=-silu_and_mul_fp8_quant``) where a graph must stay bitwise.
"""

from __future__ import annotations

import torch

import ir_core

from ..pattern import Call, Capture, Match, is_float_tensor, value_of
from ..rewrite import FusionPass, Replacement, Rule

NAME = "silu_and_mul_fp8_quant"
ORDER = 40

_ir = torch.ops.ir_core

PATTERN = Call(
    _ir.fp8_quant_static.default,
    bind="quant",
    x=Call(_ir.silu_and_mul.default, bind="act", single_user=True, x=Capture("x")),
    scale=Capture("scale"),
    dtype=Capture("dtype"),
)


def check(match: Match) -> bool:
    return is_float_tensor(value_of(match["x"])) and isinstance(match["dtype"], torch.dtype)


def replace(match: Match) -> Replacement:
    quant = match["quant"]
    return Replacement(
        target=ir_core.get_op("silu_and_mul_fp8_quant_static").torch_op,
        args=(match["x"], match["scale"], match["dtype"]),
        outputs={quant: None},
        values=(value_of(quant),),
    )


silu_and_mul_fp8_quant_pass = FusionPass(
    NAME,
    [Rule(PATTERN, check, replace, name="silu_and_mul -> static")],
    order=ORDER,
    description="silu_and_mul -> fp8_quant_static  =>  silu_and_mul_fp8_quant_static",
)
