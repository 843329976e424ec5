"""What ``torch.ops.oink`` receives, with ``RecordingOink`` in its place (runs anywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_oink import oink_norm

EPS = 1e-6


def _norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


@dataclass
class RecordingOink:
    """Stands in for ``torch.ops.oink``: records each call and does what the op does --
    ``rmsnorm`` returns a new tensor with x's 2-D strides, ``fused_add_rms_norm`` works in
    place and returns None -- and checks the preconditions Oink asserts."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def rmsnorm(self, x, weight, eps):
        assert x.dim() == 2 and weight.dim() == 1, "oink::rmsnorm expects a 2D view"
        self.calls.append(("rmsnorm", (x, weight, eps)))
        out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype)
        return out.copy_(_norm(x, weight, eps))

    def fused_add_rms_norm(self, x, residual, weight, eps):
        assert x.shape == residual.shape and x.dtype == residual.dtype
        self.calls.append(("fused_add_rms_norm", (x, residual, weight, eps)))
        residual.copy_(x.float() + residual.float())
        x.copy_(_norm(residual, weight, eps))


def _t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(shape).to(dtype)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def test_rms_norm_passes_a_2d_view_without_copying() -> None:
    rec = RecordingOink()
    x, w = _t(2, 3, 64), _t(64)
    out = oink_norm.call_rms_norm(rec, x, w, EPS)
    ((name, (x2d, weight, eps)),) = rec.calls
    assert name == "rmsnorm" and weight is w and eps == EPS
    assert x2d.shape == (6, 64) and x2d.data_ptr() == x.data_ptr()
    assert out.shape == x.shape and not _same_memory(out, x)
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_rms_norm_keeps_padded_rows() -> None:
    rec = RecordingOink()
    buffer = _t(4, 96)
    x = buffer[:, :64]  # MLA-style padded rows: stride (96, 1)
    out = oink_norm.call_rms_norm(rec, x, _t(64), EPS)
    (x2d,) = [args[0] for _, args in rec.calls]
    assert x2d.stride() == (96, 1) and x2d.data_ptr() == x.data_ptr()
    assert out.stride() == (96, 1)


def test_fused_add_works_in_place_on_owned_copies() -> None:
    rec = RecordingOink()
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = oink_norm.call_fused_add_rms_norm(rec, x, r, w, EPS)
    ((name, (xx, rr, weight, eps)),) = rec.calls
    assert name == "fused_add_rms_norm" and weight is w and eps == EPS
    assert _same_memory(xx, out) and _same_memory(rr, residual_out)
    assert xx.shape == (6, 64) and xx.is_contiguous() and rr.is_contiguous()
    assert torch.equal(x, x0) and torch.equal(r, r0)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_zero_tokens_never_reach_oink() -> None:
    rec = RecordingOink()
    assert oink_norm.call_rms_norm(rec, _t(0, 64), _t(64), EPS).shape == (0, 64)
    out = oink_norm.call_fused_add_rms_norm(rec, _t(0, 64), _t(0, 64), _t(64), EPS)
    assert out[1].shape == (0, 64) and rec.calls == []


H = 4096
W = torch.empty(H, dtype=torch.bfloat16)


def _e(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


RMS_CASES = [
    ("bf16 contiguous", (_e(8, H), W), {}, True),
    ("fp32 contiguous", (_e(8, H, dtype=torch.float32), _e(H, dtype=torch.float32)), {}, True),
    ("3-D", (_e(2, 4, H), W), {}, True),
    ("1-D", (_e(H), W), {}, True),
    ("padded rows, stride multiple of 16", (_e(8, H + 64)[:, :H], W), {}, True),
    ("padded rows, stride not a multiple of 16", (_e(8, H + 8)[:, :H], W), {}, False),
    ("fp32 padded by 8", (_e(8, 72, dtype=torch.float32)[:, :64], _e(64, dtype=torch.float32)),
     {}, True),
    ("H=127: row stride 127", (_e(8, 127), _e(127)), {}, False),
    ("leading dims not mergeable", (_e(4, 2, H).transpose(0, 1), W), {}, False),
    ("non-unit last stride", (_e(H, 8).t(), W), {}, False),
    ("fp16 x, bf16 weight", (_e(8, H, dtype=torch.float16), W), {}, False),
    ("fp64", (_e(8, H, dtype=torch.float64), _e(H, dtype=torch.float64)), {}, False),
    ("weight None", (_e(8, H), None), {}, False),
    ("strided weight", (_e(8, H), _e(2 * H)[::2]), {}, False),
    ("Gemma weight_bias", (_e(8, H), W), {"weight_bias": 1.0}, False),
    ("variance_size < H", (_e(8, H), W), {"variance_size": 64}, False),
    ("variance_size == H", (_e(8, H), W), {"variance_size": H}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"), [c[1:] for c in RMS_CASES], ids=[c[0] for c in RMS_CASES]
)
def test_rms_norm_stride_rules(args: tuple, kwargs: dict, expected: bool) -> None:
    x, w = args
    assert oink_norm.rms_norm_supports(x, w, EPS, **kwargs) is expected


def test_fused_add_rules() -> None:
    ok = oink_norm.fused_add_rms_norm_supports
    assert ok(_e(8, H), _e(8, H), W, EPS)
    # layout is free (copied), but the copies' row stride H must be a vector multiple
    assert ok(_e(8, H + 8)[:, :H], _e(8, H), W, EPS)
    assert not ok(_e(8, 120), _e(8, 120), _e(120), EPS)
    assert ok(_e(8, 120, dtype=torch.float32), _e(8, 120, dtype=torch.float32),
              _e(120, dtype=torch.float32), EPS)  # fmt: skip
    assert not ok(_e(8, H), _e(8, H, dtype=torch.float32), W, EPS)
    assert not ok(_e(8, H), _e(8, H), W, EPS, weight_bias=1.0)


def test_supports_args_on_fake_tensors() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(8, H + 64, dtype=torch.bfloat16)[:, :H]
        w = torch.empty(H, dtype=torch.bfloat16)
        assert oink_norm.rms_norm_supports(x, w, EPS) is True
        assert oink_norm.fused_add_rms_norm_supports(x, x, w, EPS) is True


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_mapping_matches_native_on_admitted_samples(dtype: torch.dtype) -> None:
    rec = RecordingOink()
    for op_name, call, supports in (
        (
            "rms_norm",
            lambda x, w, e, wb=0.0, vs=None: oink_norm.call_rms_norm(rec, x, w, e),
            oink_norm.rms_norm_supports,
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: oink_norm.call_fused_add_rms_norm(rec, x, r, w, e),
            oink_norm.fused_add_rms_norm_supports,
        ),
    ):
        op = ir_core.get_op(op_name)
        admitted = 0
        for sample in op.sample_inputs(dtype):
            args = op.bind(sample.args, sample.kwargs)
            if supports(*args):
                admitted += 1
                assert_matches_native(op, lambda *a, call=call: call(*a), ir_core.Sample(args))
        assert admitted > 0, op_name
