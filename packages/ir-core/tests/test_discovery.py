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


@pytest.mark.parametrize("first, second", [("clash_x", "clash_y"), ("clash_z", "clash_w")])
def test_two_plugins_registering_one_provider_clash_whatever_their_names(plugin, first, second):
    # a new wheel must not displace an established one by sorting first: neither impl is used
    x, w = torch.randn(2, 8), torch.randn(8)
    a = plugin(name=first, register_impls=registers("shared"))
    assert ir_core.get_op("rms_norm").impls["shared"].plugin == first  # alone, it is used
    b = plugin(name=second, register_impls=registers("shared"))
    assert a.status == b.status == "loaded"
    for record in (a, b):
        (clash,) = record.clashes
        assert f"plugins {' and '.join(sorted((first, second)))}" in clash
        assert "neither impl is used" in clash and "IR_CORE_DISABLE_PLUGINS=" in clash
    assert "shared" not in ir_core.get_op("rms_norm").impls
    with ir_core.set_priority(rms_norm=["shared"]):  # skipped with the reason, not unknown
        e = ir_core.explain("rms_norm", x, w, 1e-6)
    assert e.provider == "native" and dict(e.skipped)["shared"].startswith("clash: provider shared")
    ir_core.unregister_plugin(second)  # resolved: the one left is used again
    assert ir_core.get_op("rms_norm").impls["shared"].plugin == first and a.clashes == []


def test_a_plugin_registering_its_provider_twice_is_quarantined(plugin):
    def register_impls(registry):
        registry.register_impl("rms_norm", "twice", rms_norm_kernel, device_types=("cpu",))
        registry.register_impl("rms_norm", "twice", rms_norm_kernel, device_types=("cpu",))

    record = plugin(register_impls=register_impls)
    assert record.status == "quarantined" and "already registered" in record.reason


def test_a_hook_that_exits_is_quarantined_not_the_process(plugin):
    import sys as _sys

    record = plugin(register_impls=lambda registry: _sys.exit(0))
    assert record.status == "quarantined"
    assert record.reason == "register_impls raised SystemExit: 0"


def test_detect_platform_that_raises_is_quarantined_and_dispatch_goes_on(plugin):
    def detect_platform():
        raise RuntimeError("no driver")

    record = plugin(detect_platform=detect_platform, register_impls=registers("dp"))
    assert record.status == "quarantined" and "detect_platform raised" in record.reason
    assert platform.current_platform() == "cpu"
    torch.testing.assert_close(ir_core.ops.rms_norm(torch.ones(2, 4), None, 0.0), torch.ones(2, 4))


@pytest.mark.parametrize(
    "answer, words",
    [
        ({"rms_norm": None}, ["list of provider names", "None"]),
        ({"rms_norm": "pa"}, ["list of provider names", "'pa'"]),
        ({"rms_norm": ["pa", 5]}, ["list of provider names"]),
        ({5: ["pa"]}, ["op name 5"]),
        (("rms_norm",), ["not a dict"]),
        ({"rms_norm": ["pa", "nobody"]}, ["'nobody'", "no plugin registered"]),
    ],
)
def test_platform_priority_garbage_is_refused_at_the_boundary(plugin, answer, words):
    record = plugin(platform_priority=lambda platform: answer, register_impls=registers("pa"))
    assert record.status == "quarantined"
    for word in words:
        assert word in record.reason
    assert ir_core.priority.resolve("rms_norm") == ("native",)
    torch.testing.assert_close(ir_core.ops.rms_norm(torch.ones(2, 4), None, 0.0), torch.ones(2, 4))


def test_platform_priority_may_name_ops_not_registered_here(plugin):
    record = plugin(
        platform_priority=lambda platform: {"rms_norm": ["pb", "native"], "some_fused_op": ["pb"]},
        register_impls=registers("pb"),
    )
    assert record.status == "loaded"
    assert ir_core.priority.resolve("rms_norm") == ("pb", "native")


def test_load_times_are_recorded(plugin):
    import time as _time

    record = plugin(register_impls=lambda registry: _time.sleep(0.05))
    assert record.load_seconds >= 0.05 and record.to_dict()["load_seconds"] >= 0.05


def test_an_availability_check_that_exits_makes_the_provider_unavailable(plugin):
    import sys as _sys

    def register_impls(registry):
        registry.register_impl(
            "rms_norm", "av_exit", rms_norm_kernel, device_types=("cpu",), available=_sys.exit
        )

    plugin(register_impls=register_impls)
    x = torch.randn(2, 8)
    with ir_core.set_priority(rms_norm=["av_exit"]):
        e = ir_core.explain("rms_norm", x, None, 1e-6)
    assert e.provider == "native"
    assert dict(e.skipped)["av_exit"] == "unavailable: availability check raised SystemExit: "
