"""What IPEX and vllm-xpu-kernels receive, with recorders in their place (runs anywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_xpu import ipex_norm, xpu_kernels_norm

EPS = 1e-6


def _norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


@dataclass
class RecordingIpexFunctional:
    """Stands in for ``ipex.llm.functional``: records calls, computes with torch."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def rms_norm(self, hidden_states, weight, eps):
        self.calls.append(("rms_norm", (hidden_states, weight, eps)))
        return _norm(hidden_states, weight, eps)

    def add_rms_norm(self, residual, x, weight, bias, eps, add_back=False):
        self.calls.append(("add_rms_norm", (residual, x, weight, bias, eps, add_back)))
        s = x.float() + residual.float()
        if add_back:
            residual.copy_(s)
        return _norm(s, weight, eps).to(x.dtype)


@dataclass
class RecordingXpuOps:
    """Stands in for ``torch.ops._C`` of vllm-xpu-kernels: records, then does what the SYCL
    kernels do, in place where they are in place."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def rms_norm(self, out, input, weight, epsilon):
        self.calls.append(("rms_norm", (out, input, weight, epsilon)))
        out.copy_(_norm(input, weight, epsilon))

    def fused_add_rms_norm(self, input, residual, weight, epsilon):
        self.calls.append(("fused_add_rms_norm", (input, residual, weight, epsilon)))
        residual.copy_(input.float() + residual.float())
        input.copy_(_norm(residual, weight, epsilon))


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


# -- vllm-xpu-kernels --------------------------------------------------------------------------


def test_xpu_kernels_rms_norm_writes_into_a_new_output() -> None:
    rec = RecordingXpuOps()
    x, w = _t(2, 3, 64), _t(64)
    out = xpu_kernels_norm.call_rms_norm(rec, x, w, EPS)
    ((name, (out_arg, x2d, weight, eps)),) = rec.calls
    assert name == "rms_norm" and _same_memory(out_arg, out) and not _same_memory(out, x)
    assert x2d.shape == (6, 64) and x2d.is_contiguous() and weight is w and eps == EPS
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_xpu_kernels_fused_add_runs_in_place_on_owned_copies() -> None:
    rec = RecordingXpuOps()
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = xpu_kernels_norm.call_fused_add_rms_norm(rec, x, r, w, EPS)
    ((name, (inp, res, weight, eps)),) = rec.calls
    assert name == "fused_add_rms_norm" and weight is w and eps == EPS
    assert _same_memory(inp, out) and _same_memory(res, residual_out)
    assert inp.shape == (6, 64) and inp.is_contiguous() and res.is_contiguous()
    assert torch.equal(x, x0) and torch.equal(r, r0)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_xpu_kernels_supports() -> None:
    x, w = _t(4, 64), _t(64)
    assert xpu_kernels_norm.rms_norm_supports(x.half(), w.half(), EPS)
    assert xpu_kernels_norm.rms_norm_supports(_t(64, 8).t(), _t(64), EPS)  # wrapper copies
    assert not xpu_kernels_norm.rms_norm_supports(x, w, EPS, weight_bias=1.0)
    assert not xpu_kernels_norm.rms_norm_supports(x, w, EPS, variance_size=8)
    assert not xpu_kernels_norm.rms_norm_supports(x, w.float(), EPS)
    assert not xpu_kernels_norm.rms_norm_supports(x, _t(128)[::2], EPS)  # strided weight
    fa = xpu_kernels_norm.fused_add_rms_norm_supports
    assert fa(x, _t(4, 64), w, EPS) and fa(x.float(), _t(4, 64).float(), w.float(), EPS)
    assert not fa(x.half(), _t(4, 64).half(), w.half(), EPS)  # two fp16 roundings
    assert not fa(x, _t(4, 64).float(), w, EPS)


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
            lambda x, w, e, wb=0.0, vs=None: xpu_kernels_norm.call_rms_norm(ops_rec, x, w, e),
            xpu_kernels_norm.rms_norm_supports,
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: xpu_kernels_norm.call_fused_add_rms_norm(
                ops_rec, x, r, w, e
            ),
            xpu_kernels_norm.fused_add_rms_norm_supports,
        ),
    ]
    for op_name, call, supported in cases:
        op = ir_core.get_op(op_name)
        for sample in op.sample_inputs(dtype):
            args = op.bind(sample.args, sample.kwargs)
            if supported(*args):
                assert_matches_native(op, lambda *a, call=call: call(*a), ir_core.Sample(args))
