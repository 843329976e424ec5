"""The ``liger`` wrapper through the real liger-kernel's Python layer.

Run by ``nox -s vendors`` (skipped, with the reason, where liger-kernel is not installed).
liger's ``rms_norm_forward`` runs as released (casting-mode mapping, the view to rows, block
size and warps, the choice between its row and block kernels); the two ``@triton.jit`` kernels
are replaced by launchers computing the "gemma" arithmetic (``cpu_vendor_kernels``): liger's
kernels do not run under TRITON_INTERPRET as released (0.8.2+: ``eps.to`` on a Python float;
<= 0.8.1: libdevice's rsqrt), so the released Triton code itself is not run here.
"""

from __future__ import annotations

import pytest
import torch
from cpu_vendor_kernels import Calls, import_vendor, install_liger

import ir_core
from ir_core import Sample
from ir_core.testing import assert_matches_native
from ir_provider_cuda import liger_norm

rms_norm_module = import_vendor("liger_kernel.ops.rms_norm", "liger-kernel")

EPS = 1e-6


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    install_liger(monkeypatch, calls)
    return calls


def test_installed_release_is_one_the_wrapper_was_checked_against() -> None:
    problems = liger_norm.environment_problems()
    assert not [p for p in problems if "not installed" in p or "outside" in p], problems


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_liger_matches_native(calls: Calls, dtype: torch.dtype) -> None:
    ran = 0
    for sample in ir_core.get_op("rms_norm").sample_inputs(dtype, "cpu"):
        if liger_norm.rms_norm_supports(*sample.args, **sample.kwargs):
            assert_matches_native("rms_norm", liger_norm.rms_norm, sample)
            ran += 1
    assert ran >= 6
    assert {call["offset"] for _, call in calls.log} >= {0.0, 1.0}


def test_many_short_rows_take_the_block_kernel(calls: Calls) -> None:
    """liger's own choice: 16 rows per program for rows of <= 256 elements and >= 32K rows."""
    x, w = torch.randn(32768, 64).to(torch.bfloat16), torch.randn(64)
    assert_matches_native(
        "rms_norm", liger_norm.rms_norm, Sample((x, w, EPS), {"weight_bias": 1.0})
    )
    assert calls.names() == ["_block_rms_norm_forward_kernel"]


def test_liger_refuses_rows_beyond_its_block_as_the_wrapper_declines() -> None:
    x, w = torch.randn(1, 70000), torch.randn(70000)
    assert not liger_norm.rms_norm_supports(x, w, EPS)
    with pytest.raises(RuntimeError, match="exceeds the recommended Triton blocksize"):
        rms_norm_module.rms_norm_forward(x, w, EPS, 0.0, "gemma", None)
