"""The Triton gated_rms_norm against native: both gate orders, group sizes, one- and
two-pass groups, strided x and gate, zero tokens.

Without a GPU these run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set by
conftest); shapes stay small because the interpreter is slow.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from launch_spy import LaunchSpy

import ir_core
from ir_core import Sample
from ir_core.testing import assert_matches_native
from ir_provider_cuda import triton_gated_norm

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
ORDERS = [True, False]
EPS = 1e-6


def _kernels() -> Any:
    return importlib.import_module("ir_provider_cuda.triton_gated_norm_kernels")


def _randn(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).to(dtype=dtype, device=device)


def _inputs(shape, dtype, device, weight_dtype=None):
    x, gate = _randn(shape, dtype, device, 1), _randn(shape, dtype, device, 2)
    w = (_randn((shape[-1],), torch.float32, device, 3) * 0.25 + 1).to(weight_dtype or dtype)
    return x, w, gate


def _check(*args: Any, **kwargs: Any) -> None:
    assert triton_gated_norm.gated_rms_norm_supports(*args, **kwargs), f"declined {kwargs}"
    sample = Sample(args, kwargs, f"gated_rms_norm {kwargs}")
    assert_matches_native("gated_rms_norm", triton_gated_norm.gated_rms_norm, sample)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, triton_on_device: str) -> LaunchSpy:
    k = _kernels()
    found = LaunchSpy(k._gated_rms_norm_kernel)
    monkeypatch.setattr(k, "_gated_rms_norm_kernel", found)
    return found


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_catalogue_samples(triton_on_device: str, dtype: torch.dtype) -> None:
    op = ir_core.get_op("gated_rms_norm")
    samples = op.sample_inputs(dtype, triton_on_device)
    assert samples
    for sample in samples:
        args = op.bind(sample.args, sample.kwargs)
        assert triton_gated_norm.gated_rms_norm_supports(*args), f"declined [{sample.label}]"
        assert_matches_native(op, triton_gated_norm.gated_rms_norm, sample)


@pytest.mark.parametrize("before", ORDERS, ids=["norm_first", "gate_first"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("hidden", "group_size"),
    [(1, None), (127, None), (128, 1), (256, 64), (4096, None), (4096, 512)],
)
def test_groups(triton_on_device: str, dtype, before: bool, hidden: int, group_size) -> None:
    _check(
        *_inputs((3, hidden), dtype, triton_on_device),
        EPS,
        group_size=group_size,
        norm_before_gate=before,
    )


@pytest.mark.parametrize("before", ORDERS, ids=["norm_first", "gate_first"])
def test_groups_longer_than_one_block(triton_on_device: str, before: bool) -> None:
    """fp32 groups over 16K channels take the two-pass path (sum of squares, then store)."""
    cfg = _kernels().launch_config(20000, 2, 4)
    assert not cfg.single_pass
    x, w, gate = _inputs((1, 40000), torch.float32, triton_on_device)
    _check(x, w, gate, EPS, group_size=20000, norm_before_gate=before)


def test_many_groups_packed_per_program(triton_on_device: str, spy: LaunchSpy) -> None:
    """Mamba2-like: 131 tokens x 8 groups = 1048 items, several per program, a ragged last."""
    cfg = _kernels().launch_config(16, 1048, 2)
    assert cfg.rows_per_program > 1 and 1048 % cfg.rows_per_program
    x, w, gate = _inputs((131, 128), torch.bfloat16, triton_on_device)
    _check(x, w, gate, EPS, group_size=16, norm_before_gate=False)
    ((grid, _),) = spy.launches
    assert grid == (-(-1048 // cfg.rows_per_program),)


@pytest.mark.parametrize("before", ORDERS, ids=["norm_first", "gate_first"])
def test_strided_x_and_gate_reach_the_kernel_uncopied(
    triton_on_device: str, spy: LaunchSpy, before: bool
) -> None:
    """x and z as column slices of one projection (Qwen3-Next's in_proj output), each with
    its own offset: both read in place."""
    proj = _randn((4, 3 * 96), torch.bfloat16, triton_on_device, 4)
    x, gate = proj[:, :96], proj[:, 2 * 96 :]
    w = _inputs((4, 96), torch.bfloat16, triton_on_device)[1]
    _check(x, w, gate, EPS, norm_before_gate=before)
    triton_gated_norm.gated_rms_norm(x, w, gate, EPS, norm_before_gate=before)
    _, args = spy.launches[-1]
    assert args[0].data_ptr() == x.data_ptr() and args[1:3] == (0, 3 * 96)
    assert args[4].data_ptr() == gate.data_ptr() and args[5:7] == (0, 3 * 96)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_3d_and_mixed_dtypes(triton_on_device: str, dtype: torch.dtype) -> None:
    d = triton_on_device
    x, w, gate = _inputs((2, 3, 64), dtype, d, weight_dtype=torch.float32)
    _check(x, w, gate, EPS, weight_bias=1.0)
    _check(x, w, gate.float(), EPS, group_size=16, norm_before_gate=False)
    # (tokens, heads, head_dim) transposed: two row levels for x, contiguous gate
    xt = _randn((3, 2, 64), dtype, d, 5).transpose(0, 1)
    _check(xt, w, gate, EPS)


def test_zero_tokens_launch_nothing(triton_on_device: str, spy: LaunchSpy) -> None:
    for dtype in DTYPES:
        x, w, gate = _inputs((0, 64), dtype, triton_on_device)
        _check(x, w, gate, EPS)
        _check(x, w, gate, EPS, group_size=8, norm_before_gate=False)
    assert not spy.launches


def test_declines() -> None:
    x, w = torch.randn(2, 16), torch.randn(16)
    assert triton_gated_norm.gated_rms_norm_supports(x, w, x, EPS)
    assert not triton_gated_norm.gated_rms_norm_supports(x.double(), w, x, EPS)
    assert not triton_gated_norm.gated_rms_norm_supports(x, w.double(), x, EPS)
    assert not triton_gated_norm.gated_rms_norm_supports(x, w, torch.randn(16, 2).t(), EPS)
    assert not triton_gated_norm.gated_rms_norm_supports(x, w, torch.randn(3, 16), EPS)


def test_dispatch_picks_triton_under_set_priority(triton_on_device: str) -> None:
    x, w, gate = _inputs((3, 64), torch.float32, triton_on_device)
    with ir_core.set_priority(gated_rms_norm=["triton"]):
        assert ir_core.explain("gated_rms_norm", x, w, gate, EPS, 0.0, 16).provider == "triton"
        got = ir_core.ops.gated_rms_norm(x, w, gate, EPS, 0.0, 16)
    assert torch.equal(got, triton_gated_norm.gated_rms_norm(x, w, gate, EPS, 0.0, 16))
