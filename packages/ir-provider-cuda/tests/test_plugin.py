"""The plugin as ir-core sees it: discovery, registration, availability, priorities, dispatch."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest
import torch

import ir_core
from ir_core import plugins
from ir_core.testing import assert_matches_native
from ir_provider_cuda import flashinfer_norm, plugin, torch_fused_norm, triton_norm

HAS_CUDA = torch.cuda.is_available()
EPS = 1e-6
PROVIDERS = {"triton", "flashinfer", "torch_fused", "quack", "liger"}
CATALOGUE_II = ("silu_and_mul", "gelu_and_mul", "rotary_embedding", "gated_rms_norm")


def _record() -> plugins.PluginRecord:
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "cuda"]
    return record


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [
        e for e in importlib.metadata.entry_points(group="ir_core.plugins") if e.name == "cuda"
    ]
    assert ep.value == "ir_provider_cuda.plugin"
    assert ep.load() is plugin


def test_plugin_loads_with_all_providers() -> None:
    record = _record()
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    assert set(record.providers) == PROVIDERS
    info = plugin.ir_plugin_info()
    assert info["api_version"] == ir_core.API_VERSION and info["name"] == "cuda"


def test_registered_impls() -> None:
    _record()
    expected = {
        "rms_norm": PROVIDERS,
        "fused_add_rms_norm": {"triton", "flashinfer", "quack"},
        "dual_rms_norm": {"triton"},
        "silu_and_mul": {"triton", "flashinfer"},
        "gelu_and_mul": {"triton", "flashinfer"},
        "rotary_embedding": {"triton", "flashinfer"},
        "gated_rms_norm": {"triton"},
        "rms_norm_fp8_quant_static": {"triton", "flashinfer"},
        "fused_add_rms_norm_fp8_quant_static": {"triton", "flashinfer"},
    }
    for op_name, providers in expected.items():
        impls = ir_core.get_op(op_name).impls
        assert providers <= set(impls), op_name
        for provider in providers:
            impl = impls[provider]
            assert "cuda" in impl.device_types, f"{op_name}:{provider}"
            if provider != "triton":
                assert impl.device_types == frozenset({"cuda"}), f"{op_name}:{provider}"


def test_importing_the_plugin_imports_no_kernel_library() -> None:
    """Discovery must stay cheap and a broken Triton, FlashInfer, quack or liger must not
    quarantine the whole plugin: they are imported by the availability checks, not by the
    plugin module."""
    code = (
        "import sys, ir_provider_cuda.plugin; "
        "print(sorted(m for m in ('triton', 'flashinfer', 'quack', 'liger_kernel') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- device types and availability ------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), (None, False)])
def test_triton_device_types_follow_triton_interpret(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    else:
        monkeypatch.setenv("TRITON_INTERPRET", value)
    assert ("cpu" in triton_norm.device_types()) is expected
    assert "cuda" in triton_norm.device_types()


def test_triton_needs_a_gpu_or_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_norm.available() == (True, "")
    monkeypatch.delenv("TRITON_INTERPRET")
    ok, reason = triton_norm.available()
    if HAS_CUDA:
        assert ok
    else:
        assert not ok and "no CUDA/ROCm device" in reason and "TRITON_INTERPRET=1" in reason


def test_triton_reports_a_missing_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError
    ok, reason = triton_norm.available()
    assert not ok and reason.startswith("triton is not importable (ModuleNotFoundError")


@pytest.mark.skipif(HAS_CUDA, reason="checks the reasons given on a machine without a GPU")
def test_unavailable_reasons_without_a_gpu() -> None:
    _record()
    ok, reason = ir_core.get_op("rms_norm").impls["flashinfer"].status()
    assert not ok and "no CUDA device" in reason
    if importlib.util.find_spec("flashinfer") is None:
        assert "flashinfer-python not installed" in reason
    ok, reason = ir_core.get_op("rms_norm").impls["torch_fused"].status()
    assert not ok and "no CUDA device" in reason
    assert torch_fused_norm.available() == (ok, reason)
    for provider, package, module in (
        ("quack", "quack-kernels", "quack"),
        ("liger", "liger-kernel", "liger_kernel"),
    ):
        ok, reason = ir_core.get_op("rms_norm").impls[provider].status()
        assert not ok and ("no CUDA device" in reason or "no CUDA/ROCm device" in reason)
        if importlib.util.find_spec(module) is None:
            assert f"{package} not installed (pip install 'ir-provider-cuda[{provider}]')" in reason


def test_flashinfer_names_every_missing_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "hip", None)
    ok, reason = flashinfer_norm.available()
    assert not ok
    assert reason.startswith("flashinfer-python not installed") and reason.endswith(
        "no CUDA device"
    )
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert "NVIDIA GPUs only" in flashinfer_norm.available()[1]


def test_explain_lists_why_gpu_providers_were_skipped(triton_on_device: str) -> None:
    if HAS_CUDA:
        pytest.skip("on a GPU machine flashinfer/torch_fused may be available")
    x, w = torch.randn(2, 64), torch.randn(64)
    with ir_core.set_priority(rms_norm=["flashinfer", "torch_fused", "triton"]):
        why = ir_core.explain("rms_norm", x, w, EPS)
    assert why.provider == "triton"
    skipped = dict(why.skipped)
    assert (
        skipped["flashinfer"].startswith("unavailable: ")
        and "no CUDA device" in skipped["flashinfer"]
    )
    assert skipped["torch_fused"].startswith("unavailable: ")


# -- priorities and dispatch ------------------------------------------------------------------


def test_platform_priority() -> None:
    _record()
    cuda = plugin.platform_priority("cuda")
    quant = {op.name for op in ir_core.registry.ops() if "fp8_quant" in op.name}
    assert len(quant) == 9
    assert set(cuda) == {"rms_norm", "fused_add_rms_norm", "dual_rms_norm", *CATALOGUE_II, *quant}
    assert all("triton" in cuda[op] for op in (*CATALOGUE_II, *quant))
    for op_name, order in cuda.items():
        assert len(order) == len(set(order)), op_name
        assert set(order) <= set(ir_core.get_op(op_name).impls), f"{op_name}: {order}"
    # every impl registered for cuda is in the cuda order of its op
    for op_name in cuda:
        registered = {
            p
            for p, impl in ir_core.get_op(op_name).impls.items()
            if p in PROVIDERS and "cuda" in (impl.device_types or ())
        }
        assert registered <= set(cuda[op_name]), op_name
    rocm = plugin.platform_priority("rocm")
    assert all(order == ["triton"] for order in rocm.values())
    assert set(rocm) == {op for op, order in cuda.items() if "triton" in order}
    assert plugin.platform_priority("cpu") is None
    assert plugin.platform_priority("xpu") is None


@pytest.mark.skipif(HAS_CUDA, reason="checks the default on a machine without a GPU")
def test_cpu_default_is_native() -> None:
    """The interpreter is for tests, never a default: the plugin proposes no order on cpu."""
    x, w = torch.randn(2, 64), torch.randn(64)
    assert ir_core.explain("rms_norm", x, w, EPS).provider == "native"


def test_dispatch_picks_triton_under_set_priority(triton_on_device: str) -> None:
    d = triton_on_device
    x, r = torch.randn(3, 96, device=d), torch.randn(3, 96, device=d)
    w = torch.randn(96, device=d)
    b, wb = torch.randn(3, 32, device=d), torch.randn(32, device=d)
    with ir_core.set_priority(rms_norm=["triton"]):
        assert ir_core.explain("rms_norm", x, w, EPS).provider == "triton"
        out = ir_core.ops.rms_norm(x, w, EPS)
    assert torch.equal(out, triton_norm.rms_norm(x, w, EPS))
    assert_matches_native(
        "rms_norm", lambda *a: ir_core.ops.rms_norm(*a), ir_core.Sample((x, w, EPS))
    )
    with ir_core.set_priority(fused_add_rms_norm=["triton"], dual_rms_norm=["triton"]):
        assert ir_core.explain("fused_add_rms_norm", x, r, w, EPS).provider == "triton"
        assert ir_core.explain("dual_rms_norm", x, w, b, wb, EPS, EPS).provider == "triton"
        fused = ir_core.ops.fused_add_rms_norm(x, r, w, EPS)
        dual = ir_core.ops.dual_rms_norm(x, w, b, wb, EPS, EPS)
    for got, want in zip(
        fused + dual,
        triton_norm.fused_add_rms_norm(x, r, w, EPS)
        + triton_norm.dual_rms_norm(x, w, b, wb, EPS, EPS),
    ):
        assert torch.equal(got, want)


@pytest.mark.gpu
def test_cuda_default_order_applies() -> None:
    """On a GPU, with no user priority, rms_norm goes to the first available provider of the
    plugin's cuda order (never straight to native while triton is available)."""
    x = torch.randn(4, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    why = ir_core.explain("rms_norm", x, w, EPS)
    assert why.provider in PROVIDERS, str(why)
