"""The plugin as ir-core sees it: discovery, registration, availability, priority, metadata."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
import torch
from recording_aiter import build

import ir_core
from ir_core import plugins
from ir_provider_rocm_aiter import aiter_api, plugin

EPS = 1e-6
OPS = (
    "rms_norm", "fused_add_rms_norm", "dual_rms_norm", "silu_and_mul", "gelu_and_mul",
    "rotary_embedding", "fp8_quant_static", "fp8_quant_group", "rms_norm_fp8_quant_group",
)  # fmt: skip


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [
        e
        for e in importlib.metadata.entry_points(group="ir_core.plugins")
        if e.name == "rocm_aiter"
    ]
    assert ep.value == "ir_provider_rocm_aiter.plugin"
    assert ep.load() is plugin


def test_plugin_loads_and_registers_aiter_for_its_ops() -> None:
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "rocm_aiter"]
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    assert record.providers == ["aiter"]
    assert sorted(plugin.IMPLS) == sorted(OPS)
    for op in OPS:
        impl = ir_core.get_op(op).impls["aiter"]
        assert impl.device_types == frozenset({"cuda"})


def test_plugin_import_does_not_import_aiter() -> None:
    code = (
        "import sys, ir_provider_rocm_aiter.plugin, ir_core; ir_core.load_plugins(); "
        "print('aiter' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rocm_priority_puts_aiter_first() -> None:
    assert plugin.platform_priority("rocm") == {op: ["aiter"] for op in OPS}
    assert plugin.platform_priority("cuda") is None
    assert plugin.platform_priority("cpu") is None


@pytest.mark.skipif(
    aiter_api.load()[0] is not None, reason="AITER is usable here; this checks the reason text"
)
def test_unavailable_with_a_precise_reason_and_no_traceback() -> None:
    problems = aiter_api.environment_problems()
    assert problems, "AITER unusable although the environment looks complete"
    for op in OPS:
        ok, reason = ir_core.get_op(op).impls["aiter"].status()
        assert not ok and reason == "; ".join(problems), op
    out = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in out.stderr
    data = json.loads(out.stdout)
    (entry,) = [p for p in data["providers"] if p["provider"] == "aiter"]
    assert problems[0] in json.dumps(entry)
    assert set(OPS) <= set(entry["ops"])


def test_any_import_error_is_a_reason_never_raised() -> None:
    def raising_import(name: str):
        raise RuntimeError("ROCm version file not found")  # `import aiter` without ROCm

    api, reason = aiter_api.import_and_probe(raising_import)
    assert api is None
    assert reason == "import aiter failed (RuntimeError: ROCm version file not found)"


def test_import_of_a_module_without_the_hip_ops_is_named() -> None:
    # another package called aiter, or AITER imported with AITER_TRITON_ONLY=1
    api, reason = aiter_api.import_and_probe(lambda name: object())
    assert api is None and "not AMD's AITER" in reason and "AITER_TRITON_ONLY" in reason


def test_import_and_probe_of_a_real_looking_module() -> None:
    api, reason = aiter_api.import_and_probe(lambda name: build("0.1.17"))
    assert reason == "" and api is not None and api.gemma_fused_add


def test_dispatch_on_cpu_never_picks_aiter() -> None:
    x, w = torch.randn(4, 64, dtype=torch.bfloat16), torch.randn(64, dtype=torch.bfloat16)
    with ir_core.set_priority(rms_norm=["aiter"]):
        explanation = ir_core.explain("rms_norm", x, w, EPS)
    assert explanation.provider == "native"
    (reason,) = [r for p, r in explanation.skipped if p == "aiter"]
    assert reason.startswith("unavailable: ") or "not cpu" in reason


# -- package metadata ------------------------------------------------------------------------------


def test_the_aiter_extra_excludes_releases_without_the_apis_used() -> None:
    """PyPI's only amd-aiter (0.1.7.post2.dev18) has no HIP norms, no fused q/k, no CK-free
    detection: the extra asks for 0.1.12 or newer (from AMD's index), never that one."""
    requires = importlib.metadata.requires("ir-provider-rocm-aiter") or []
    (aiter,) = [r for r in requires if r.startswith("amd-aiter")]
    assert 'extra == "aiter"' in aiter.replace("'", '"')
    assert ">=0.1.12" in aiter
