"""The Triton fp8 quant kernels against the ops' native semantics (and torch's fp8 rounding).

Without a GPU they run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set by
conftest). The interpreter's own fp32->fp8 cast does not round to nearest even, so there the
kernels store the fp8 code they compute with integer arithmetic (see ``triton_quant_kernels``);
``test_fp8_rounding_is_bitwise_torchs`` holds that code to torch's conversion on every rounding
boundary of both grids. The fp64-reference checks of every op are in the top-level
``tests/test_quant_reference.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

import ir_core
from ir_core.testing import assert_matches_native, output_mismatches
from ir_provider_cuda import triton_quant

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
FP8 = [torch.float8_e4m3fn, torch.float8_e4m3fnuz]
EPS = 1e-6


def _kernels() -> Any:
    return importlib.import_module("ir_provider_cuda.triton_quant_kernels")


def _act(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).to(dtype=dtype, device=device)


def _weight(h: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(h)
    return (torch.randn(h, generator=g) * 0.5 + 1).to(dtype=dtype, device=device)


def _scale(value: float, device: str) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float32, device=device)


def _check(op_name: str, *args: Any, **kwargs: Any) -> None:
    fn, supports = triton_quant.IMPLS[op_name]
    assert supports(*args, **kwargs), f"triton {op_name} declined"
    assert_matches_native(op_name, fn, ir_core.Sample(args, kwargs, op_name))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", list(triton_quant.IMPLS))
def test_catalogue_samples(triton_on_device: str, op_name: str, dtype: torch.dtype) -> None:
    fn, supports = triton_quant.IMPLS[op_name]
    samples = ir_core.get_op(op_name).sample_inputs(dtype, triton_on_device)
    assert samples, f"the catalogue has no samples for {op_name}"
    for sample in samples:
        assert supports(*sample.args, **sample.kwargs), f"triton declined [{sample.label}]"
        assert_matches_native(op_name, fn, sample)


def _boundaries(fp8: torch.dtype) -> torch.Tensor:
    """Every finite value of the grid, every midpoint between neighbours (the ties) and the
    fp32 values just either side of each midpoint, both signs, plus values beyond +-fmax,
    fp32 subnormals and zeros."""
    grid = torch.arange(256, dtype=torch.uint8).view(fp8).float()
    grid = grid[grid.isfinite() & (grid >= 0)].unique().sort().values
    mid = (grid[1:] + grid[:-1]) / 2
    pos = torch.cat(
        [
            grid,
            mid,
            torch.nextafter(mid, torch.zeros_like(mid)),
            torch.nextafter(mid, torch.full_like(mid, 1e9)),
            torch.tensor([1e-45, 1e-39, 1e-30, 1e4, 3e38, float("inf")]),
        ]
    )
    return torch.cat([pos, -pos, torch.tensor([float("nan")])])


@pytest.mark.parametrize("fp8", FP8, ids=str)
def test_fp8_rounding_is_bitwise_torchs(triton_on_device: str, fp8: torch.dtype) -> None:
    """With scale 1 the kernel's division is exact, so its codes must be torch's rounding of
    the clamped values, bit for bit (NaN as each format spells it)."""
    x = _boundaries(fp8).to(triton_on_device)
    fmax = torch.finfo(fp8).max
    q = triton_quant.fp8_quant_static(x, _scale(1.0, triton_on_device), fp8)
    expected = x.clamp(-fmax, fmax).to(fp8)
    mismatched = (q.view(torch.uint8) != expected.view(torch.uint8)).nonzero().flatten()
    assert mismatched.numel() == 0, (
        f"{mismatched.numel()} codes differ, e.g. {x[mismatched[:5]].tolist()} -> "
        f"{q[mismatched[:5]].float().tolist()}, torch {expected[mismatched[:5]].float().tolist()}"
    )


@pytest.mark.parametrize("op_name", ["fp8_quant_dynamic", "rms_norm_fp8_quant_dynamic"])
def test_rows_longer_than_one_block(triton_on_device: str, op_name: str) -> None:
    """fp32 rows of 20000 > 16384 elements take the chunked passes (variance, amax, quant)."""
    d = triton_on_device
    k = _kernels()
    assert not k.launch_config(20000, 2, 4).single_pass
    x = _act((2, 20000), torch.float32, d)
    if op_name == "fp8_quant_dynamic":
        _check(op_name, x, True, _scale(5.0, d))
    else:
        _check(op_name, x, _weight(20000, torch.float32, d), EPS, 0.0, _scale(3.0, d))
    x, r = _act((2, 20000), torch.float32, d, 1), _act((2, 20000), torch.float32, d, 2)
    _check("fused_add_rms_norm_fp8_quant_static", x, r, None, EPS, _scale(0.01, d))


def test_many_rows_packed_per_program_and_a_grid_wide_amax(triton_on_device: str) -> None:
    """1024 short rows: several rows per program, and the per-tensor amax is the max over all
    programs (the outlier sits in the last one)."""
    d = triton_on_device
    assert _kernels().launch_config(16, 1024, 2).rows_per_program > 1
    x = _act((1024, 16), torch.bfloat16, d)
    x[1021, 3] = 300.0
    q, scale = triton_quant.fp8_quant_dynamic(x)
    assert float(scale) == pytest.approx(300.0 / 448.0, rel=1e-6)
    op = ir_core.get_op("fp8_quant_dynamic")
    assert output_mismatches(op, (q, scale), op.native(x), (x, False, None, q.dtype)) == []
    _check("rms_norm_fp8_quant_dynamic", x, _weight(16, torch.bfloat16, d), EPS)


def test_rows_on_two_stride_levels(triton_on_device: str) -> None:
    """A slice of a (tokens, heads, dim) buffer: rows on two stride levels, read in place."""
    d = triton_on_device
    x = _act((3, 4, 80), torch.float16, d)[:, 1:3, :64]
    assert not x.is_contiguous()
    _check("fp8_quant_static", x, _scale(0.02, d))
    _check("fp8_quant_group", x, 32, True, True)
    _check("rms_norm_fp8_quant_group", x, _weight(64, torch.float16, d), EPS, 16)
    gate_up = _act((3, 4, 130), torch.bfloat16, d)[:, :, :128]
    _check("silu_and_mul_fp8_quant_static", gate_up, _scale(0.03, d))


@pytest.mark.parametrize("fp8", FP8, ids=str)
def test_column_major_scales_of_3d_input(triton_on_device: str, fp8: torch.dtype) -> None:
    d = triton_on_device
    x = _act((2, 5, 96), torch.bfloat16, d)
    q, scale = triton_quant.fp8_quant_group(x, 32, True, False, fp8)
    assert scale.shape == (2, 5, 3) and scale.stride() == (5, 1, 10)
    expected = ir_core.get_op("fp8_quant_group").native(x, 32, True, False, fp8)
    op = ir_core.get_op("fp8_quant_group")
    assert output_mismatches(op, (q, scale), expected, (x, 32, True, False, fp8)) == []


def test_zero_tokens_per_tensor_scale_is_the_floor(triton_on_device: str) -> None:
    d = triton_on_device
    q, scale = triton_quant.fp8_quant_dynamic(torch.empty(0, 64, device=d))
    assert q.shape == (0, 64) and float(scale) == pytest.approx(1 / (448 * 512), rel=1e-6)


def test_declines_what_the_kernels_do_not_handle() -> None:
    x = torch.randn(4, 64)
    s = _scale(0.1, "cpu")
    assert not triton_quant.fp8_quant_static_supports(x.double(), s)
    assert not triton_quant.fp8_quant_static_supports(x.t().contiguous().t(), s)  # H strided
    assert not triton_quant.fp8_quant_static_supports(x, s, torch.float8_e5m2)
    assert not triton_quant.fp8_quant_group_supports(torch.randn(1, 32768), 32768)
    assert triton_quant.fp8_quant_group_supports(torch.randn(1, 16384), 16384)
    assert not triton_quant.rms_norm_fp8_quant_static_supports(
        x, torch.randn(64, dtype=torch.float64), EPS, s
    )
    assert not triton_quant.fused_add_rms_norm_fp8_quant_dynamic_supports(
        x, torch.randn(4, 32), None, EPS
    )


def test_declined_args_fall_back_to_native(triton_on_device: str) -> None:
    x = torch.randn(4, 64, dtype=torch.float64, device=triton_on_device)
    s = _scale(0.1, triton_on_device)
    with ir_core.set_priority(fp8_quant_static=["triton"]):
        chosen = ir_core.explain("fp8_quant_static", x, s)
        assert chosen.provider == "native"
        assert ("triton", "supports_args declined these arguments") in chosen.skipped
        torch.testing.assert_close(
            ir_core.ops.fp8_quant_static(x, s).float(),
            ir_core.get_op("fp8_quant_static").native(x, s).float(),
        )


def test_hardware_rounding_only_where_triton_has_the_type() -> None:
    k = _kernels()
    cpu = torch.device("cpu")
    assert not k.hardware_fp8(cpu, torch.float8_e4m3fn)
    if k.INTERPRETED:
        assert not k.hardware_fp8(torch.device("cuda", 0), torch.float8_e4m3fn)


@pytest.mark.parametrize(
    "hidden, group, element_size", [(64, 16, 2), (7168, 128, 2), (8192, 8192, 4)]
)
def test_group_launch_config(hidden: int, group: int, element_size: int) -> None:
    cfg = _kernels().group_launch_config(hidden, group, element_size)
    assert cfg.group_block >= group and cfg.group_block & (cfg.group_block - 1) == 0
    assert cfg.row_block & (cfg.row_block - 1) == 0 and cfg.num_warps in (4, 8)
