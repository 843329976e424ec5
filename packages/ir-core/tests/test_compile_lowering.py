"""The lowering pass on FX graphs, without a full Inductor compile.

Graphs are made with ``make_fx`` (symbolic token count) calling ``torch.ops.ir_core.*``
directly: the same ATen-level graph, with the same ``meta["val"]``, that Inductor's post-grad
passes receive, at a fraction of the cost of going through Dynamo.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import ir_core
from ir_core import library
from ir_core.compile import compile_report
from ir_core.compile.graph import is_ir_node
from ir_core.compile.lowering import lower
from ir_core.compile.pipeline import run_passes
from ir_core.compile.selection import LoweringError

IR = torch.ops.ir_core
H = 64


class VectorNormProvider:
    """A CPU provider whose kernels compute the norms differently from native: the RMS as
    ``||x|| / sqrt(n)`` with ``torch.linalg.vector_norm``, divided out rather than multiplied
    by ``rsqrt``. It counts calls and records the types of the sizes its predicate saw."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.seen_sizes: list[type] = []

    def rms_norm(
        self,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        self.calls += 1
        return _vector_norm_rms(x.float(), weight, epsilon, weight_bias, variance_size).to(x.dtype)

    def supports(self, x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
        self.seen_sizes.extend(type(s) for s in x.shape)
        return x.shape[0] % 8 == 0  # would be a guard on s0 if evaluated symbolically

    def hooks(self) -> dict:
        def register_impls(registry: ir_core.Registry) -> None:
            registry.register_impl(
                "rms_norm",
                self.name,
                _typed(self.rms_norm),
                device_types=("cpu",),
                supports_args=self.supports,
            )

        return {"register_impls": register_impls}


def _vector_norm_rms(xf, weight, epsilon, weight_bias, variance_size):
    xv = xf if variance_size is None else xf[..., :variance_size]
    rms = torch.linalg.vector_norm(xv, dim=-1, keepdim=True) / math.sqrt(xv.shape[-1])
    out = xf / torch.sqrt(rms * rms + epsilon)
    return out if weight is None else out * (weight.float() + weight_bias)


def _typed(method):
    """A plain function with the op's annotations (bound methods carry ``self``)."""

    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return method(x, weight, epsilon, weight_bias, variance_size)

    return rms_norm


@pytest.fixture
def provider(plugin) -> Iterator[VectorNormProvider]:
    p = VectorNormProvider("vecnorm_lowering_test")
    plugin(name=p.name, **p.hooks())
    yield p


def _trace(fn, *args) -> torch.fx.GraphModule:
    """``fn``'s ATen graph with a symbolic token count, as the post-grad passes see it."""
    return make_fx(fn, tracing_mode="symbolic")(*args)


def _ir_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if is_ir_node(n)]


def _inputs(tokens: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, H, generator=g)
    r = torch.randn(tokens, H, generator=g)
    w = torch.randn(H, generator=g) * 0.1 + 1
    return x, r, w


def _layered(x, r, w):
    """Three layers of add -> rms_norm, plus a fused add whose two outputs are both used."""
    for _ in range(3):
        x = IR.rms_norm(x + r, w, 1e-6) * 2
    out, res = IR.fused_add_rms_norm(x, r, w, 1e-5, 1.0)
    return out + res


def _reference(x, r, w):
    native = ir_core.get_op("rms_norm").native
    for _ in range(3):
        x = native(x + r, w, 1e-6) * 2
    out, res = ir_core.get_op("fused_add_rms_norm").native(x, r, w, 1e-5, 1.0)
    return out + res


def test_native_impls_are_inlined_as_aten_ops():
    gm = _trace(_layered, *_inputs())
    assert len(_ir_nodes(gm)) == 4
    result = lower(gm)
    assert _ir_nodes(gm) == []
    assert result.unlowered == []
    assert [(n.op, n.provider) for n in result.lowered] == [
        ("rms_norm", "native"),
        ("rms_norm", "native"),
        ("rms_norm", "native"),
        ("fused_add_rms_norm", "native"),
    ]
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert torch.ops.aten.rsqrt.default in targets  # the norm's own arithmetic, inlined
    assert all(getattr(t, "namespace", "aten") != library.IMPL_NAMESPACE for t in targets)
    gm.recompile()
    for tokens in (8, 5):  # a symbolic token count: any count runs
        args = _inputs(tokens, seed=tokens)
        torch.testing.assert_close(gm(*args), _reference(*args))


def test_identical_layers_are_traced_once():
    gm = _trace(_layered, *_inputs())
    result = lower(gm)
    # three rms_norm nodes with one signature, one fused add: two traces, four nodes lowered
    assert (result.traced, len(result.lowered)) == (2, 4)


def test_outputs_of_copied_traces_stay_distinct_inputs():
    """Two norms of one signature are one trace copied twice, so their outputs carry the same
    example value object; an op taking both must still see two inputs (it was once traced
    as ``fused_add_rms_norm(b, b)``, silently wrong)."""

    def f(a, b, w1, w2):
        a, b = IR.rms_norm(a, w1, 1e-6), IR.rms_norm(b, w2, 1e-6)
        return IR.fused_add_rms_norm(a, b, None, 1e-6)

    x, r, w = _inputs()
    args = (x, r, w, w * 0.5 + 1)
    gm = _trace(f, *args)
    lower(gm)
    gm.recompile()
    rms, fused = ir_core.get_op("rms_norm").native, ir_core.get_op("fused_add_rms_norm").native
    expected = fused(rms(x, w, 1e-6), rms(r, args[3], 1e-6), None, 1e-6)
    for got, want in zip(gm(*args), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_a_selected_provider_becomes_one_opaque_impl_op_call(provider):
    gm = _trace(_layered, *_inputs())
    with ir_core.set_priority(rms_norm=[provider.name]):
        result = lower(gm)
    assert [n.provider for n in result.lowered] == [provider.name] * 3 + ["native"]
    impl_op = getattr(torch.ops.ir_core_impl, f"rms_norm__{provider.name}").default
    assert [n.target for n in gm.graph.nodes].count(impl_op) == 3
    gm.recompile()
    provider.calls = 0
    args = _inputs(16, seed=3)
    torch.testing.assert_close(gm(*args), _reference(*args))
    assert provider.calls == 3  # the kernel runs at run time: it was not traced into ATen


def test_predicates_see_size_hints_and_symbolic_shapes_get_no_guard(provider):
    gm = _trace(_layered, *_inputs(tokens=8))
    x_val = next(n for n in gm.graph.nodes if n.op == "placeholder").meta["val"]
    assert isinstance(x_val.shape[0], torch.SymInt)
    shape_env = x_val.shape[0].node.shape_env
    guards_before = len(shape_env.guards)
    with ir_core.set_priority(rms_norm=[provider.name]):
        result = lower(gm)
    assert provider.seen_sizes and set(provider.seen_sizes) == {int}
    # decided on the hint (8 tokens: 8 % 8 == 0), and no guard on s0 was recorded for it
    assert {n.provider for n in result.lowered if n.op == "rms_norm"} == {provider.name}
    assert len(shape_env.guards) == guards_before


def test_invalid_arguments_are_an_error_naming_the_node():
    def f(x, w):
        return IR.rms_norm(x, w, -1.0)  # a negative epsilon: native runs, validation refuses

    x, _, w = _inputs()
    gm = _trace(f, x, w)
    with pytest.raises(LoweringError, match=r"rms_norm node rms_norm\w*: .*'epsilon' must be >= 0"):
        lower(gm)


def test_fusion_passes_run_first_and_see_the_ir_nodes(plugin, monkeypatch):
    seen: list[int] = []

    def count_norms(gm: torch.fx.GraphModule) -> int:
        seen.append(sum(n.target is IR.rms_norm.default for n in gm.graph.nodes))
        return 0

    def register_fusion_passes(registry) -> None:
        registry.register("count_norms_test", count_norms, order=1)

    plugin(register_fusion_passes=register_fusion_passes)
    monkeypatch.setenv("IR_CORE_FUSIONS", "count_norms_test")
    report = run_passes(_trace(_layered, *_inputs()))
    assert seen == [3]
    assert report is not None and report.fusions == {"count_norms_test": 0}
    assert compile_report() is report
    monkeypatch.setenv("IR_CORE_FUSIONS", "-count_norms_test")
    report = run_passes(_trace(_layered, *_inputs()))
    assert seen == [3] and "count_norms_test" not in report.fusions


def test_a_graph_without_ir_nodes_is_left_alone_and_reports_nothing(monkeypatch):
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")
    report = run_passes(_trace(_layered, *_inputs()))
    gm = _trace(lambda x: x * 2, torch.randn(4, 4))
    before = [n.target for n in gm.graph.nodes]
    assert run_passes(gm) is None
    assert [n.target for n in gm.graph.nodes] == before
    assert compile_report() is report


def test_ir_core_log_info_logs_the_report(monkeypatch, caplog):
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")
    monkeypatch.setenv("IR_CORE_LOG", "info")
    with caplog.at_level(logging.INFO, logger="ir_core"):
        report = run_passes(_trace(_layered, *_inputs()))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "ir_core")
    assert "4 IR nodes lowered" in text
    for node in report.lowered:
        assert f"lowered {node.node}: {node.op} -> {node.provider}" in text


def test_impl_ops_have_the_op_schema_and_pass_opcheck(provider):
    op = ir_core.get_op("rms_norm")
    impl_op = library.impl_op(op, provider.name)
    assert impl_op is library.impl_op(op, provider.name)  # created once
    assert str(impl_op._schema).split("(", 1)[1] == str(op.torch_op._schema).split("(", 1)[1]
    x, _, w = _inputs()
    torch.library.opcheck(impl_op, (x, w, 1e-6, 0.0, None))
    provider.calls = 0
    torch.testing.assert_close(impl_op(x, w, 1e-6, 0.0, None), op.native(x, w, 1e-6))
    assert provider.calls == 1


def test_import_ir_core_loads_neither_dynamo_nor_inductor():
    code = (
        "import sys, ir_core, ir_core.compile\n"
        "print(sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
