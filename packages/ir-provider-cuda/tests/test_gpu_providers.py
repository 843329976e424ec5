"""The ``flashinfer``, ``torch_fused``, ``quack`` and ``liger`` providers on a GPU.

Their ``supports_args`` read only metadata, so what they accept is checked everywhere; their
kernels need a CUDA device, so those tests are marked ``gpu`` and skipped (with the reason)
without one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import ir_core
from ir_core import Sample
from ir_core.testing import assert_matches_native
from ir_provider_cuda import (
    flashinfer_activation,
    flashinfer_norm,
    flashinfer_rotary,
    liger_norm,
    quack_norm,
    torch_fused_norm,
)

EPS = 1e-6
H = 4096


def _x(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


# -- what FlashInfer accepts ------------------------------------------------------------------

_W = _x(H)
FLASHINFER_RMS_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], bool]] = [
    ("bf16 2-D", (_x(8, H), _W, EPS), {}, True),
    ("fp16 2-D", (_x(8, H, dtype=torch.float16), _x(H, dtype=torch.float16), EPS), {}, True),
    ("3-D contiguous views as 2-D", (_x(2, 4, H), _W, EPS), {}, True),
    ("gemma weight_bias=1.0", (_x(8, H), _W, EPS), {"weight_bias": 1.0}, True),
    ("variance_size == H is no restriction", (_x(8, H), _W, EPS), {"variance_size": H}, True),
    ("strided rows, aligned stride", (_x(8, H + 64)[:, :H], _W, EPS), {}, True),
    ("odd H: vectors of one element", (_x(8, 127), _x(127), EPS), {}, True),
    (
        "fp32: no FlashInfer kernel",
        (_x(8, H, dtype=torch.float32), _x(H, dtype=torch.float32), EPS),
        {},
        False,
    ),
    ("fp32 weight with bf16 x", (_x(8, H), _x(H, dtype=torch.float32), EPS), {}, False),
    ("weight None", (_x(8, H), None, EPS), {}, False),
    ("weight_bias 0.5", (_x(8, H), _W, EPS), {"weight_bias": 0.5}, False),
    ("variance_size < H", (_x(8, H), _W, EPS), {"variance_size": 128}, False),
    ("non-unit last stride", (_x(H, 8).t(), _W, EPS), {}, False),
    ("row stride not a multiple of 8", (_x(8, H + 3)[:, :H], _W, EPS), {}, False),
    ("rows on two stride levels", (_x(4, 2, H + 8)[:, :, :H].transpose(0, 1), _W, EPS), {}, False),
    ("strided weight", (_x(8, H), _x(2 * H)[::2], EPS), {}, False),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [case[1:] for case in FLASHINFER_RMS_CASES],
    ids=[case[0] for case in FLASHINFER_RMS_CASES],
)
def test_flashinfer_rms_norm_supports(args: tuple, kwargs: dict, expected: bool) -> None:
    assert flashinfer_norm.rms_norm_supports(*args, **kwargs) is expected


def test_flashinfer_fused_add_supports() -> None:
    x, r = _x(8, H), _x(8, H)
    assert flashinfer_norm.fused_add_rms_norm_supports(x, r, _W, EPS) is True
    # layout is free (x and residual are copied into the outputs first) ...
    strided = _x(8, H + 3)[:, :H]
    assert flashinfer_norm.fused_add_rms_norm_supports(strided, strided, _W, EPS) is True
    # ... but FlashInfer's kernel has one dtype for x, residual and weight
    assert not flashinfer_norm.fused_add_rms_norm_supports(
        x, _x(8, H, dtype=torch.float32), _W, EPS
    )
    assert not flashinfer_norm.fused_add_rms_norm_supports(x, r, _W, EPS, weight_bias=0.25)
    assert not flashinfer_norm.fused_add_rms_norm_supports(x, r, None, EPS)


def test_torch_fused_supports() -> None:
    assert torch_fused_norm.rms_norm_supports(_x(8, H), _W, EPS) is True
    assert torch_fused_norm.rms_norm_supports(_x(8, H), None, EPS) is True
    assert not torch_fused_norm.rms_norm_supports(_x(8, H), _x(H, dtype=torch.float32), EPS)
    assert not torch_fused_norm.rms_norm_supports(_x(8, H), _W, EPS, weight_bias=1.0)
    assert not torch_fused_norm.rms_norm_supports(_x(8, H), _W, EPS, variance_size=64)


# -- kernels on a GPU -------------------------------------------------------------------------


def _require_available(module: Any) -> None:
    ok, reason = module.available()
    if not ok:
        pytest.skip(f"{module.PROVIDER} unavailable: {reason}")


def _run_samples(op_name: str, fn: Any, supports: Any, dtype: torch.dtype) -> int:
    """Every catalogue sample the provider accepts must match native; returns how many ran."""
    ran = 0
    for sample in ir_core.get_op(op_name).sample_inputs(dtype, "cuda"):
        if supports(*sample.args, **sample.kwargs):
            assert_matches_native(op_name, fn, sample)
            ran += 1
    return ran


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_flashinfer_matches_native(dtype: torch.dtype) -> None:
    _require_available(flashinfer_norm)
    assert _run_samples(
        "rms_norm", flashinfer_norm.rms_norm, flashinfer_norm.rms_norm_supports, dtype
    )
    assert _run_samples(
        "fused_add_rms_norm",
        flashinfer_norm.fused_add_rms_norm,
        flashinfer_norm.fused_add_rms_norm_supports,
        dtype,
    )
    for h in (127, 4095, 5120, 8192):
        x = torch.randn(3, h, device="cuda", dtype=dtype) * 2
        r = torch.randn(3, h, device="cuda", dtype=dtype)
        w = torch.randn(h, device="cuda", dtype=dtype)
        for bias in (0.0, 1.0):
            assert_matches_native(
                "rms_norm", flashinfer_norm.rms_norm, Sample((x, w, EPS), {"weight_bias": bias})
            )
            assert_matches_native(
                "fused_add_rms_norm",
                flashinfer_norm.fused_add_rms_norm,
                Sample((x, r, w, EPS), {"weight_bias": bias}),
            )


@pytest.mark.gpu
def test_flashinfer_realigns_a_misaligned_start() -> None:
    """A view starting one element into its buffer is copied before FlashInfer sees it."""
    _require_available(flashinfer_norm)
    buf = torch.randn(4 * H + 1, device="cuda", dtype=torch.bfloat16)
    x = buf[1:].view(4, H)
    w = torch.randn(H, device="cuda", dtype=torch.bfloat16)
    assert x.data_ptr() % 16 != 0 and flashinfer_norm.rms_norm_supports(x, w, EPS)
    expected = ir_core.get_op("rms_norm").native(x, w, EPS)
    got = flashinfer_norm.rms_norm(x, w, EPS)
    assert ir_core.testing.mismatch(ir_core.get_op("rms_norm"), got, expected) is None


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_torch_fused_matches_native(dtype: torch.dtype) -> None:
    _require_available(torch_fused_norm)
    assert _run_samples(
        "rms_norm", torch_fused_norm.rms_norm, torch_fused_norm.rms_norm_supports, dtype
    )


#: (module, ops) of every vendor wrapper whose kernels need a GPU.
VENDOR_IMPLS = [
    (
        flashinfer_norm,
        ("rms_norm_fp8_quant_static", "fused_add_rms_norm_fp8_quant_static"),
    ),
    (flashinfer_activation, ("silu_and_mul", "gelu_and_mul")),
    (flashinfer_rotary, ("rotary_embedding",)),
    (quack_norm, ("rms_norm", "fused_add_rms_norm")),
    (liger_norm, ("rms_norm",)),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    ("module", "op_name"),
    [(module, op) for module, ops in VENDOR_IMPLS for op in ops],
    ids=[f"{module.PROVIDER}-{op}" for module, ops in VENDOR_IMPLS for op in ops],
)
def test_vendor_kernels_match_native(module: Any, op_name: str, dtype: torch.dtype) -> None:
    """Every catalogue sample the wrapper accepts, through the vendor's real kernel."""
    _require_available(module)
    fn, supports = getattr(module, op_name), getattr(module, f"{op_name}_supports")
    ran = _run_samples(op_name, fn, supports, dtype)
    if dtype in (torch.float16, torch.bfloat16):
        assert ran, f"{module.PROVIDER} accepted no {dtype} sample of {op_name}"


@pytest.mark.gpu
def test_quack_gemma_fp32_weight_on_bf16() -> None:
    _require_available(quack_norm)
    x = torch.randn(5, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda") * 0.1
    assert_matches_native(
        "rms_norm", quack_norm.rms_norm, Sample((x, w, EPS), {"weight_bias": 1.0})
    )


@pytest.mark.gpu
def test_triton_is_compiled_on_a_gpu() -> None:
    """On a GPU the tests exercise compiled kernels, not the interpreter."""
    import importlib
    import os

    if os.environ.get("TRITON_INTERPRET", "0") != "0":
        pytest.skip("TRITON_INTERPRET is set: the interpreter was asked for explicitly")
    assert importlib.import_module("ir_provider_cuda.triton_kernels").INTERPRETED is False
