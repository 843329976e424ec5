"""The plugin as ir-core sees it: discovery, registration, availability reasons, priorities."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import ir_core
from ir_core import plugins
from ir_provider_xpu import ipex_norm, plugin, xpu_kernels_norm

OPS = ("rms_norm", "fused_add_rms_norm")


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="ir_core.plugins") if e.name == "xpu"]
    assert ep.value == "ir_provider_xpu.plugin"
    assert ep.load() is plugin


def test_plugin_registers_both_providers() -> None:
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "xpu"]
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    assert record.providers == ["ipex", "xpu_kernels"]
    for op in OPS:
        impls = ir_core.get_op(op).impls
        assert impls["ipex"].device_types == frozenset({"xpu", "cpu"})
        assert impls["xpu_kernels"].device_types == frozenset({"xpu"})
    assert "ipex" not in ir_core.get_op("dual_rms_norm").impls
    for op in ("silu_and_mul", "gelu_and_mul", "rotary_embedding"):
        impls = ir_core.get_op(op).impls
        assert impls["ipex"].device_types == frozenset({"cpu"})
        assert impls["xpu_kernels"].device_types == frozenset({"xpu"})
    for op in plugin.XPU_KERNELS_IMPLS:
        assert "xpu_kernels" in ir_core.get_op(op).impls, op


def test_extras_bound_the_vendor_releases() -> None:
    """IPEX 2.4 first has add_rms_norm/silu_mul/gelu_mul; vllm-xpu-kernels' norms take
    weight=None from 0.1.12 (PyPI: 0.1.12.1 on). Neither wheel declares its torch."""
    requires = importlib.metadata.requires("ir-provider-xpu") or []
    (ipex,) = [r for r in requires if r.startswith("intel-extension-for-pytorch")]
    (kernels,) = [r for r in requires if r.startswith("vllm-xpu-kernels")]
    assert ">=2.4" in ipex and ">=0.1.12.1" in kernels


def test_plugin_import_imports_no_vendor_library() -> None:
    code = (
        "import sys, ir_core; ir_core.load_plugins(); "
        "print(any(m.startswith(('intel_extension_for_pytorch', 'vllm_xpu_kernels')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_xpu_priority() -> None:
    order = plugin.platform_priority("xpu")
    assert {op: order[op] for op in OPS} == {op: ["xpu_kernels", "ipex"] for op in OPS}
    assert order["silu_and_mul"] == ["xpu_kernels"]  # IPEX's activations are CPU-only
    assert set(order) == set(plugin.XPU_KERNELS_IMPLS)
    assert plugin.platform_priority("cpu") is None
    assert plugin.platform_priority("cuda") is None


def test_list_providers_gives_each_a_reason_without_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Traceback" not in out.stderr
    providers = {p["provider"]: p for p in json.loads(out.stdout)["providers"]}
    for name, module in (("ipex", ipex_norm), ("xpu_kernels", xpu_kernels_norm)):
        ok, reason = module.available_rms_norm() if module is ipex_norm else module.available()
        entry = json.dumps(providers[name])
        assert (ok and "unavailable" not in entry) or (not ok and reason and reason in entry)


@pytest.mark.skipif(
    xpu_kernels_norm.load()[0] is not None, reason="vllm-xpu-kernels is usable here"
)
def test_xpu_kernels_reason_names_every_missing_piece() -> None:
    ok, reason = xpu_kernels_norm.available()
    assert not ok and reason == "; ".join(xpu_kernels_norm.environment_problems())


def test_xpu_kernels_import_failure_is_a_reason() -> None:
    def crashing_import(name: str) -> None:
        raise OSError("libsycl.so.8: cannot open shared object file")

    ops, reason = xpu_kernels_norm.import_ops(crashing_import)
    assert ops is None
    assert reason == (
        "import vllm_xpu_kernels._C failed (OSError: libsycl.so.8: cannot open shared object file)"
    )
