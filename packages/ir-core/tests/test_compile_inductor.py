"""IR ops through real ``torch.compile`` runs: both entry points, priorities, shapes, caching.

Each compile costs seconds on a small machine, so the compiled functions are tiny; the decoder
blocks of ``examples/`` are compiled in ``tests/test_examples_compile.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters
from torch._functorch import config as functorch_config
from torch._inductor import config as inductor_config
from torch._inductor.utils import fresh_cache

import ir_core
from ir_core.compile import compile_report
from ir_core.compile.inductor import GRAPH_PASS, ensure_installed

H = 32


def _rms_norm_by_vector_norm(x, weight, epsilon, weight_bias, variance_size):
    """RMSNorm written differently from native: ``x / sqrt(rms^2 + eps)`` with the RMS taken
    as ``||x|| / sqrt(n)``."""
    xf = x.float()
    xv = xf if variance_size is None else xf[..., :variance_size]
    rms = torch.linalg.vector_norm(xv, dim=-1, keepdim=True) / math.sqrt(xv.shape[-1])
    out = xf / torch.sqrt(rms * rms + epsilon)
    out = out if weight is None else out * (weight.float() + weight_bias)
    return out.to(x.dtype)


class Provider:
    """A CPU provider for rms_norm that counts its calls and the size types its predicate saw."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.seen_sizes: set[type] = set()

    def register_impls(self, registry: ir_core.Registry) -> None:
        def rms_norm(
            x: torch.Tensor,
            weight: torch.Tensor | None,
            epsilon: float,
            weight_bias: float = 0.0,
            variance_size: int | None = None,
        ) -> torch.Tensor:
            self.calls += 1
            return _rms_norm_by_vector_norm(x, weight, epsilon, weight_bias, variance_size)

        def supports(x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
            self.seen_sizes.update(type(s) for s in x.shape)
            return x.shape[0] % 8 == 0  # a guard on the token count, were it symbolic

        registry.register_impl(
            "rms_norm", self.name, rms_norm, device_types=("cpu",), supports_args=supports
        )


@pytest.fixture
def provider(plugin) -> Iterator[Provider]:
    p = Provider("vecnorm_inductor_test")
    plugin(name=p.name, register_impls=lambda registry: p.register_impls(registry))
    yield p


@pytest.fixture(autouse=True)
def _compile_env(monkeypatch) -> Iterator[None]:
    """Fresh compiles that run ir_core's passes every time.

    Inductor's and AOTAutograd's on-disk caches are off (a hit runs no pass, so it makes no
    report); the cache test turns them on in a private directory. Each eager dispatcher is
    called once after Dynamo is loaded: its first miss then swaps in a faster body, which
    Dynamo's guards would see as a change (one extra recompile) if it happened between two
    calls of a compiled function under test.
    """
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")  # plugins' fusions would rename the nodes
    for op, args in (
        ("rms_norm", (torch.randn(3, 5), None, 1e-6)),
        ("fused_add_rms_norm", (torch.randn(3, 5), torch.randn(3, 5), None, 1e-6)),
    ):
        getattr(ir_core.ops, op)(*args)
    torch._dynamo.reset()
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        yield
    torch._dynamo.reset()


def _f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ir_core.ops.rms_norm(x * 2, w, 1e-6) + 1


def _reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ir_core.get_op("rms_norm").native(x * 2, w, 1e-6) + 1


def _inputs(tokens: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tokens, H, generator=g), torch.randn(H, generator=g) * 0.1 + 1


def _default_provider(x: torch.Tensor, w: torch.Tensor) -> str:
    """What the default priority runs here (native, unless an installed plugin claims CPU)."""
    return ir_core.explain("rms_norm", x * 2, w, 1e-6).provider


def _providers() -> dict[str, dict[str, int]]:
    report = compile_report()
    assert report is not None and report.unlowered == []
    return report.providers()


def test_plain_torch_compile_lowers_ir_ops():
    x, w = _inputs(8)
    out = torch.compile(_f, fullgraph=True)(x, w)
    torch.testing.assert_close(out, _reference(x, w))
    assert _providers() == {"rms_norm": {_default_provider(x, w): 1}}
    assert GRAPH_PASS in inductor_config.post_grad_custom_pre_pass  # installed while tracing


def test_priority_change_recompiles_and_each_priority_keeps_its_graph(provider):
    compiled = torch.compile(_f, fullgraph=True)
    x, w = _inputs(8)
    torch.testing.assert_close(compiled(x, w), _reference(x, w))
    default_report = compile_report()
    assert _providers() == {"rms_norm": {_default_provider(x, w): 1}} and provider.calls == 0

    with ir_core.set_priority(rms_norm=[provider.name]):
        torch.testing.assert_close(compiled(x, w), _reference(x, w))
    provider_report = compile_report()
    assert provider_report is not default_report  # recompiled, not the stale default graph
    assert _providers() == {"rms_norm": {provider.name: 1}} and provider.calls == 1

    compiled(x, w)  # back to the default priority: its graph again, no new compile
    assert compile_report() is provider_report and provider.calls == 1
    with ir_core.set_priority(rms_norm=[provider.name]):
        compiled(x, w)  # and the provider's graph again, still without compiling
    assert compile_report() is provider_report and provider.calls == 2


def test_configure_selects_the_provider_for_the_backend(provider):
    ir_core.configure(priority={"rms_norm": [provider.name]})  # reset by the plugin fixture
    x, w = _inputs(16)
    out = torch.compile(_f, backend="ir_core", fullgraph=True)(x, w)
    torch.testing.assert_close(out, _reference(x, w))
    assert _providers() == {"rms_norm": {provider.name: 1}} and provider.calls == 1


def test_dynamic_shapes_compile_once_for_every_token_count(provider):
    compiled = torch.compile(_f, backend="ir_core", dynamic=True, fullgraph=True)
    reports = set()
    with ir_core.set_priority(rms_norm=[provider.name]):
        for tokens in (8, 9, 16, 33):
            x, w = _inputs(tokens, seed=tokens)
            torch.testing.assert_close(compiled(x, w), _reference(x, w))
            reports.add(id(compile_report()))
    assert len(reports) == 1  # one graph served 8, 9, 16 and 33 tokens
    assert provider.seen_sizes == {int}  # the predicate never saw a SymInt
    # chosen on the hint (8 tokens) and kept: the predicate is not re-asked per token count
    assert provider.calls == 4


def test_inductor_and_aot_autograd_caches_key_on_the_priority(provider, tmp_path):
    x, w = _inputs(8)
    with (
        fresh_cache(dir=str(tmp_path)),
        inductor_config.patch(fx_graph_cache=True),
        functorch_config.patch(enable_autograd_cache=True),
    ):
        counters.clear()
        torch.compile(_f)(x, w)
        assert counters["inductor"]["fxgraph_cache_miss"] == 1
        assert counters["aot_autograd"]["autograd_cache_miss"] == 1
        assert provider.calls == 0

        torch._dynamo.reset()
        torch.compile(_f)(x, w)  # same priority: served from the caches
        assert counters["inductor"]["fxgraph_cache_hit"] == 1
        assert counters["aot_autograd"]["autograd_cache_hit"] == 1

        torch._dynamo.reset()
        with ir_core.set_priority(rms_norm=[provider.name]):
            out = torch.compile(_f)(x, w)  # another priority: misses, never the first graph
        assert counters["inductor"]["fxgraph_cache_miss"] == 2
        assert counters["aot_autograd"]["autograd_cache_miss"] == 2
        assert counters["aot_autograd"]["autograd_cache_hit"] == 1
        assert provider.calls == 1
        torch.testing.assert_close(out, _reference(x, w))


def _g(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return ir_core.ops.fused_add_rms_norm(x, x - 1, w, 1e-6)[0] * 3


def test_report_after_a_cache_hit_describes_the_graph_served(tmp_path):
    x, w = _inputs(8)
    with (
        fresh_cache(dir=str(tmp_path)),
        inductor_config.patch(fx_graph_cache=True),
        functorch_config.patch(enable_autograd_cache=True),
    ):
        torch.compile(_f)(x, w)
        compiled_f = compile_report()
        torch._dynamo.reset()
        torch.compile(_g)(x, w)  # another graph in between
        assert compile_report().providers().keys() == {"fused_add_rms_norm"}
        torch._dynamo.reset()
        counters.clear()
        torch.compile(_f)(x, w)  # served from the caches: no pass runs
        assert counters["aot_autograd"]["autograd_cache_hit"] == 1
        served = compile_report()
    assert served.from_cache and not compiled_f.from_cache
    assert served.providers() == compiled_f.providers() == {"rms_norm": {"native": 1}}
    assert served.graph == compiled_f.graph and served.graph.startswith("_f at ")
    assert __file__ in served.graph and "(compile " in served.graph
    assert served.to_dict() == {**compiled_f.to_dict(), "from_cache": True}
    assert "served from Inductor's cache" in str(served)


def test_graph_pass_uuid_follows_priority_and_fusions(provider, plugin, monkeypatch):
    def register_fusion_passes(registry) -> None:
        registry.register("uuid_test_fusion", lambda gm: 0)

    plugin(register_fusion_passes=register_fusion_passes)
    monkeypatch.setenv("IR_CORE_FUSIONS", "")
    default = GRAPH_PASS.uuid()
    assert GRAPH_PASS.uuid() == default
    with ir_core.set_priority(rms_norm=[provider.name]):
        assert GRAPH_PASS.uuid() != default
    monkeypatch.setenv("IR_CORE_FUSIONS", "-uuid_test_fusion")
    assert GRAPH_PASS.uuid() != default


def test_install_keeps_other_passes_first_and_honours_the_opt_out(monkeypatch):
    def user_pass(graph: torch.fx.Graph) -> None:
        pass

    with inductor_config.patch(post_grad_custom_pre_pass=user_pass):
        ensure_installed()
        assert inductor_config.post_grad_custom_pre_pass == [user_pass, GRAPH_PASS]
        ensure_installed()  # idempotent
        assert inductor_config.post_grad_custom_pre_pass == [user_pass, GRAPH_PASS]
    monkeypatch.setenv("IR_CORE_INDUCTOR_PASS", "0")
    with inductor_config.patch(post_grad_custom_pre_pass=None):
        ensure_installed()
        assert inductor_config.post_grad_custom_pre_pass is None


def test_the_backend_is_found_by_name():
    from ir_core.compile.backend import ir_core_backend

    assert torch._dynamo.lookup_backend("ir_core") is ir_core_backend


def test_grad_mode_compiles_and_differentiates_through_native():
    """Outside ``torch.no_grad()`` AOTAutograd needs a backward for each IR op: the native
    semantics, recomputed and differentiated, whichever impl ran forward."""
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(H, generator=g))
    r = torch.randn(4, H, generator=g, requires_grad=True)
    x = torch.randn(4, H, generator=g, requires_grad=True)

    def loss(x: torch.Tensor) -> torch.Tensor:
        out, residual = ir_core.ops.fused_add_rms_norm(x * 2, r, w, 1e-6, 1.0)
        return (out * residual).sum() + ir_core.ops.rms_norm(x, None, 1e-6).sum()

    torch.compile(loss, fullgraph=True)(x).backward()
    compiled_grads = [t.grad.clone() for t in (w, r, x)]
    assert compile_report().unlowered == []
    for t in (w, r, x):
        t.grad = None
    loss(x).backward()
    for got, t in zip(compiled_grads, (w, r, x)):
        torch.testing.assert_close(got, t.grad)
