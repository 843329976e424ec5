"""ir-fusions as an ir-core plugin: entry point, fused ops, and its passes in ir-core's registry."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import torch

import ir_core
from ir_core import plugins
from ir_fusions import PASSES, collective_norms, plugin

ir = torch.ops.ir_core
compile_passes = pytest.importorskip(
    "ir_core.compile.passes", reason="this ir-core has no fusion pass registry (ir_core.compile)"
)


def test_entry_point_names_the_plugin_module():
    (ep,) = [
        e for e in importlib.metadata.entry_points(group="ir_core.plugins") if e.name == "fusions"
    ]
    assert ep.value == "ir_fusions.plugin"
    assert ep.load() is plugin


def test_plugin_loads_and_declares_the_fused_ops():
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "fusions"]
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    for name in ("all_reduce_rms_norm", "all_reduce_fused_add_rms_norm"):
        op = ir_core.get_op(name)
        assert op.plugin == "fusions"
        assert getattr(ir, name).default is op.torch_op
    schema = str(ir.all_reduce_rms_norm.default._schema)
    assert "Tensor x, str group_name, Tensor? weight, float epsilon" in schema
    assert schema.endswith("-> (Tensor, Tensor)")


def test_register_fusion_passes_gives_every_pass_its_name_and_order():
    registry = compile_passes.FusionPassRegistry()
    plugin.register_fusion_passes(registry)
    assert registry.names() == [
        "fused_add_rms_norm",
        "dual_rms_norm",
        "all_reduce_rms_norm",
        "fused_add_rms_norm_fp8_quant",
        "rms_norm_fp8_quant",
        "silu_and_mul_fp8_quant",
    ]
    assert [(p.name, p.order) for p in registry.passes()] == [(p.name, p.order) for p in PASSES]


def test_ir_core_collects_the_passes_from_the_installed_plugin():
    registry = compile_passes.fusion_passes()
    assert {"fused_add_rms_norm", "dual_rms_norm", "all_reduce_rms_norm"} <= set(registry.names())


def _graph_with_both(trace):
    def f(x, r, p, q_w, kv_w, w):
        s = x + r
        y = ir.rms_norm(s, w, 1e-6)
        q_c, kv_c, _ = p.split([8, 4, 2], dim=-1)
        return y, s, ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6)

    args = (
        torch.randn(2, 8),
        torch.randn(2, 8),
        torch.randn(2, 14),
        torch.randn(8),
        torch.randn(4),
        torch.randn(8),
    )
    return trace(f, *args, fake=True)


def test_registered_passes_leave_recompiling_to_the_pipeline(trace, monkeypatch):
    """Lowering edits the graph after the fusions and Inductor recompiles once at the end; a
    recompile per pass would be wasted. The registered callables keep the passes' ``repr`` and
    ``fingerprint()``."""
    registry = compile_passes.FusionPassRegistry()
    plugin.register_fusion_passes(registry)
    assert [repr(p.fn) for p in registry.passes()] == [repr(p) for p in PASSES]
    assert [p.fn.fingerprint() for p in registry.passes()] == [p.fingerprint() for p in PASSES]
    gm = _graph_with_both(trace)
    recompiles = []
    monkeypatch.setattr(gm, "recompile", lambda: recompiles.append(1))
    assert registry.run(gm)["fused_add_rms_norm"] == 1
    assert recompiles == []


#: The passes that find nothing to rewrite in that graph.
NOTHING_ELSE = dict.fromkeys(
    [
        "all_reduce_rms_norm",
        "fused_add_rms_norm_fp8_quant",
        "rms_norm_fp8_quant",
        "silu_and_mul_fp8_quant",
    ],
    0,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", {"fused_add_rms_norm": 1, "dual_rms_norm": 1, **NOTHING_ELSE}),
        ("-dual_rms_norm", {"fused_add_rms_norm": 1, **NOTHING_ELSE}),
        ("dual_rms_norm", {"dual_rms_norm": 1}),
        ("none", {}),
    ],
)
def test_enable_and_disable_by_name(trace, ops, spec, expected):
    registry = compile_passes.FusionPassRegistry()
    plugin.register_fusion_passes(registry)
    gm = _graph_with_both(trace)
    assert registry.run(gm, spec) == expected
    remaining = ops(gm)
    assert ("fused_add_rms_norm" in remaining) == ("fused_add_rms_norm" in expected)
    assert ("dual_rms_norm" in remaining) == ("dual_rms_norm" in expected)


def test_pass_fingerprint_is_stable_and_keys_the_compile_cache():
    """ir-core keys compile caches on ``fn.fingerprint()`` where a fusion callable has one: it
    must be the same in another process and differ between passes."""
    code = "from ir_fusions import PASSES; print([repr(p) for p in PASSES])"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert other.returncode == 0, other.stderr
    here = [repr(p) for p in PASSES]
    assert other.stdout.strip() == str(here)
    assert len(set(here)) == len(here) and not any("0x" in r for r in here)
    keys = [compile_passes.RegisteredPass(p.name, p, p.order).fingerprint() for p in PASSES]
    assert len(set(keys)) == len(keys)
    assert all(key.endswith(f":{p.fingerprint()}") for key, p in zip(keys, PASSES))


def test_fused_op_validation_names_the_fused_op():
    op = ir_core.get_op("all_reduce_rms_norm")
    x, w = torch.randn(2, 8), torch.randn(8)
    with pytest.raises(ValueError, match=r"ir_core\.ops\.all_reduce_rms_norm: argument 'weight'"):
        op.validate(op.bind((x, "0", torch.randn(4), 1e-6), {}))
    with pytest.raises(TypeError, match="group_name"):
        op.validate(op.bind((x, 3, w, 1e-6), {}))
    fused_add = ir_core.get_op("all_reduce_fused_add_rms_norm")
    with pytest.raises(ValueError, match=r"all_reduce_fused_add_rms_norm: argument 'residual'"):
        fused_add.validate(fused_add.bind((x, torch.randn(3, 8), "0", w, 1e-6), {}))


def test_no_samples_without_a_process_group():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        pytest.skip("a process group is initialized in this process")
    assert ir_core.get_op("all_reduce_rms_norm").sample_inputs(torch.float32) == []
    assert collective_norms.TOLERANCES[torch.bfloat16][1] >= 1.6e-2  # never tighter than ir-core
