"""``ir_core.kit``: the lazily loaded vendor library, the predicates, owned outputs, hook bodies."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from ir_core import kit


def test_lazy_vendor_loads_once_and_only_when_asked() -> None:
    calls: list[int] = []

    def load() -> tuple[str | None, str]:
        calls.append(1)
        return "the library", ""

    vendor = kit.LazyVendor("acme", load)
    assert vendor.loaded() is None and calls == []  # loaded() never loads
    assert vendor.available() == (True, "")
    assert vendor.require() == "the library" and vendor.loaded() == "the library"
    assert vendor.load() == ("the library", "") and len(calls) == 1


def test_lazy_vendor_loads_once_across_threads() -> None:
    calls: list[int] = []

    def slow_load() -> tuple[int | None, str]:
        calls.append(1)
        time.sleep(0.05)  # every thread arrives while the first one is loading
        return 42, ""

    vendor = kit.LazyVendor("acme", slow_load)
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(vendor.require())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and seen == [42] * 16


def test_problems_are_the_reason_and_the_library_is_never_imported() -> None:
    def must_not_load() -> tuple[Any, str]:
        raise AssertionError("loaded although the machine lacks what it needs")

    vendor = kit.LazyVendor(
        "acme", must_not_load, problems=lambda: ["no Acme GPU", "acme-kernels not installed"]
    )
    assert vendor.available() == (False, "no Acme GPU; acme-kernels not installed")
    assert vendor.loaded() is None
    with pytest.raises(RuntimeError, match="the acme provider is unavailable: no Acme GPU"):
        vendor.require()


def test_import_module_turns_every_failure_into_a_reason() -> None:
    module, reason = kit.import_module("json")
    assert reason == "" and module is not None and module.loads("[1]") == [1]

    def crash(name: str) -> Any:
        raise RuntimeError("no ROCm runtime found")

    assert kit.import_module("aiter", crash) == (
        None,
        "import aiter failed (RuntimeError: no ROCm runtime found)",
    )
    module, reason = kit.import_module("ir_core_no_such_module")
    assert module is None and reason.startswith(
        "import ir_core_no_such_module failed (ModuleNotFoundError"
    )


def test_module_missing_imports_nothing() -> None:
    assert kit.module_missing("ir_core_no_such_module")
    assert kit.module_missing("ir_core_no_such_package.sub")  # a missing parent is no error
    assert not kit.module_missing("json")


def test_nvidia_gpu_problems_here() -> None:
    problems = kit.nvidia_gpu_problems("FlashInfer", (7, 5))
    if torch.version.hip is not None:
        assert problems == ["ROCm build of torch: FlashInfer supports NVIDIA GPUs only"]
    elif not torch.cuda.is_available():
        assert problems == ["no CUDA device"]
    else:
        major, minor = torch.cuda.get_device_capability()
        assert (problems == []) == ((major, minor) >= (7, 5))


def test_is_weight_for() -> None:
    x = torch.empty(4, 8, dtype=torch.bfloat16)
    assert kit.is_weight_for(x, torch.empty(8, dtype=torch.bfloat16))
    assert not kit.is_weight_for(x, None)
    assert not kit.is_weight_for(x, torch.empty(8, dtype=torch.float32))
    assert not kit.is_weight_for(x, torch.empty(8, 2, dtype=torch.bfloat16)[:, 0])  # stride 2
    assert not kit.is_weight_for(x, torch.empty(1, 8, dtype=torch.bfloat16))


def test_in_place_outputs_leave_the_inputs_untouched() -> None:
    """vLLM's in-place fused add (``residual += x; x = norm(residual)``) run on owned copies."""

    def fused_add_in_place(x: torch.Tensor, residual: torch.Tensor, scale: float) -> None:
        residual.add_(x)
        x.copy_(residual * scale)

    x = torch.arange(12.0).reshape(2, 6)[:, ::2]  # strided: the copies are contiguous rows
    residual = torch.ones(2, 3, 1).squeeze(-1)
    x_before, residual_before = x.clone(), residual.clone()
    out, residual_out = kit.in_place_outputs(fused_add_in_place, (x, residual), 0.5)
    assert torch.equal(x, x_before) and torch.equal(residual, residual_before)
    assert torch.equal(residual_out, x_before + residual_before)
    assert torch.equal(out, (x_before + residual_before) * 0.5)
    assert out.shape == x.shape and out.is_contiguous()


def test_in_place_outputs_with_no_elements_call_nothing() -> None:
    def must_not_run(*args: Any) -> None:
        raise AssertionError("kernel launched on zero tokens")

    out, residual_out = kit.in_place_outputs(
        must_not_run, (torch.empty(0, 64), torch.empty(0, 64, dtype=torch.float16)), 1e-6
    )
    assert out.shape == (0, 64) and residual_out.dtype == torch.float16


def test_owned_rows_and_empty_output() -> None:
    t = torch.arange(24.0).reshape(2, 3, 4).transpose(0, 1)
    rows = kit.owned_rows(t)
    assert rows.shape == (6, 4) and rows.is_contiguous()
    assert torch.equal(rows.view(t.shape), t) and rows.data_ptr() != t.data_ptr()
    out = kit.empty_output(t)
    assert out.shape == t.shape and out.is_contiguous() and out.dtype == t.dtype


class _RecordingRegistry:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, Any]]] = []

    def register_impl(self, op: str, provider: str, fn: Any, **kwargs: Any) -> None:
        self.calls.append((op, provider, fn, kwargs))


def test_impls_of_follows_the_naming_convention_and_register_impls_registers_it() -> None:
    def rms_norm() -> None: ...
    def rms_norm_supports() -> bool: ...
    def dual_rms_norm() -> None: ...
    def available_dual_rms_norm() -> tuple[bool, str]: ...
    def available() -> tuple[bool, str]: ...

    module = SimpleNamespace(
        rms_norm=rms_norm,
        rms_norm_supports=rms_norm_supports,
        dual_rms_norm=dual_rms_norm,
        available_dual_rms_norm=available_dual_rms_norm,
    )
    table = kit.impls_of(module, "rms_norm", "dual_rms_norm")
    assert table == {
        "rms_norm": (rms_norm, rms_norm_supports),
        "dual_rms_norm": (dual_rms_norm, None, available_dual_rms_norm),
    }
    registry = _RecordingRegistry()
    kit.register_impls(
        registry,
        "acme",
        table,
        device_types=["cuda"],
        available=available,
        capabilities={"rms_norm": {"deterministic"}},
    )
    assert registry.calls == [
        (
            "rms_norm",
            "acme",
            rms_norm,
            {
                "device_types": ("cuda",),
                "supports_args": rms_norm_supports,
                "available": available,
                "capabilities": {"deterministic"},
            },
        ),
        (
            "dual_rms_norm",
            "acme",
            dual_rms_norm,
            {
                "device_types": ("cuda",),
                "supports_args": None,
                "available": available_dual_rms_norm,
                "capabilities": (),
            },
        ),
    ]


def test_plugin_info_and_priorities_for() -> None:
    import ir_core

    assert kit.plugin_info("acme", "Acme kernels") == {
        "name": "acme",
        "api_version": ir_core.API_VERSION,
        "description": "Acme kernels",
    }
    table = {"cuda": {"rms_norm": ("acme", "triton")}}
    answer = kit.priorities_for("cuda", table)
    assert answer == {"rms_norm": ["acme", "triton"]}
    answer["rms_norm"].append("mutated")  # a fresh copy: the plugin's table is not shared
    assert kit.priorities_for("cuda", table) == {"rms_norm": ["acme", "triton"]}
    assert kit.priorities_for("xpu", table) is None
