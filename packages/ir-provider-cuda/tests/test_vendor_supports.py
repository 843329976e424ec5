"""What the vendor wrappers accept (metadata only, so checked everywhere), their per-call
layout helpers, and why each is unavailable here. Their kernels run on GPUs (``gpu`` tests);
their vendors' Python layers run in ``nox -s vendors`` (``test_vendor_*.py``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

import pytest
import torch

from ir_provider_cuda import (
    flashinfer_activation,
    flashinfer_lib,
    flashinfer_norm,
    flashinfer_rotary,
    liger_norm,
    quack_norm,
    torch_fused_norm,
)
from ir_provider_cuda.vendor_layout import aligned, empty_aligned

EPS = 1e-6
H = 4096
BF16, FP16, FP32, FP8 = torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn
SCALE = torch.ones(1)


def _x(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _released(monkeypatch: pytest.MonkeyPatch, package: str, version: str | None) -> None:
    """Pretend ``package`` is installed at ``version`` (None: not installed)."""
    real = importlib.metadata.version

    def version_of(name: str) -> str:
        if name == package:
            if version is None:
                raise importlib.metadata.PackageNotFoundError(name)
            return version
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version_of)


# -- flashinfer: norm + fp8 quant ---------------------------------------------------------------

QUANT_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], bool]] = [
    ("bf16", (_x(8, H), _x(H), EPS, SCALE), {}, True),
    ("fp16", (_x(8, H, dtype=FP16), _x(H, dtype=FP16), EPS, SCALE), {}, True),
    ("strided rows", (_x(8, H + 64)[:, :H], _x(H), EPS, SCALE), {}, True),
    ("gemma weight_bias (no public kernel)", (_x(8, H), _x(H), EPS, SCALE), {"weight_bias": 1.0}, False),
    ("fp32 weight with bf16 x", (_x(8, H), _x(H, dtype=FP32), EPS, SCALE), {}, False),
    ("weight None", (_x(8, H), None, EPS, SCALE), {}, False),
    ("fp32 x", (_x(8, H, dtype=FP32), _x(H, dtype=FP32), EPS, SCALE), {}, False),
    ("fnuz output", (_x(8, H), _x(H), EPS, SCALE), {"dtype": torch.float8_e4m3fnuz}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"), [c[1:] for c in QUANT_CASES], ids=[c[0] for c in QUANT_CASES]
)
def test_flashinfer_norm_quant_supports(args, kwargs, expected) -> None:
    assert flashinfer_norm.rms_norm_fp8_quant_static_supports(*args, **kwargs) is expected
    x, rest = args[0], args[1:]
    fused = flashinfer_norm.fused_add_rms_norm_fp8_quant_static_supports
    assert fused(x, _x(*x.shape, dtype=x.dtype), *rest, **kwargs) is expected


def test_flashinfer_fused_quant_residual_must_match_x() -> None:
    fused = flashinfer_norm.fused_add_rms_norm_fp8_quant_static_supports
    assert not fused(_x(8, H), _x(8, H, dtype=FP32), _x(H), EPS, SCALE)
    assert not fused(_x(8, H), _x(4, H), _x(H), EPS, SCALE)


def _at_offset(shape: tuple[int, ...], dtype: torch.dtype, elements: int) -> torch.Tensor:
    buf = empty_aligned((torch.Size(shape).numel() + elements,), dtype, torch.device("cpu"), 128)
    buf.copy_(torch.randn(buf.shape))
    return buf[elements:].view(shape)


@pytest.mark.parametrize(
    ("what", "shape", "offset", "copied"),
    [
        # the weight needs 16 bytes whatever H (the old rule asked gcd(128, H * 2): 2 bytes)
        ("weight H=4095, 2 bytes in", (4095,), 1, True),
        ("weight H=4096, 16 bytes in", (4096,), 8, False),  # (the old rule copied it)
        ("weight H=4096, 8 bytes in", (4096,), 4, True),
    ],
)
def test_flashinfer_kernel_weight(what: str, shape, offset: int, copied: bool) -> None:
    w = _at_offset(shape, BF16, offset)
    got = flashinfer_norm.kernel_weight(w)
    assert (got.data_ptr() != w.data_ptr()) is copied
    assert got.data_ptr() % 16 == 0 and torch.equal(got, w)


def test_flashinfer_kernel_rows() -> None:
    # contiguous rows: gcd(128, H * elem) and 16 bytes
    x = _at_offset((4, 4096), BF16, 8)
    rows = flashinfer_norm.kernel_rows(x)
    assert rows.data_ptr() % 128 == 0 and torch.equal(rows, x)
    x = _at_offset((4, 4095), BF16, 8)  # gcd(128, 8190) = 2, but 16 for the >2**31 kernel
    assert flashinfer_norm.kernel_rows(x).data_ptr() == x.data_ptr()
    # strided rows: 16 bytes, whatever H (the old rule asked gcd(128, H * elem) = 2 for 4095)
    buf = _at_offset((4, 4104), BF16, 0)
    x = buf[:, 1 : 1 + 4095]
    rows = flashinfer_norm.kernel_rows(x)
    assert rows.data_ptr() % 16 == 0 and torch.equal(rows, x)
    x = buf[:, 8 : 8 + 4095]  # 16 bytes in: the strided kernel takes it as it is
    assert flashinfer_norm.kernel_rows(x).data_ptr() == x.data_ptr()
    # a 3-D tensor of one stride level is viewed as (N, H)
    x = _at_offset((2, 3, 64), BF16, 0)
    assert flashinfer_norm.kernel_rows(x).shape == (6, 64)


def test_empty_aligned_whatever_the_allocator() -> None:
    for align in (16, 128, 512):
        for numel in (1, 7, 4096):
            t = empty_aligned((numel,), BF16, torch.device("cpu"), align)
            assert t.data_ptr() % align == 0 and t.shape == (numel,) and t.is_contiguous()
    x = _at_offset((3, 5), FP16, 1)
    assert aligned(x).data_ptr() % 16 == 0 and torch.equal(aligned(x), x)


# -- flashinfer: activations and RoPE ----------------------------------------------------------


@pytest.mark.parametrize("version", ["0.6.12", "0.7.0", "0.7.1", "0.7.4"])
def test_flashinfer_activation_row_rule_by_release(monkeypatch, version: str) -> None:
    """0.6.12-0.7.0 need d a multiple of 16 bytes (bf16 d = 12 would fault); 0.7.1+ any d."""
    _released(monkeypatch, "flashinfer-python", version)
    relaxed = version in ("0.7.1", "0.7.4")
    assert flashinfer_lib.relaxed_activations() is relaxed
    assert flashinfer_activation.silu_and_mul_supports(_x(3, 2 * 4096)) is True
    assert flashinfer_activation.silu_and_mul_supports(_x(3, 24)) is relaxed
    assert flashinfer_activation.gelu_and_mul_supports(_x(3, 24), "tanh") is relaxed


def test_flashinfer_activation_supports() -> None:
    act = flashinfer_activation
    assert act.silu_and_mul_supports(_x(2, 3, 256)) and act.gelu_and_mul_supports(_x(4, 256))
    assert not act.silu_and_mul_supports(_x(4, 256, dtype=FP32))
    assert not act.silu_and_mul_supports(_x(4, 512)[:, :256])  # the kernel ignores strides
    assert not act.gelu_and_mul_supports(_x(4, 256), "sigmoid")


def _cache(rot: int, dtype: torch.dtype = FP32) -> torch.Tensor:
    return _x(128, rot, dtype=dtype)


ROPE_CASES = [
    ("neox 128", (_x(5), _x(5, 4 * 128), _x(5, 128), 128, _cache(128), True), True),
    ("gptj 64", (_x(5), _x(5, 2, 64), _x(5, 64), 64, _cache(64), False), True),
    ("partial 64 of 128", (_x(5), _x(5, 128), _x(5, 128), 128, _cache(64), True), True),
    ("neox rot 8: half of 4 < 8-vector", (_x(5), _x(5, 64), _x(5, 64), 64, _cache(8), True), False),
    ("gptj rot 8 = one vector", (_x(5), _x(5, 64), _x(5, 64), 64, _cache(8), False), True),
    ("head 512: 16-element vectors", (_x(5), _x(5, 512), _x(5, 512), 512, _cache(16), True), False),
    ("head 80 (RopeQuantize route)", (_x(5), _x(5, 80), _x(5, 80), 80, _cache(32), True), False),
    ("bf16 cache", (_x(5), _x(5, 128), _x(5, 128), 128, _cache(128, BF16), True), False),
    ("fp32 q", (_x(5), _x(5, 128, dtype=FP32), _x(5, 128, dtype=FP32), 128, _cache(128), True), False),
    ("k of another dtype", (_x(5), _x(5, 128), _x(5, 128, dtype=FP16), 128, _cache(128), True), False),
    ("strided cache", (_x(5), _x(5, 128), _x(5, 128), 128, _x(128, 256)[:, :128], True), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in ROPE_CASES], ids=[c[0] for c in ROPE_CASES]
)
def test_flashinfer_rotary_supports(args, expected) -> None:  # fmt: skip
    assert flashinfer_rotary.rotary_embedding_supports(*args) is expected


def test_flashinfer_unavailable_names_the_release(monkeypatch) -> None:
    """A release outside 0.6.12 ... < 0.8 is unavailable, never trusted."""
    monkeypatch.setattr(flashinfer_lib.kit, "module_missing", lambda name: False)
    for version, ok in (
        ("0.6.11.post3", False),
        ("0.6.12", True),
        ("0.7.4", True),
        ("0.8.0", False),
    ):
        _released(monkeypatch, "flashinfer-python", version)
        problems = flashinfer_lib.environment_problems()
        outside = [p for p in problems if p.startswith(f"flashinfer-python {version} is outside")]
        assert bool(outside) is not ok, (version, problems)
        if not ok:
            assert "checked releases >= 0.6.12, < 0.8" in outside[0]
            assert outside[0] in flashinfer_norm.available()[1]
            assert outside[0] in flashinfer_activation.available()[1]


# -- torch_fused: the fused CUDA kernel exists from torch 2.9 ----------------------------------


def test_torch_fused_reads_the_dispatcher() -> None:
    # this CPU build registers no CUDA kernel for it; a missing op is False, not an error
    gpu_build = torch.version.cuda is not None or torch.version.hip is not None
    assert torch_fused_norm.has_fused_gpu_kernel() is gpu_build
    assert torch_fused_norm.has_fused_gpu_kernel("aten::_no_such_fused_rms_norm") is False


@pytest.mark.parametrize(
    ("has_kernel", "ok"), [(False, False), (True, True)], ids=["torch<2.9", "torch>=2.9"]
)
def test_torch_fused_declines_without_the_fused_kernel(monkeypatch, has_kernel, ok) -> None:
    """On torch 2.6-2.8 ``rms_norm`` is a composite of several kernels (2.8's fused op has an
    MPS kernel only): the provider would add nothing over native there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch_fused_norm, "has_fused_gpu_kernel", lambda op=None: has_kernel)
    available, reason = torch_fused_norm.available()
    assert available is ok
    if not ok:
        assert "no fused CUDA rms_norm kernel" in reason and "from torch 2.9" in reason


def test_torch_fused_supports() -> None:
    s = torch_fused_norm.rms_norm_supports
    assert s(_x(8, H), _x(H), EPS) and s(_x(8, H), None, EPS) and s(_x(2, 3, 4, H), _x(H), EPS)
    assert not s(_x(8, H), _x(H, dtype=FP32), EPS)  # mixed dtypes: torch's composite
    assert not s(_x(8, H), _x(H), EPS, weight_bias=1.0)
    assert not s(_x(8, H), _x(H), EPS, variance_size=64)
    channels_last = _x(2, H, 3, 5).to(memory_format=torch.channels_last)
    assert not s(channels_last, _x(5), EPS)


# -- quack --------------------------------------------------------------------------------------

QUACK_CASES = [
    ("bf16", (_x(8, H), _x(H), EPS), {}, True),
    ("bf16 x, fp32 Gemma weight", (_x(8, H), _x(H, dtype=FP32), EPS), {"weight_bias": 1.0}, True),
    ("no weight", (_x(8, H), None, EPS), {}, True),
    ("fp32 odd H", (_x(8, 4095, dtype=FP32), _x(4095, dtype=FP32), EPS), {}, True),
    ("bf16 odd H: fails to compile", (_x(8, 4095), _x(4095), EPS), {}, False),
    ("fp32 x, bf16 weight, odd H", (_x(8, 4095, dtype=FP32), _x(4095), EPS), {}, False),
    ("strided rows, aligned", (_x(8, H + 64)[:, :H], _x(H), EPS), {}, True),
    ("row stride off the 8-element div", (_x(8, H + 4)[:, :H], _x(H), EPS), {}, False),
    ("row stride 4: fine with an fp32 weight", (_x(8, H + 4)[:, :H], _x(H, dtype=FP32), EPS), {}, True),
    ("3-D", (_x(2, 4, H), _x(H), EPS), {}, True),
    ("variance_size", (_x(8, H), _x(H), EPS), {"variance_size": 64}, False),
    ("fp8 x", (_x(8, H, dtype=FP8), _x(H), EPS), {}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"), [c[1:] for c in QUACK_CASES], ids=[c[0] for c in QUACK_CASES]
)
def test_quack_supports(args, kwargs, expected) -> None:
    assert quack_norm.rms_norm_supports(*args, **kwargs) is expected
    x = args[0]
    residual = _x(*x.shape, dtype=x.dtype) if x.dtype != FP8 else _x(*x.shape)
    assert quack_norm.fused_add_rms_norm_supports(x, residual, *args[1:], **kwargs) is expected


def test_quack_divisibility() -> None:
    assert quack_norm.divisibility(4096, _x(1, dtype=BF16)) == 8
    assert quack_norm.divisibility(4096, _x(1, dtype=BF16), _x(1, dtype=FP32)) == 4
    assert quack_norm.divisibility(4094, _x(1, dtype=BF16), None) == 2


def test_quack_unavailable_here_says_why(monkeypatch) -> None:
    ok, reason = quack_norm.available()
    assert not ok
    if importlib.util.find_spec("quack") is None:
        assert "quack-kernels not installed (pip install 'ir-provider-cuda[quack]')" in reason
    if not torch.cuda.is_available():
        assert reason.endswith("no CUDA device")
    monkeypatch.setattr(quack_norm.kit, "module_missing", lambda name: False)
    _released(monkeypatch, "quack-kernels", "0.6.1")  # no weight_offset yet
    assert (
        "quack-kernels 0.6.1 is outside the checked releases >= 0.6.2" in quack_norm.available()[1]
    )


# -- liger --------------------------------------------------------------------------------------

LIGER_CASES = [
    ("bf16", (_x(8, H), _x(H), EPS), {}, True),
    ("bf16 x, fp32 Gemma weight", (_x(8, H), _x(H, dtype=FP32), EPS), {"weight_bias": 1.0}, True),
    ("no weight", (_x(8, H), None, EPS), {}, True),
    ("odd H", (_x(8, 4095), _x(4095), EPS), {}, True),
    ("strided rows", (_x(8, H + 3)[:, :H], _x(H), EPS), {}, True),
    ("strided weight (read as contiguous)", (_x(8, H), _x(2 * H)[::2], EPS), {}, False),
    ("H above 65536", (_x(2, 65537), _x(65537), EPS), {}, False),
    ("rows on two stride levels", (_x(4, 2, H + 8)[:, :, :H].transpose(0, 1), _x(H), EPS), {}, False),
    ("variance_size", (_x(8, H), _x(H), EPS), {"variance_size": 64}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"), [c[1:] for c in LIGER_CASES], ids=[c[0] for c in LIGER_CASES]
)
def test_liger_supports(args, kwargs, expected) -> None:
    assert liger_norm.rms_norm_supports(*args, **kwargs) is expected


def test_liger_unavailable_here_says_why(monkeypatch) -> None:
    ok, reason = liger_norm.available()
    assert not ok
    if importlib.util.find_spec("liger_kernel") is None:
        assert "liger-kernel not installed (pip install 'ir-provider-cuda[liger]')" in reason
    if not torch.cuda.is_available():
        assert (
            "no CUDA/ROCm device (liger's Triton kernels do not run under TRITON_INTERPRET"
            in reason
        )
    monkeypatch.setattr(liger_norm.kit, "module_missing", lambda name: False)
    _released(monkeypatch, "liger-kernel", "0.9.0")
    assert "liger-kernel 0.9.0 is outside the checked releases" in liger_norm.available()[1]
