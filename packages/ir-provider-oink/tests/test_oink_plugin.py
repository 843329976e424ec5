"""The plugin as ir-core sees it: discovery, registration, availability reasons, priority."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
import torch

import ir_core
from ir_core import plugins
from ir_provider_oink import oink_norm, plugin


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [
        e for e in importlib.metadata.entry_points(group="ir_core.plugins") if e.name == "oink"
    ]
    assert ep.value == "ir_provider_oink.plugin"
    assert ep.load() is plugin


def test_plugin_registers_oink_on_cuda() -> None:
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "oink"]
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    assert record.providers == ["oink"]
    for op in ("rms_norm", "fused_add_rms_norm"):
        assert ir_core.get_op(op).impls["oink"].device_types == frozenset({"cuda"})


def test_plugin_import_imports_no_vendor_library() -> None:
    code = (
        "import sys, ir_core; ir_core.load_plugins(); "
        "print(any(m.startswith(('kernelagent_oink', 'cutlass')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cuda_priority_puts_oink_first_for_both_ops() -> None:
    # both entry points are out of place now: the fused add costs no copies
    assert plugin.platform_priority("cuda") == {
        op: ["oink"] for op in ("rms_norm", "fused_add_rms_norm")
    }
    assert plugin.platform_priority("rocm") is None


CAPABILITY_CASES = [
    ((9, 0), "NVIDIA H100 80GB HBM3",
     "SM100 missing: cuda:0 (NVIDIA H100 80GB HBM3) has compute capability 9.0 (sm_90); "
     "Oink's CuTeDSL kernels need 10.0 or newer (Blackwell)"),
    ((8, 9), "NVIDIA L4",
     "SM100 missing: cuda:0 (NVIDIA L4) has compute capability 8.9 (sm_89); "
     "Oink's CuTeDSL kernels need 10.0 or newer (Blackwell)"),
    ((10, 0), "NVIDIA B200", None),
    ((10, 3), "NVIDIA GB300", None),
]  # fmt: skip


@pytest.mark.parametrize(("capability", "name", "expected"), CAPABILITY_CASES)
def test_capability_reason(capability: tuple[int, int], name: str, expected: str | None) -> None:
    assert oink_norm.capability_problem(0, name, capability) == expected


def test_registration_failure_is_a_reason() -> None:
    class NoOps:
        pass

    def crashing_import(name: str) -> None:
        raise ImportError("cannot import name 'custom_op' from 'torch.library'")

    problem = oink_norm.register_ops(NoOps(), "rmsnorm", crashing_import)
    assert problem == (
        f"import {oink_norm.REGISTERING_MODULE} failed "
        "(ImportError: cannot import name 'custom_op' from 'torch.library')"
    )
    assert oink_norm.register_ops(NoOps(), "rmsnorm", lambda name: None) == (
        "kernelagent-oink registered no torch.ops.oink.rmsnorm"
    )


def test_registered_ops_need_no_import() -> None:
    class Ops:
        rmsnorm = staticmethod(lambda *a: None)

    def must_not_import(name: str) -> None:
        raise AssertionError("imported although the op is registered")

    assert oink_norm.register_ops(Ops(), "rmsnorm", must_not_import) is None


@pytest.mark.skipif(oink_norm.available_rms_norm()[0], reason="Oink is usable here")
def test_list_providers_reason_without_traceback() -> None:
    ok, reason = oink_norm.available_rms_norm()
    assert not ok and reason == "; ".join(oink_norm.environment_problems())
    if not torch.cuda.is_available():
        assert "no CUDA device" in reason
    out = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Traceback" not in out.stderr
    (entry,) = [p for p in json.loads(out.stdout)["providers"] if p["provider"] == "oink"]
    assert reason in json.dumps(entry)


def test_fused_add_loads_oinks_python_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oink_norm, "environment_problems", lambda: ())
    imported = []

    def fake_import(name: str):
        imported.append(name)
        return type("Module", (), {"fused_add_rmsnorm_forward": staticmethod(lambda *a: a)})

    fn, reason = oink_norm.load_fused_add(fake_import)
    assert reason == "" and callable(fn) and imported == ["kernelagent_oink.blackwell.rmsnorm"]
    fn, reason = oink_norm.load_fused_add(lambda name: object())
    assert (
        fn is None
        and reason == "kernelagent_oink.blackwell.rmsnorm has no fused_add_rmsnorm_forward"
    )


def test_fused_add_unavailable_for_the_same_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oink_norm, "environment_problems", lambda: ("no CUDA device",))

    def must_not_import(name: str):
        raise AssertionError("imported Oink on a machine that cannot run it")

    assert oink_norm.load_fused_add(must_not_import) == (None, "no CUDA device")
