"""The fusion pass registry: registration checks, ordering, IR_CORE_FUSIONS, plugin filling."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.compile import FusionPassError, FusionPassRegistry, fusion_passes


def _gm() -> torch.fx.GraphModule:
    return torch.fx.symbolic_trace(lambda x: x + 1)


def _recorder(log: list[str], name: str, count: int = 0):
    def fn(gm: torch.fx.GraphModule) -> int:
        log.append(name)
        return count

    return fn


def test_passes_run_by_order_then_name_and_report_counts():
    log: list[str] = []
    registry = FusionPassRegistry()
    registry.register("late", _recorder(log, "late", 3), order=200)
    registry.register("b_early", _recorder(log, "b_early", 1), order=10)
    registry.register("a_early", _recorder(log, "a_early"), order=10)
    registry.register("default", _recorder(log, "default", 2))
    counts = registry.run(_gm(), spec="")
    assert log == ["a_early", "b_early", "default", "late"]
    assert counts == {"a_early": 0, "b_early": 1, "default": 2, "late": 3}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("all", ["a", "b", "c"]),
        ("-b", ["a", "c"]),
        ("-a, -c", ["b"]),
        ("c", ["c"]),
        ("a,c", ["a", "c"]),
        ("a,c,-c", ["a"]),
        ("all,-a", ["b", "c"]),
        ("none", []),
    ],
)
def test_ir_core_fusions_selects_passes(spec, expected, monkeypatch):
    registry = FusionPassRegistry()
    for name in ("a", "b", "c"):
        registry.register(name, _recorder([], name))
    assert [p.name for p in registry.selected(spec)] == expected
    monkeypatch.setenv("IR_CORE_FUSIONS", spec)
    assert list(registry.run(_gm())) == expected


def test_unknown_pass_name_in_ir_core_fusions_names_the_known_ones():
    registry = FusionPassRegistry()
    registry.register("dual_rms_norm", _recorder([], "d"))
    registry.register("fused_add_rms_norm", _recorder([], "f"))
    with pytest.raises(FusionPassError, match="unknown fusion pass 'dual_rms'") as info:
        registry.selected("-dual_rms")
    assert "dual_rms_norm, fused_add_rms_norm" in str(info.value)


@pytest.mark.parametrize(
    ("name", "fn", "order", "match"),
    [
        ("has space", lambda gm: 0, 1, "must be an identifier"),
        ("-x", lambda gm: 0, 1, "must be an identifier"),
        ("none", lambda gm: 0, 1, "reserved"),
        ("x", "not callable", 1, "must be callable"),
        ("x", lambda gm: 0, 1.5, "order must be an int"),
    ],
)
def test_register_rejects_bad_arguments(name, fn, order, match):
    with pytest.raises(FusionPassError, match=match):
        FusionPassRegistry().register(name, fn, order=order)


def test_duplicate_names_are_rejected():
    registry = FusionPassRegistry()
    registry.register("x", lambda gm: 0)
    with pytest.raises(FusionPassError, match="already registered"):
        registry.register("x", lambda gm: 0)


def test_a_pass_returning_a_non_int_or_raising_is_named():
    registry = FusionPassRegistry()
    registry.register("returns_none", lambda gm: None)
    with pytest.raises(FusionPassError, match="returns_none returned None"):
        registry.run(_gm(), spec="")
    registry = FusionPassRegistry()
    registry.register("boom", lambda gm: 1 // 0)
    with pytest.raises(FusionPassError, match=r"boom raised ZeroDivisionError.*-boom"):
        registry.run(_gm(), spec="")


def test_plugins_fill_the_process_registry(plugin):
    def register_fusion_passes(registry: FusionPassRegistry) -> None:
        registry.register("test_only_fusion", lambda gm: 0, order=5)

    assert "test_only_fusion" not in fusion_passes().names()
    plugin(register_fusion_passes=register_fusion_passes)
    assert "test_only_fusion" in fusion_passes().names()


def test_a_plugin_whose_hook_raises_is_quarantined_with_none_of_its_passes(plugin):
    def half_then_raise(registry: FusionPassRegistry) -> None:
        registry.register("half_registered", lambda gm: 0)
        raise RuntimeError("broken plugin")

    record = plugin(register_fusion_passes=half_then_raise)
    names = fusion_passes().names()
    assert "half_registered" not in names
    assert record.status == "quarantined"
    assert "broken plugin" in record.reason
    assert ir_core.plugins.quarantined_names().count(record.name) == 1
