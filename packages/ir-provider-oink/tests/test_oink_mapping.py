"""What Oink receives, with ``RecordingOink`` in its place (runs anywhere), and proof that
every admitted input takes Oink's kernel path, never its silent PyTorch fallback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_oink import oink_norm

EPS = 1e-6
BF16 = torch.bfloat16


def can_use_ptr_path(x, weight, residual) -> bool:
    """What ``_can_use_ptr_path(x, weight, None, residual)`` decides in KernelAgent-Oink
    (``oink/src/kernelagent_oink/blackwell/_rmsnorm_impl.py``, commit a3001c70)."""
    if x.stride(1) != 1:
        return False
    if residual is not None and residual.dtype != x.dtype:
        return False
    if weight is not None and weight.dtype != x.dtype:
        if weight.dtype is not torch.float32 or x.dtype not in (torch.float16, torch.bfloat16):
            return False
    if x.stride(0) % (256 // (x.element_size() * 8)) != 0 or x.data_ptr() % 16 != 0:
        return False
    if residual is not None and (
        residual.stride(1) != 1 or residual.stride(0) != x.stride(0) or residual.data_ptr() % 16
    ):
        return False
    if weight is not None:
        if not weight.is_contiguous():
            return False
        if weight.data_ptr() % (32 if weight.dtype is torch.float32 else 16) != 0:
            return False
    return True


def _reference(x, w, residual, eps):
    xf = x.float() if residual is None else x.float() + residual.float()
    y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)
    return (y * w.float()).to(x.dtype)


@dataclass
class RecordingOink:
    """Stands in for Oink: ``rmsnorm`` is ``torch.ops.oink.rmsnorm`` (asserting what it asserts),
    ``fused_add_rmsnorm_forward`` the Python function; both go through ``rmsnorm_forward``,
    which records whether the kernel ("ptr") or the silent reference ("fallback") would run."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def rmsnorm_forward(self, x, weight, residual, eps):
        assert x.dim() == 2, "Use (M, N) tensor; flatten batch/seq beforehand."
        self.paths.append("ptr" if can_use_ptr_path(x, weight, residual) else "fallback")
        y = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype).copy_(
            _reference(x, weight, residual, eps)
        )
        if residual is None:
            return y, None, None
        z = torch.empty_strided(residual.shape, residual.stride(), dtype=residual.dtype)
        return y, None, z.copy_(x.float() + residual.float())

    def rmsnorm(self, x, weight, eps):
        assert x.dim() == 2, "oink::rmsnorm expects a 2D [M, N] tensor view"
        assert weight.dim() == 1, "weight must be 1D [N]"
        self.calls.append(("rmsnorm", (x, weight, eps)))
        return self.rmsnorm_forward(x, weight, None, eps)[0]

    def fused_add_rmsnorm_forward(self, x, residual, weight, eps=1e-6):
        assert x.shape == residual.shape and x.dtype == residual.dtype
        self.calls.append(("fused_add_rmsnorm_forward", (x, residual, weight, eps)))
        n = x.shape[-1]
        y, _, z = self.rmsnorm_forward(x.view(-1, n), weight, residual.view(-1, n), eps)
        return y.view(x.shape), z.view(x.shape)


def _t(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.randn(shape).to(dtype)


def _e(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


def _offset(shape: tuple[int, ...], elements: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    """A tensor starting ``elements`` into its storage (a misaligned start for small counts)."""
    n = 1
    for s in shape:
        n *= s
    return torch.randn(n + elements).to(dtype)[elements:].view(shape)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# -- mapping ---------------------------------------------------------------------------------


def test_rms_norm_passes_a_2d_view_without_copying() -> None:
    rec = RecordingOink()
    x, w = _t(2, 3, 64), _t(64)
    out = oink_norm.call_rms_norm(rec, x, w, EPS)
    ((name, (x2d, weight, eps)),) = rec.calls
    assert name == "rmsnorm" and weight is w and eps == EPS and rec.paths == ["ptr"]
    assert x2d.shape == (6, 64) and x2d.data_ptr() == x.data_ptr()
    assert out.shape == x.shape and not _same_memory(out, x)
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_rms_norm_keeps_padded_rows() -> None:
    rec = RecordingOink()
    x = _t(4, 96)[:, :64]  # MLA-style padded rows: stride (96, 1)
    out = oink_norm.call_rms_norm(rec, x, _t(64), EPS)
    (x2d,) = [args[0] for _, args in rec.calls]
    assert x2d.stride() == (96, 1) and x2d.data_ptr() == x.data_ptr()
    assert out.stride() == (96, 1)


def test_fused_add_is_out_of_place_without_copies() -> None:
    rec = RecordingOink()
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = oink_norm.call_fused_add_rms_norm(
        rec.fused_add_rmsnorm_forward, x, r, w, EPS
    )
    ((name, (xx, rr, weight, eps)),) = rec.calls
    assert name == "fused_add_rmsnorm_forward" and weight is w and eps == EPS
    assert xx.data_ptr() == x.data_ptr() and rr.data_ptr() == r.data_ptr()  # views, no copies
    assert rec.paths == ["ptr"]
    assert not any(_same_memory(o, i) for o in (out, residual_out) for i in (x, r))
    assert torch.equal(x, x0) and torch.equal(r, r0)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_zero_tokens_never_reach_oink() -> None:
    rec = RecordingOink()
    assert oink_norm.call_rms_norm(rec, _t(0, 64), _t(64), EPS).shape == (0, 64)
    out = oink_norm.call_fused_add_rms_norm(
        rec.fused_add_rmsnorm_forward, _t(0, 64), _t(0, 64), _t(64), EPS
    )
    assert out[1].shape == (0, 64) and rec.calls == []


def test_a_misaligned_storage_base_is_copied_not_sent_to_the_fallback() -> None:
    """Memory from another library can start anywhere; supports_args never reads alignment."""
    rec = RecordingOink()
    raw = bytearray(2 * (4 * 64 + 8))
    x = torch.frombuffer(raw, dtype=BF16, offset=2, count=4 * 64).view(4, 64).copy_(_t(4, 64))
    w = _t(64)
    assert x.data_ptr() % 16 and oink_norm.rms_norm_supports(x, w, EPS)
    out = oink_norm.call_rms_norm(rec, x, w, EPS)
    assert rec.paths == ["ptr"]
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_a_misaligned_storage_offset_is_copied_and_matches_native() -> None:
    rec = RecordingOink()
    x, w = _offset((4, 64), 1), _offset((64,), 3)
    assert x.data_ptr() % 16 and w.data_ptr() % 16
    out = oink_norm.call_rms_norm(rec, x, w, EPS)
    assert rec.paths == ["ptr"]
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_supports_args_gives_one_answer_per_dispatch_key_whatever_the_storage_offset() -> None:
    """ir-core caches a predicate's answer per shape and strides, not per storage offset."""
    for dtype in (BF16, torch.float32):
        w = _e(H, dtype=dtype)
        answers = {
            oink_norm.rms_norm_supports(_offset((8, H), k, dtype), _offset((H,), k, dtype), EPS)
            for k in range(9)
        }
        fused = {
            oink_norm.fused_add_rms_norm_supports(
                _offset((8, H), k, dtype), _offset((8, H), 8 - k, dtype), w, EPS
            )
            for k in range(9)
        }
        assert answers == {True} and fused == {True}, dtype


# -- supports_args ---------------------------------------------------------------------------

H = 4096
W = _e(H)

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
    ("x starts 2 bytes into its storage", (_offset((8, H), 1), W), {}, True),
    ("x starts 16 bytes into its storage", (_offset((8, H), 8), W), {}, True),
    ("weight starts 2 bytes in", (_e(8, H), _offset((H,), 1)), {}, True),
    ("fp32 weight with bf16 x", (_e(8, H), _e(H, dtype=torch.float32)), {}, True),
    ("fp32 weight 16 but not 32 bytes in", (_e(8, H), _offset((H,), 4, torch.float32)), {},
     True),
    ("fp32 weight with fp32 x 16 bytes in",
     (_e(8, H, dtype=torch.float32), _offset((H,), 4, torch.float32)), {}, True),
    ("fp16 x, bf16 weight", (_e(8, H, dtype=torch.float16), W), {}, False),
    ("bf16 x, fp16 weight", (_e(8, H), _e(H, dtype=torch.float16)), {}, False),
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
def test_rms_norm_rules(args: tuple, kwargs: dict, expected: bool) -> None:
    x, w = args
    assert oink_norm.rms_norm_supports(x, w, EPS, **kwargs) is expected
    if expected:  # and what is admitted reaches Oink's kernel, misaligned starts copied
        rec = RecordingOink()
        oink_norm.call_rms_norm(rec, x, w, EPS)
        assert rec.paths == ["ptr"]


FUSED_CASES = [
    ("contiguous", (_e(8, H), _e(8, H), W), True),
    ("padded x, padded residual with the same row stride",
     (_e(8, H + 64)[:, :H], _e(8, H + 64)[:, :H], W), True),
    ("padded x, contiguous residual: row strides differ", (_e(8, H + 64)[:, :H], _e(8, H), W),
     False),
    ("residual starts 2 bytes in", (_e(8, H), _offset((8, H), 1), W), True),
    ("fp32 residual with bf16 x", (_e(8, H), _e(8, H, dtype=torch.float32), W), False),
    ("fp32 weight", (_e(8, H), _e(8, H), _e(H, dtype=torch.float32)), True),
    ("H=120 bf16", (_e(8, 120), _e(8, 120), _e(120)), False),
    ("H=120 fp32", (_e(8, 120, dtype=torch.float32), _e(8, 120, dtype=torch.float32),
                    _e(120, dtype=torch.float32)), True),
    ("residual not row-viewable", (_e(4, 2, H), _e(2, 4, H).transpose(0, 1), W), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in FUSED_CASES], ids=[c[0] for c in FUSED_CASES]
)
def test_fused_add_rules(args: tuple, expected: bool) -> None:
    x, r, w = args
    assert oink_norm.fused_add_rms_norm_supports(x, r, w, EPS) is expected
    if expected:
        rec = RecordingOink()
        oink_norm.call_fused_add_rms_norm(rec.fused_add_rmsnorm_forward, x, r, w, EPS)
        assert rec.paths == ["ptr"]
    assert not oink_norm.fused_add_rms_norm_supports(x, r, w, EPS, weight_bias=1.0)


def test_supports_args_on_fake_tensors() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(8, H + 64, dtype=BF16)[:, :H]
        w = torch.empty(H, dtype=BF16)
        assert oink_norm.rms_norm_supports(x, w, EPS) is True
        assert oink_norm.fused_add_rms_norm_supports(x, x, w, EPS) is True
        assert oink_norm.rms_norm_supports(torch.empty(8, H + 8, dtype=BF16)[:, :H], w,
                                           EPS) is False  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_every_admitted_sample_matches_native_on_the_kernel_path(dtype: torch.dtype) -> None:
    rec = RecordingOink()
    for op_name, call, supports in (
        (
            "rms_norm",
            lambda x, w, e, wb=0.0, vs=None: oink_norm.call_rms_norm(rec, x, w, e),
            oink_norm.rms_norm_supports,
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: oink_norm.call_fused_add_rms_norm(
                rec.fused_add_rmsnorm_forward, x, r, w, e
            ),
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
    assert rec.paths and set(rec.paths) == {"ptr"}, rec.paths
