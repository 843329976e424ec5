"""What IPEX and vllm-xpu-kernels receive for the norms, with recorders in their place (runs
anywhere), and the loading rules (torch pairing, per-function availability)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from recording_xpu import RecordingIpexFunctional, RecordingXpuOps

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_xpu import ipex_norm, xpu_kernels_norm

EPS = 1e-6


def _t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(shape).to(dtype)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# -- IPEX ------------------------------------------------------------------------------------


def test_ipex_rms_norm_mapping() -> None:
    rec = RecordingIpexFunctional()
    x, w = _t(3, 64), _t(64)
    out = ipex_norm.call_rms_norm(rec, x, w, EPS)
    ((name, (hidden, weight, eps)),) = rec.calls
    assert name == "rms_norm" and hidden is x and weight is w and eps == EPS
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_ipex_fused_add_mapping_residual_first_no_bias_no_add_back() -> None:
    rec = RecordingIpexFunctional()
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    r0 = r.clone()
    out, residual_out = ipex_norm.call_fused_add_rms_norm(rec, x, r, w, EPS)
    ((name, (residual, xx, weight, bias, eps, add_back)),) = rec.calls
    assert name == "add_rms_norm"
    assert residual is r and xx is x and weight is w and eps == EPS
    assert bias is None and add_back is False
    assert torch.equal(r, r0) and not _same_memory(residual_out, r)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native[0])
    assert torch.equal(residual_out, native[1])


def test_ipex_zero_tokens_do_not_reach_ipex() -> None:
    rec = RecordingIpexFunctional()
    out = ipex_norm.call_rms_norm(rec, _t(0, 64), _t(64), EPS)
    out2 = ipex_norm.call_fused_add_rms_norm(rec, _t(0, 64), _t(0, 64), _t(64), EPS)
    assert rec.calls == [] and out.shape == (0, 64) and out2[1].shape == (0, 64)


VERSION_CASES = [
    ("2.8.0", "2.13.0+cpu", "IPEX 2.8.0 needs torch 2.8.*, found 2.13.0+cpu"),
    ("2.8.0", "2.8.0", None),
    ("2.8.10+xpu", "2.8.0+xpu", None),
    ("2.8.0+cpu", "2.8.1", None),
    ("2.7.0", "2.8.0+cu128", "IPEX 2.7.0 needs torch 2.7.*, found 2.8.0+cu128"),
]


@pytest.mark.parametrize(("ipex_version", "torch_version", "expected"), VERSION_CASES)
def test_version_gate(ipex_version: str, torch_version: str, expected: str | None) -> None:
    assert ipex_norm.version_mismatch(ipex_version, torch_version) == expected


def test_mismatched_ipex_is_never_imported() -> None:
    def must_not_import(name: str) -> None:
        raise AssertionError(f"imported {name} despite the version mismatch")

    api, reason = ipex_norm.load_from("2.8.0", "2.13.0", must_not_import)
    assert api is None and reason == "IPEX 2.8.0 needs torch 2.8.*, found 2.13.0"


def test_ipex_import_crash_is_a_reason() -> None:
    def crashing_import(name: str) -> None:
        # what IPEX 2.8 does next to another torch: it calls os.exit, which does not exist
        raise AttributeError("module 'os' has no attribute 'exit'")

    api, reason = ipex_norm.load_from("2.8.0", "2.8.0", crashing_import)
    assert api is None
    assert reason == (
        "import intel_extension_for_pytorch failed "
        "(AttributeError: module 'os' has no attribute 'exit')"
    )


def test_ipex_not_installed_reason() -> None:
    api, reason = ipex_norm.load_from(None, "2.13.0")
    assert api is None and reason.startswith("intel-extension-for-pytorch is not installed")


def test_ipex_availability_is_per_function(monkeypatch: pytest.MonkeyPatch) -> None:
    class Ipex23Functional:  # IPEX 2.3: rms_norm and rotary_embedding only
        rms_norm = staticmethod(lambda *a: None)
        rotary_embedding = staticmethod(lambda *a: None)

    api = ipex_norm.IpexApi("2.3.0", Ipex23Functional(), xpu=False)
    monkeypatch.setattr(ipex_norm, "load", lambda: (api, ""))
    assert ipex_norm.available_rms_norm() == (True, "")
    assert ipex_norm.available_fused_add_rms_norm() == (
        False,
        "IPEX 2.3.0 has no ipex.llm.functional.add_rms_norm",
    )


IPEX_XPU = ipex_norm.IpexApi("2.8.10+xpu", RecordingIpexFunctional(), xpu=True)
IPEX_CPU_BUILD = ipex_norm.IpexApi("2.8.0", RecordingIpexFunctional(), xpu=False)


def test_ipex_supported() -> None:
    ok = ipex_norm.supported
    x, w = _t(4, 64), _t(64)
    assert ok(IPEX_CPU_BUILD, x, w, 0.0, None)
    assert ok(IPEX_CPU_BUILD, x.float(), w.float(), 0.0, None)
    assert ok(IPEX_CPU_BUILD, x.half(), w.half(), 0.0, 64)
    assert not ok(IPEX_CPU_BUILD, x, w, 1.0, None)  # Gemma
    assert not ok(IPEX_CPU_BUILD, x, w, 0.0, 32)  # variance_size < H
    assert not ok(IPEX_CPU_BUILD, x, w.float(), 0.0, None)  # fp32 weight, bf16 x
    assert not ok(IPEX_CPU_BUILD, x, None, 0.0, None)
    assert not ok(IPEX_CPU_BUILD, x.double(), w.double(), 0.0, None)
    meta_xpu = torch.empty(4, 64, dtype=torch.bfloat16, device="meta")
    # device is read from the tensor: an XPU tensor needs an XPU build of IPEX
    fake_xpu = _DeviceStandIn(meta_xpu, "xpu")
    assert not ok(IPEX_CPU_BUILD, fake_xpu, w, 0.0, None)
    assert ok(IPEX_XPU, fake_xpu, w, 0.0, None)
    assert not ok(None, fake_xpu, w, 0.0, None)


class _DeviceStandIn:
    """Metadata of a tensor on another device type (this machine has no XPU)."""

    def __init__(self, t: torch.Tensor, device_type: str) -> None:
        self._t = t
        self.device = torch.device(device_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


# -- vllm-xpu-kernels: loading ----------------------------------------------------------------


TORCH_CASES = [
    ("0.1.12.1", "2.13.0+xpu", None),
    ("0.1.13.2", "2.13.1", None),
    ("0.1.13.1", "2.12.0+xpu", "vllm-xpu-kernels 0.1.13.1 is built for torch 2.13.*, found 2.12.0+xpu"),
    ("0.1.12.3", "2.8.0", "vllm-xpu-kernels 0.1.12.3 is built for torch 2.13.*, found 2.8.0"),
    ("0.1.16.2", "2.99.0", None),  # a line whose pin is not known here: the import decides
]  # fmt: skip


@pytest.mark.parametrize(("kernels", "torch_version", "expected"), TORCH_CASES)
def test_xpu_kernels_torch_pairing(kernels: str, torch_version: str, expected: str | None) -> None:
    assert xpu_kernels_norm.torch_mismatch(kernels, torch_version) == expected


def test_torch_mismatch_is_reported_before_any_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xpu_kernels_norm.kit, "module_missing", lambda name: False)
    versions = {"vllm-xpu-kernels": "0.1.13.1", "torch": "2.8.0+xpu"}
    problems = xpu_kernels_norm.environment_problems(versions.get)
    assert "vllm-xpu-kernels 0.1.13.1 is built for torch 2.13.*, found 2.8.0+xpu" in problems


def test_weight_none_follows_the_registered_schema() -> None:
    assert xpu_kernels_norm.probe(RecordingXpuOps().ops).optional_weight is True
    assert xpu_kernels_norm.probe(RecordingXpuOps(legacy=True).ops).optional_weight is False


# -- vllm-xpu-kernels: norms --------------------------------------------------------------------

CURRENT = xpu_kernels_norm.probe(RecordingXpuOps().ops)
LEGACY = xpu_kernels_norm.probe(RecordingXpuOps(legacy=True).ops)


def test_xpu_kernels_rms_norm_writes_into_a_new_output() -> None:
    rec = RecordingXpuOps()
    x, w = _t(2, 3, 64), _t(64)
    out = xpu_kernels_norm.call_rms_norm(rec.ops, x, w, EPS)
    ((name, (out_arg, x2d, weight, eps)),) = rec.calls
    assert name == "rms_norm" and _same_memory(out_arg, out) and not _same_memory(out, x)
    assert x2d.shape == (6, 64) and x2d.is_contiguous() and weight is w and eps == EPS
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_xpu_kernels_weight_none_from_v0_1_12() -> None:
    rec = RecordingXpuOps()
    x = _t(3, 64)
    assert xpu_kernels_norm.rms_norm_supported(CURRENT, x, None, 0.0, None)
    assert not xpu_kernels_norm.rms_norm_supported(LEGACY, x, None, 0.0, None)
    out = xpu_kernels_norm.call_rms_norm(rec.ops, x, None, EPS)
    assert rec.calls[0][1][2] is None
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, None, EPS))
    assert xpu_kernels_norm.fused_add_rms_norm_supported(CURRENT, x, _t(3, 64), None, 0.0, None)


def test_xpu_kernels_fused_add_runs_in_place_on_owned_copies() -> None:
    rec = RecordingXpuOps()
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = xpu_kernels_norm.call_fused_add_rms_norm(rec.ops, x, r, w, EPS)
    ((name, (inp, res, weight, eps)),) = rec.calls
    assert name == "fused_add_rms_norm" and weight is w and eps == EPS
    assert _same_memory(inp, out) and _same_memory(res, residual_out)
    assert inp.shape == (6, 64) and inp.is_contiguous() and res.is_contiguous()
    assert torch.equal(x, x0) and torch.equal(r, r0)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_xpu_kernels_supports() -> None:
    ok = xpu_kernels_norm.rms_norm_supported
    x, w = _t(4, 64), _t(64)
    assert ok(CURRENT, x.half(), w.half(), 0.0, None)
    assert ok(CURRENT, _t(64, 8).t(), _t(64), 0.0, None)  # the wrapper copies
    assert not ok(CURRENT, x, w, 1.0, None)
    assert not ok(CURRENT, x, w, 0.0, 8)
    assert not ok(CURRENT, x, w.float(), 0.0, None)
    assert not ok(CURRENT, x, _t(128)[::2], 0.0, None)  # strided weight
    assert not ok(None, x, None, 0.0, None)  # not loaded: weight=None unknown
    fa = xpu_kernels_norm.fused_add_rms_norm_supported
    assert fa(CURRENT, x, _t(4, 64), w, 0.0, None)
    assert fa(CURRENT, x.float(), _t(4, 64).float(), w.float(), 0.0, None)
    assert not fa(CURRENT, x.half(), _t(4, 64).half(), w.half(), 0.0, None)  # two fp16 roundings
    assert not fa(CURRENT, x, _t(4, 64).float(), w, 0.0, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_mappings_match_native_on_the_op_samples(dtype: torch.dtype) -> None:
    ipex_rec, ops_rec = RecordingIpexFunctional(), RecordingXpuOps()
    cases = [
        (
            "rms_norm",
            lambda x, w, e, wb=0.0, vs=None: ipex_norm.call_rms_norm(ipex_rec, x, w, e),
            lambda x, w, e, wb=0.0, vs=None: ipex_norm.supported(IPEX_CPU_BUILD, x, w, wb, vs),
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: ipex_norm.call_fused_add_rms_norm(
                ipex_rec, x, r, w, e
            ),
            lambda x, r, w, e, wb=0.0, vs=None: (
                r.dtype == x.dtype and ipex_norm.supported(IPEX_CPU_BUILD, x, w, wb, vs)
            ),
        ),
        (
            "rms_norm",
            lambda x, w, e, wb=0.0, vs=None: xpu_kernels_norm.call_rms_norm(ops_rec.ops, x, w, e),
            lambda x, w, e, wb=0.0, vs=None: xpu_kernels_norm.rms_norm_supported(
                CURRENT, x, w, wb, vs
            ),
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: xpu_kernels_norm.call_fused_add_rms_norm(
                ops_rec.ops, x, r, w, e
            ),
            lambda x, r, w, e, wb=0.0, vs=None: xpu_kernels_norm.fused_add_rms_norm_supported(
                CURRENT, x, r, w, wb, vs
            ),
        ),
    ]
    for op_name, call, supported in cases:
        op = ir_core.get_op(op_name)
        for sample in op.sample_inputs(dtype):
            args = op.bind(sample.args, sample.kwargs)
            if supported(*args):
                assert_matches_native(op, lambda *a, call=call: call(*a), ir_core.Sample(args))
