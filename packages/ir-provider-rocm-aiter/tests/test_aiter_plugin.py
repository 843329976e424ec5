"""The plugin as ir-core sees it: discovery, registration, availability, supports_args, priority."""

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
from ir_provider_rocm_aiter import aiter_norm, plugin

EPS = 1e-6
OPS = ("rms_norm", "fused_add_rms_norm", "dual_rms_norm")


def _e(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [
        e
        for e in importlib.metadata.entry_points(group="ir_core.plugins")
        if e.name == "rocm_aiter"
    ]
    assert ep.value == "ir_provider_rocm_aiter.plugin"
    assert ep.load() is plugin


def test_plugin_loads_and_registers_aiter_for_three_ops() -> None:
    ir_core.load_plugins()
    (record,) = [r for r in plugins.records() if r.name == "rocm_aiter"]
    assert record.status == "loaded", f"{record.reason}\n{record.traceback}"
    assert record.providers == ["aiter"]
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
    aiter_norm.load()[0] is not None, reason="AITER is usable here; this checks the reason text"
)
def test_unavailable_with_a_precise_reason_and_no_traceback() -> None:
    ok, reason = ir_core.get_op("rms_norm").impls["aiter"].status()
    assert not ok
    problems = aiter_norm.environment_problems()
    assert problems, "AITER unusable although the environment looks complete"
    assert reason == "; ".join(problems)
    out = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in out.stderr
    data = json.loads(out.stdout)
    (entry,) = [p for p in data["providers"] if p["provider"] == "aiter"]
    assert reason in json.dumps(entry)


def test_any_import_error_is_a_reason_never_raised() -> None:
    def raising_import(name: str):
        raise RuntimeError("no ROCm runtime found")  # what `import aiter` does without ROCm

    api, reason = aiter_norm.import_and_probe(raising_import)
    assert api is None
    assert reason == "import aiter failed (RuntimeError: no ROCm runtime found)"


def test_import_of_an_unrelated_aiter_module_is_named() -> None:
    api, reason = aiter_norm.import_and_probe(lambda name: object())
    assert api is None and "not AMD's AITER" in reason


def test_import_and_probe_of_a_real_looking_module() -> None:
    api, reason = aiter_norm.import_and_probe(lambda name: build("0.1.17"))
    assert reason == "" and api is not None and api.fused_add_gemma


def test_dispatch_on_cpu_never_picks_aiter() -> None:
    x, w = torch.randn(4, 64, dtype=torch.bfloat16), torch.randn(64, dtype=torch.bfloat16)
    with ir_core.set_priority(rms_norm=["aiter"]):
        explanation = ir_core.explain("rms_norm", x, w, EPS)
    assert explanation.provider == "native"
    (reason,) = [r for p, r in explanation.skipped if p == "aiter"]
    assert reason.startswith("unavailable: ") or "not cpu" in reason


# -- supports_args ---------------------------------------------------------------------------

GEN_16 = aiter_norm.probe(build("0.1.16"), "0.1.16")
GEN_17 = aiter_norm.probe(build("0.1.17"), "0.1.17")
OPUS_SOLE = aiter_norm.probe(build("0.1.17", opus="sole"), "0.1.19")
OPUS_BY_ENV = aiter_norm.probe(build("0.1.17", opus="opus"), "0.1.18")
CK_BY_ENV = aiter_norm.probe(build("0.1.17", opus="ck"), "0.1.18")
H = 4096
W = _e(H)

RMS_CASES = [
    ("bf16", GEN_16, (_e(8, H), W, 0.0, None), True),
    ("fp16", GEN_16, (_e(8, H, dtype=torch.float16), _e(H, dtype=torch.float16), 0.0, None), True),
    ("3-D, strided rows: the wrapper copies", GEN_16, (_e(8, H + 8)[:, :H], W, 0.0, None), True),
    ("H=8192, plain: HIP kernel", GEN_16, (_e(2, 8192), _e(8192), 0.0, None), True),
    ("H=16384, plain: CK only, not built everywhere", GEN_16, (_e(2, 16384), _e(16384), 0.0, None),
     False),
    ("H=16384, plain: opus, the sole backend", OPUS_SOLE, (_e(2, 16384), _e(16384), 0.0, None),
     True),
    ("H=16384, plain: opus chosen", OPUS_BY_ENV, (_e(2, 16384), _e(16384), 0.0, None), True),
    ("H=16384, plain: CK chosen", CK_BY_ENV, (_e(2, 16384), _e(16384), 0.0, None), False),
    ("H=16384, gemma: even with opus", OPUS_SOLE, (_e(2, 16384), _e(16384), 1.0, None), False),
    ("variance_size == H", GEN_16, (_e(8, H), W, 0.0, H), True),
    ("fp32: no AITER kernel", GEN_17, (_e(8, H, dtype=torch.float32),
                                       _e(H, dtype=torch.float32), 0.0, None), False),
    ("fp32 weight with bf16 x", GEN_17, (_e(8, H), _e(H, dtype=torch.float32), 0.0, None), False),
    ("weight None", GEN_17, (_e(8, H), None, 0.0, None), False),
    ("variance_size < H", GEN_17, (_e(8, H), W, 0.0, 128), False),
    ("weight_bias 0.5", GEN_17, (_e(8, H), W, 0.5, None), False),
    ("gemma before 0.1.17", GEN_16, (_e(8, H), W, 1.0, None), False),
    ("gemma from 0.1.17", GEN_17, (_e(8, H), W, 1.0, None), True),
    ("gemma at H=8192", GEN_17, (_e(2, 8192), _e(8192), 1.0, None), True),
    ("gemma at H=8193: CK path drops gemma_norm", GEN_17, (_e(2, 8193), _e(8193), 1.0, None),
     False),
    ("AITER not loaded: no gemma", None, (_e(8, H), W, 1.0, None), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("api", "args", "expected"), [c[1:] for c in RMS_CASES], ids=[c[0] for c in RMS_CASES]
)
def test_rms_norm_supported(api, args, expected: bool) -> None:
    x, w, wb, vs = args
    assert aiter_norm.rms_norm_supported(api, x, w, wb, vs) is expected


def test_fused_add_supported() -> None:
    x = _e(8, H)
    assert aiter_norm.fused_add_rms_norm_supported(GEN_16, x, _e(8, H), W, 0.0, None)
    assert not aiter_norm.fused_add_rms_norm_supported(GEN_16, x, _e(8, H), W, 1.0, None)
    assert aiter_norm.fused_add_rms_norm_supported(GEN_17, x, _e(8, H), W, 1.0, None)
    assert not aiter_norm.fused_add_rms_norm_supported(
        GEN_17, _e(2, 8200), _e(2, 8200), _e(8200), 1.0, None
    )
    assert not aiter_norm.fused_add_rms_norm_supported(
        GEN_17, x, _e(8, H, dtype=torch.float32), W, 0.0, None
    )
    assert not aiter_norm.fused_add_rms_norm_supported(GEN_17, x, _e(4, H), W, 0.0, None)
    wide = _e(2, 12288)
    assert not aiter_norm.fused_add_rms_norm_supported(GEN_17, wide, wide, _e(12288), 0.0, None)
    assert aiter_norm.fused_add_rms_norm_supported(OPUS_SOLE, wide, wide, _e(12288), 0.0, None)


def test_dual_supported() -> None:
    ok = aiter_norm.dual_rms_norm_supported
    assert ok(_e(8, 1536), _e(1536), _e(8, 512), _e(512))
    assert ok(_e(2, 4, 8192), _e(8192), _e(2, 4, 64), _e(64))
    assert not ok(_e(8, 8193), _e(8193), _e(8, 512), _e(512))  # kernel's n limit
    assert not ok(_e(8, 1536), _e(1536), _e(4, 512), _e(512))  # different row counts
    assert not ok(_e(8, 64), _e(64), _e(8, 64, dtype=torch.float16), _e(64, dtype=torch.float16))
    assert not ok(
        _e(8, 64, dtype=torch.float32),
        _e(64, dtype=torch.float32),
        _e(8, 64, dtype=torch.float32),
        _e(64, dtype=torch.float32),
    )


def test_supports_args_accept_fake_tensors() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, w = torch.empty(8, H, dtype=torch.bfloat16), torch.empty(H, dtype=torch.bfloat16)
        assert aiter_norm.rms_norm_supported(GEN_17, x, w, 1.0, None) is True
        assert aiter_norm.dual_rms_norm_supported(x, w, x, w) is True
