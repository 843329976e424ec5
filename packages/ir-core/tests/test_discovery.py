"""Plugins: hooks called per plugin, quarantine of broken ones, strict mode, platforms."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import ir_core
from ir_core import platform, plugins


def rms_norm_kernel(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    return ir_core.get_op("rms_norm").native(x, weight, epsilon, weight_bias, variance_size)


def registers(provider, fn=rms_norm_kernel):
    def register_impls(registry):
        registry.register_impl("rms_norm", provider, fn, device_types=("cpu",))

    return register_impls


def test_a_good_plugin_loads_and_reports_its_providers(plugin):
    record = plugin(
        ir_plugin_info=lambda: {"api_version": ir_core.API_VERSION, "description": "fine"},
        register_impls=registers("good"),
    )
    assert record.status == "loaded" and record.providers == ["good"]
    assert record.description == "fine"
    assert "good" in ir_core.get_op("rms_norm").impls


def test_raising_hook_is_quarantined_and_rolled_back(plugin):
    def register_impls(registry):
        registry.register_impl("rms_norm", "half_done", rms_norm_kernel, device_types=("cpu",))
        raise RuntimeError("driver handle not initialised")

    record = plugin(register_impls=register_impls)
    assert record.status == "quarantined"
    assert record.reason == "register_impls raised RuntimeError: driver handle not initialised"
    assert "Traceback" in record.traceback and "driver handle" in record.traceback
    assert "half_done" not in ir_core.get_op("rms_norm").impls  # rolled back
    torch.testing.assert_close(ir_core.ops.rms_norm(torch.ones(2, 4), None, 0.0), torch.ones(2, 4))


def test_mismatched_impl_is_quarantined(plugin):
    def wrong(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
        return x

    record = plugin(register_impls=registers("wrong", wrong))
    assert record.status == "quarantined"
    assert "wrong impl of rms_norm" in record.reason and "eps" in record.reason


def test_incompatible_api_version_is_quarantined(plugin):
    record = plugin(ir_plugin_info=lambda: {"api_version": 99}, register_impls=registers("future"))
    assert record.status == "quarantined"
    assert "api_version 99" in record.reason
    assert "future" not in ir_core.get_op("rms_norm").impls


def test_unknown_hook_is_quarantined(plugin):
    record = plugin(register_kernels=lambda registry: None)
    assert record.status == "quarantined" and "register_kernels" in record.reason


def test_strict_mode_makes_failure_an_error(plugin, monkeypatch):
    ir_core.load_plugins()  # installed plugins load without strict mode (tests/plugins are broken)
    monkeypatch.setenv("IR_CORE_STRICT_PLUGINS", "1")

    def register_impls(registry):
        raise RuntimeError("boom")

    with pytest.raises(ir_core.PluginLoadError, match="boom"):
        plugin(register_impls=register_impls)


def test_platform_priority_hook_that_raises_is_quarantined_at_load(plugin):
    # asked when the plugin loads (not when priorities are first resolved), so that what
    # list-providers and strict mode say is what dispatch will do
    def platform_priority(platform):
        raise ValueError("bad table")

    record = plugin(platform_priority=platform_priority, register_impls=registers("pp"))
    assert record.status == "quarantined" and "platform_priority raised" in record.reason
    assert "pp" not in ir_core.get_op("rms_norm").impls


def test_platform_from_env_hook_and_torch(plugin, monkeypatch):
    assert platform.current_platform() == platform.detect_from_torch() == "cpu"
    plugin(
        detect_platform=lambda: "npu",
        platform_priority=lambda platform: (
            {"rms_norm": ["npu_kernel"]} if platform == "npu" else None
        ),
        register_impls=registers("npu_kernel"),
    )
    name, source = platform.detect()
    assert name == "npu" and source.startswith("detect_platform hook of plugin test_plugin_")
    assert ir_core.priority.resolve("rms_norm") == ("npu_kernel", "native")
    monkeypatch.setenv("IR_CORE_PLATFORM", "quantum")  # no installed plugin knows it
    assert platform.current_platform() == "quantum"
    assert ir_core.priority.resolve("rms_norm") == ("npu_kernel", "native")  # cached until change
    ir_core.priority.changed()
    assert ir_core.priority.resolve("rms_norm") == ("native",)


def test_entry_points_are_read_once(monkeypatch):
    first = plugins.entry_points()
    monkeypatch.setattr(
        plugins.importlib_metadata,
        "entry_points",
        lambda **kw: pytest.fail("entry points read twice"),
    )
    assert plugins.entry_points() is first


def test_detect_before_plugins_are_loaded_gives_a_platform():
    # a fresh process: detect() is the first thing that loads plugins
    code = "from ir_core import platform; print(platform.detect())"
    env = {k: v for k, v in os.environ.items() if k != "IR_CORE_PLATFORM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('cpu', 'torch')"
