"""The ``quack`` wrapper through the real quack-kernels' Python layer and its CuTe-DSL compiler.

Run by ``nox -s vendors`` (skipped, with the reason, where quack-kernels is not installed).
quack's ``rmsnorm_fwd`` runs as released: dtype asserts, output allocation, the compile of
every configuration (CuTe DSL compiles without a GPU); only the compiled function is replaced,
by one that checks what its TVM-FFI entry checks and computes quack's reference arithmetic
(``cpu_vendor_kernels.install_quack``).
"""

from __future__ import annotations

import pytest
import torch
from cpu_vendor_kernels import Calls, import_vendor, install_quack

import ir_core
from ir_core import Sample
from ir_core.testing import assert_matches_native
from ir_provider_cuda import quack_norm

rmsnorm = import_vendor("quack.rmsnorm", "quack-kernels")

EPS = 1e-6
BF16, FP32 = torch.bfloat16, torch.float32


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    install_quack(monkeypatch, calls)
    return calls


def test_installed_release_is_one_the_wrapper_was_checked_against() -> None:
    problems = quack_norm.environment_problems()
    assert not [p for p in problems if "not installed" in p or "outside" in p], problems


@pytest.mark.parametrize("dtype", [FP32, torch.float16, BF16], ids=str)
@pytest.mark.parametrize("op_name", ["rms_norm", "fused_add_rms_norm"])
def test_quack_matches_native(calls: Calls, op_name: str, dtype: torch.dtype) -> None:
    fn, supports = getattr(quack_norm, op_name), getattr(quack_norm, f"{op_name}_supports")
    ran = 0
    for sample in ir_core.get_op(op_name).sample_inputs(dtype, "cpu"):
        if supports(*sample.args, **sample.kwargs):
            assert_matches_native(op_name, fn, sample)
            ran += 1
    assert ran >= 4 and calls.log


@pytest.mark.parametrize("weight_bias", [0.0, 1.0])
def test_gemma_fp32_weight_and_strided_rows(calls: Calls, weight_bias: float) -> None:
    """bf16 x with an fp32 weight (its own compiled kernel, div 4), rows of a wider buffer."""
    x = torch.randn(6, 4096 + 4).to(BF16)[:, :4096]
    r = torch.randn(6, 4096).to(BF16)
    w = torch.randn(4096) * 0.1
    kwargs = {"weight_bias": weight_bias}
    assert quack_norm.rms_norm_supports(x, w, EPS, **kwargs)
    assert_matches_native("rms_norm", quack_norm.rms_norm, Sample((x, w, EPS), kwargs))
    assert_matches_native(
        "fused_add_rms_norm", quack_norm.fused_add_rms_norm, Sample((x, r, w, EPS), kwargs)
    )
    assert calls.last("quack.rmsnorm_fwd")["div"] == 4


@pytest.mark.parametrize(("dtype", "compiles"), [(BF16, False), (FP32, True)], ids=str)
def test_odd_hidden_size_rule_is_quacks(dtype: torch.dtype, compiles: bool) -> None:
    """quack cannot build an odd-H kernel with 16-bit tensors (its 16-bit copies would be 16
    bits wide); fp32 compiles. The wrapper declines exactly the first."""
    x, w = torch.randn(4, 4095).to(dtype), torch.randn(4095).to(dtype)
    assert quack_norm.rms_norm_supports(x, w, EPS) is compiles
    with pytest.raises(Exception) as failure:  # the real compile, then the device check
        rmsnorm.rmsnorm_fwd(x, w, eps=EPS)
    if compiles:  # got as far as the compiled entry, which wants CUDA tensors
        assert "device_type=cuda" in str(failure.value)
    else:
        assert "cp_size" in str(failure.value)


def test_quacks_reference_is_our_fused_add_semantics() -> None:
    """quack's own reference (what its tests hold the kernel to) normalizes the fp32 sum and
    rounds once: bitwise our native ``fused_add_rms_norm``."""
    g = torch.Generator().manual_seed(0)
    x, r = (
        (torch.randn(8, 512, generator=g) * 3).to(BF16),
        torch.randn(8, 512, generator=g).to(BF16),
    )
    w = torch.randn(512, generator=g)
    op = ir_core.get_op("fused_add_rms_norm")
    for bias in (0.0, 1.0):
        theirs = rmsnorm.rmsnorm_ref(x, w, None, r, EPS, bias)
        ours = op.native(x, r, w, EPS, bias)
        assert all(torch.equal(a, b) for a, b in zip(theirs, ours))
