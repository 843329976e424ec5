"""``supports_args`` of every provider under compilation: FakeTensors and symbolic shapes.

ir-core's lowering pass asks the predicates about a graph's fake values. They must answer with a
plain bool and must not specialize the graph: reading a symbolic token count as an int would
add a guard and recompile the model for every batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx

from ir_provider_cuda import (
    flashinfer_activation,
    flashinfer_lib,
    flashinfer_norm,
    flashinfer_rotary,
    liger_norm,
    quack_norm,
    torch_fused_norm,
    triton_norm,
)

EPS = 1e-6
RMS_PREDICATES = {
    "triton": triton_norm.rms_norm_supports,
    "flashinfer": flashinfer_norm.rms_norm_supports,
    "torch_fused": torch_fused_norm.rms_norm_supports,
    "quack": quack_norm.rms_norm_supports,
    "liger": liger_norm.rms_norm_supports,
}
FUSED_PREDICATES = {
    "triton": triton_norm.fused_add_rms_norm_supports,
    "flashinfer": flashinfer_norm.fused_add_rms_norm_supports,
    "quack": quack_norm.fused_add_rms_norm_supports,
}
#: Declined on a symbolic H, deliberately, because what the kernel needs cannot be shown for an
#: unknown H (a static H, the usual case even under dynamic shapes, is accepted): liger's
#: Triton block must hold the row (H <= 64K); quack compiles per H and needs H a multiple of
#: its vector; FlashInfer's activations before 0.7.1 need d a multiple of 16 bytes.
DECLINED_ON_SYMBOLIC_H = {"rms_norm:liger", "rms_norm:quack", "fused_add_rms_norm:quack"}
if not flashinfer_lib.relaxed_activations():
    DECLINED_ON_SYMBOLIC_H.add("silu_and_mul:flashinfer")


def _symbolic(fn: Callable[..., None], *example: torch.Tensor) -> list[str]:
    """Trace ``fn`` with every dim symbolic; return the guards the trace added."""
    gm = make_fx(fn, tracing_mode="symbolic")(*example)
    return [str(guard.expr) for guard in gm.shape_env.guards]


def test_plain_bool_on_fake_tensors() -> None:
    with FakeTensorMode():
        x, w = torch.empty(8, 4096, dtype=torch.bfloat16), torch.empty(4096, dtype=torch.bfloat16)
        for name, predicate in RMS_PREDICATES.items():
            assert predicate(x, w, EPS) is True, name
        for name, predicate in FUSED_PREDICATES.items():
            assert predicate(x, x, w, EPS) is True, name
        assert flashinfer_activation.silu_and_mul_supports(x) is True
        assert triton_norm.dual_rms_norm_supports(x, w, x[:, :512], w[:512], EPS, EPS) is True


@pytest.mark.parametrize("shape", [(8, 4096), (2, 8, 4096), (4, 2, 8, 4096)])
def test_symbolic_shapes_add_no_guards(shape: tuple[int, ...]) -> None:
    answers: dict[str, Any] = {}

    def trace(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        for name, predicate in RMS_PREDICATES.items():
            answers[f"rms_norm:{name}"] = predicate(x, w, EPS)
        for name, predicate in FUSED_PREDICATES.items():
            answers[f"fused_add_rms_norm:{name}"] = predicate(x, x, w, EPS)
        answers["dual_rms_norm:triton"] = triton_norm.dual_rms_norm_supports(x, w, x, w, EPS, EPS)
        scale = torch.ones(1)
        answers["rms_norm_fp8_quant_static:flashinfer"] = (
            flashinfer_norm.rms_norm_fp8_quant_static_supports(x, w, EPS, scale)
        )
        answers["silu_and_mul:flashinfer"] = flashinfer_activation.silu_and_mul_supports(x)
        return x

    example = torch.empty(shape, dtype=torch.bfloat16), torch.empty(4096, dtype=torch.bfloat16)
    guards = _symbolic(trace, *example)
    assert guards == [], f"predicates specialized the graph: {guards}"
    declined = {name for name, answer in answers.items() if answer is not True}
    assert declined == DECLINED_ON_SYMBOLIC_H, answers


def test_rotary_predicate_adds_no_guards() -> None:
    """Symbolic tokens and heads; the cache is a constant of the model (static rot_dim)."""
    answers: list[bool] = []
    cache = torch.empty(64, 128)

    def trace(pos: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        answers.append(flashinfer_rotary.rotary_embedding_supports(pos, q, k, 128, cache, True))
        return q

    example = (
        torch.arange(5),
        torch.empty(5, 4 * 128, dtype=torch.bfloat16),
        torch.empty(5, 128, dtype=torch.bfloat16),
    )
    assert _symbolic(trace, *example) == []
    assert answers == [True]


def test_symbolic_strided_rows_are_decided_conservatively() -> None:
    """A column slice with a symbolic row stride: triton (any stride) still accepts it;
    flashinfer cannot prove the stride aligned and declines rather than guess. Neither adds a
    guard (the slicing itself does, so guards are counted around the predicates only)."""
    answers: dict[str, Any] = {}
    added: list[str] = []

    def trace(buf: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = buf[:, : w.shape[0]]
        shape_env = x.shape[0].node.shape_env
        before = len(shape_env.guards)
        answers["triton"] = triton_norm.rms_norm_supports(x, w, EPS)
        answers["flashinfer"] = flashinfer_norm.rms_norm_supports(x, w, EPS)
        added.extend(str(g.expr) for g in shape_env.guards[before:])
        return x

    make_fx(trace, tracing_mode="symbolic")(
        torch.empty(8, 4160, dtype=torch.bfloat16), torch.empty(4096, dtype=torch.bfloat16)
    )
    assert answers == {"triton": True, "flashinfer": False}
    assert added == [], added
