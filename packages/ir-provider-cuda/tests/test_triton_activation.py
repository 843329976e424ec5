"""The Triton gated activations (silu_and_mul, gelu_and_mul) against native.

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
from ir_provider_cuda import triton_activation

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
#: (op, kwargs) for each activation the kernel compiles.
VARIANTS = [
    ("silu_and_mul", {}),
    ("gelu_and_mul", {"approximate": "none"}),
    ("gelu_and_mul", {"approximate": "tanh"}),
]
IMPLS = {
    "silu_and_mul": (triton_activation.silu_and_mul, triton_activation.silu_and_mul_supports),
    "gelu_and_mul": (triton_activation.gelu_and_mul, triton_activation.gelu_and_mul_supports),
}


def _kernels() -> Any:
    return importlib.import_module("ir_provider_cuda.triton_activation_kernels")


def _x(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 3).to(dtype=dtype, device=device)


def _check(op_name: str, x: torch.Tensor, **kwargs: Any) -> None:
    fn, supports = IMPLS[op_name]
    assert supports(x, **kwargs), f"triton {op_name} declined {tuple(x.shape)} {kwargs}"
    assert_matches_native(op_name, fn, Sample((x,), kwargs, f"{op_name} {kwargs}"))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, triton_on_device: str) -> LaunchSpy:
    k = _kernels()
    found = LaunchSpy(k._act_and_mul_kernel)
    monkeypatch.setattr(k, "_act_and_mul_kernel", found)
    return found


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", list(IMPLS))
def test_catalogue_samples(triton_on_device: str, op_name: str, dtype: torch.dtype) -> None:
    fn, supports = IMPLS[op_name]
    samples = ir_core.get_op(op_name).sample_inputs(dtype, triton_on_device)
    assert samples
    for sample in samples:
        assert supports(*sample.args, **sample.kwargs), f"triton declined [{sample.label}]"
        assert_matches_native(op_name, fn, sample)


@pytest.mark.parametrize("d", [1, 3, 127, 2048, 2049, 5000])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("op_name", "kwargs"), VARIANTS, ids=lambda v: str(v))
def test_widths(triton_on_device: str, op_name: str, kwargs: dict, dtype: torch.dtype, d: int):
    """Odd widths, and rows wider than one block (split over the grid's second axis)."""
    _check(op_name, _x((2, 2 * d), dtype, triton_on_device), **kwargs)


@pytest.mark.parametrize(("op_name", "kwargs"), VARIANTS, ids=lambda v: str(v))
def test_3d_and_two_level_rows(triton_on_device: str, op_name: str, kwargs: dict) -> None:
    d = triton_on_device
    _check(op_name, _x((2, 3, 2 * 40), torch.bfloat16, d), **kwargs)
    # (seq, batch) transposed: the leading dims stay two stride levels
    wide = _x((3, 2, 2 * 40 + 6), torch.float16, d)[:, :, : 2 * 40].transpose(0, 1)
    _check(op_name, wide, **kwargs)


def test_strided_rows_reach_the_kernel_uncopied(triton_on_device: str, spy: LaunchSpy) -> None:
    """gate_up read out of a wider buffer: the kernel gets its storage and row pitch."""
    buf = _x((4, 2 * 96 + 20), torch.bfloat16, triton_on_device)
    x = buf[:, 4 : 4 + 2 * 96]
    _check("silu_and_mul", x)
    triton_activation.silu_and_mul(x)
    grid, args = spy.launches[-1]
    assert args[0].data_ptr() == x.data_ptr() and args[1:3] == (0, 2 * 96 + 20)
    assert grid == (4, 1)


def test_zero_tokens_launch_nothing(triton_on_device: str, spy: LaunchSpy) -> None:
    for dtype in DTYPES:
        x = _x((0, 2 * 64), dtype, triton_on_device)
        _check("silu_and_mul", x)
        _check("gelu_and_mul", x, approximate="tanh")
        assert triton_activation.silu_and_mul(x).shape == (0, 64)
    assert not spy.launches


@pytest.mark.parametrize(("op_name", "kwargs"), VARIANTS, ids=lambda v: str(v))
def test_saturating_gates(triton_on_device: str, op_name: str, kwargs: dict) -> None:
    """Gates far into both tails, where a naive ``exp(-g)`` overflows and tanh-GELU's
    ``1 + tanh`` cancels: no NaN, and the results match native."""
    gate = torch.tensor([[-200.0, -30.0, -9.0, -4.0, 4.0, 9.0, 30.0, 200.0]])
    x = torch.cat((gate, torch.full_like(gate, 1.5)), dim=-1).to(triton_on_device)
    _check(op_name, x, **kwargs)
    fn, _ = IMPLS[op_name]
    assert not fn(x, **kwargs).isnan().any()


def test_stores_round_to_nearest_even(triton_on_device: str) -> None:
    """silu(g) * up with up a power of two scales exactly: the bf16 store's rounding of the
    fp32 product is all that differs, and it must be torch's (nearest even)."""
    g = torch.Generator().manual_seed(3)
    gate = torch.randn(1, 512, generator=g) * 2
    x = torch.cat((gate, torch.full_like(gate, 0.5)), dim=-1).to(torch.bfloat16)
    x = x.to(triton_on_device)
    got = triton_activation.silu_and_mul(x).float().cpu()
    want = ir_core.get_op("silu_and_mul").native(x).float().cpu()
    assert (got == want).float().mean().item() > 0.99


def test_declines() -> None:
    x = torch.ones(4, 16)
    assert not triton_activation.silu_and_mul_supports(x.double())
    assert not triton_activation.silu_and_mul_supports(torch.ones(16, 4).t())  # column stride 4
    scattered = torch.ones(5, 3, 2, 17)[..., :16].permute(2, 1, 0, 3)  # three stride levels
    assert not triton_activation.silu_and_mul_supports(scattered)
    assert not triton_activation.gelu_and_mul_supports(x, "erf")
    assert triton_activation.gelu_and_mul_supports(x, "tanh")


def test_dispatch_picks_triton_under_set_priority(triton_on_device: str) -> None:
    x = _x((3, 2 * 48), torch.float32, triton_on_device)
    with ir_core.set_priority(silu_and_mul=["triton"], gelu_and_mul=["triton"]):
        assert ir_core.explain("silu_and_mul", x).provider == "triton"
        assert ir_core.explain("gelu_and_mul", x, "tanh").provider == "triton"
        assert torch.equal(ir_core.ops.silu_and_mul(x), triton_activation.silu_and_mul(x))


@pytest.mark.parametrize("d", [1, 15, 127, 2048, 2049, 14336])
def test_launch_config_invariants(d: int) -> None:
    cfg = _kernels().activation_launch_config(d)
    assert cfg.block & (cfg.block - 1) == 0 and 16 <= cfg.block <= 2048
    assert cfg.block >= min(d, 2048), "a row up to 2048 columns is one program"
    assert cfg.num_warps in (1, 2, 4, 8)
    assert cfg.block // (32 * cfg.num_warps) <= 16, "at most 16 elements a thread"
