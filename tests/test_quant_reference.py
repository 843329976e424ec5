"""Every fp8 quant op, for native and for Triton (its interpreter on CPU), against the fp64
reference of ``quant_reference`` -- fp32/fp16/bf16 inputs, both fp8 dtypes, odd H, zero tokens,
3-D -- judged as the op declares (codes by dequantized value within one fp8 step, scales within
fp32 rtol, ``residual_out`` by its dtype's tolerance)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import quant_reference as ref
import torch

import ir_core
from ir_core.testing import output_mismatches

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
FP8 = [torch.float8_e4m3fn, torch.float8_e4m3fnuz]
#: label -> (leading dims, H): the sizes every op is checked on (H doubled for silu_and_mul).
SHAPES = {"2d": ((4,), 64), "odd H": ((3,), 127), "zero tokens": ((0,), 32), "3d": ((2, 3), 40)}
IMPLS = ["native", "triton"]
EPS = 1e-6


def _impl(op_name: str, provider: str) -> Callable[..., Any]:
    ir_core.load_plugins()
    op = ir_core.get_op(op_name)
    if provider == "native":
        return op.native
    impl = op.impls.get(provider)
    if impl is None:
        pytest.skip(f"no {provider} impl of {op_name} is registered here")
    if "cpu" not in impl.device_types and not torch.cuda.is_available():
        pytest.skip(f"{provider} runs on {sorted(impl.device_types)}; no such device here")
    ok, reason = impl.status()
    if not ok:
        pytest.skip(f"{provider} is unavailable: {reason}")
    return impl.fn


def _device(provider: str) -> str:
    return "cuda" if provider != "native" and torch.cuda.is_available() else "cpu"


def _x(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).to(dtype=dtype, device=device)


def _w(h: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(h)
    return (torch.randn(h, generator=g) * 0.5 + 1).to(dtype=dtype, device=device)


def _scale(value: float, device: str) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float32, device=device)


def _check(op_name: str, fn: Callable[..., Any], args: tuple, expected: Any) -> None:
    op = ir_core.get_op(op_name)
    result = fn(*args)
    actual = tuple(t.cpu() for t in result) if isinstance(result, tuple) else result.cpu()
    cpu_args = tuple(a.cpu() if isinstance(a, torch.Tensor) else a for a in args)
    problems = output_mismatches(op, actual, expected, op.bind(cpu_args, {}))
    assert not problems, f"{op_name}: " + "; ".join(problems)


def _residual_out(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (x.double() + r.double()).to(r.dtype).cpu()


def _sum_rows(x: torch.Tensor, r: torch.Tensor) -> list[list[float]]:
    return ref.rows(x.double() + r.double())


cases = pytest.mark.parametrize(
    "dtype, fp8, shape",
    [(d, f, s) for d in DTYPES for f in FP8 for s in SHAPES],
    ids=lambda v: str(v).removeprefix("torch.") if isinstance(v, torch.dtype) else v,
)
impls = pytest.mark.parametrize("provider", IMPLS)


def _shape(label: str, *, double: bool = False) -> tuple[int, ...]:
    lead, h = SHAPES[label]
    return (*lead, 2 * h if double else h)


@impls
@cases
def test_fp8_quant_static(provider, dtype, fp8, shape):
    fn, d = _impl("fp8_quant_static", provider), _device(provider)
    x = _x(_shape(shape), dtype, d, 1)
    scale = _scale(4.0 / ref.FORMATS[fp8][0], d)  # |x| > 4 saturates
    expected = ref.static(ref.rows(x), x.shape, scale, fp8)
    _check("fp8_quant_static", fn, (x, scale, fp8), expected)


@impls
@cases
@pytest.mark.parametrize("per_token", [False, True])
def test_fp8_quant_dynamic(provider, dtype, fp8, shape, per_token):
    fn, d = _impl("fp8_quant_dynamic", provider), _device(provider)
    x = _x(_shape(shape), dtype, d, 2)
    if per_token:
        expected = ref.per_token(ref.rows(x), x.shape, None, fp8)
    else:
        expected = ref.per_tensor(ref.rows(x), x.shape, fp8)
    _check("fp8_quant_dynamic", fn, (x, per_token, None, fp8), expected)


@impls
@pytest.mark.parametrize("fp8", FP8, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fp8_quant_dynamic_scale_ub_and_floor(provider, dtype, fp8):
    fn, d = _impl("fp8_quant_dynamic", provider), _device(provider)
    x = _x((4, 48), dtype, d, 3)
    x[1] = (x[1].float() * 0.1).to(dtype)  # a row under the cap
    x[2] = (x[2].float() * 1e-7).to(dtype)  # a row at the scale floor
    x[3] = 0.0
    ub = _scale(3.0, d)
    expected = ref.per_token(ref.rows(x), x.shape, ub, fp8)
    assert float(expected[1][2]) == pytest.approx(1 / (ref.FORMATS[fp8][0] * 512), rel=1e-6)
    _check("fp8_quant_dynamic", fn, (x, True, ub, fp8), expected)


GROUPS = {  # label -> (leading dims, H, group_size)
    "2d g=128": ((4,), 256, 128),
    "odd H g=21": ((3,), 63, 21),
    "zero tokens": ((0,), 128, 64),
    "3d g=32": ((2, 3), 64, 32),
}
group_cases = pytest.mark.parametrize(
    "dtype, fp8, shape, layout",
    [
        (d, f, s, lay)
        for d in DTYPES
        for f in FP8
        for s in GROUPS
        for lay in ("row-major", "column-major ue8m0")
    ],
    ids=lambda v: str(v).removeprefix("torch.") if isinstance(v, torch.dtype) else v,
)


@impls
@group_cases
def test_fp8_quant_group(provider, dtype, fp8, shape, layout):
    fn, d = _impl("fp8_quant_group", provider), _device(provider)
    lead, h, group = GROUPS[shape]
    x = _x((*lead, h), dtype, d, 4)
    if x.shape[0]:
        x[0] = (x[0].float() * 1e-12).to(dtype)  # groups at the amax floor (or flushed to 0)
    column_major = ue8m0 = layout != "row-major"
    expected = ref.per_group(ref.rows(x), x.shape, group, column_major, ue8m0, fp8)
    _check("fp8_quant_group", fn, (x, group, column_major, ue8m0, fp8), expected)


def _norm_rows(x, w, weight_bias=0.0):
    return [ref.rms_norm_row(r, w, EPS, weight_bias) for r in ref.rows(x)]


@impls
@cases
def test_rms_norm_fp8_quant_static(provider, dtype, fp8, shape):
    fn, d = _impl("rms_norm_fp8_quant_static", provider), _device(provider)
    x = _x(_shape(shape), dtype, d, 5)
    w = _w(x.shape[-1], dtype, d)
    scale = _scale(2.5 / ref.FORMATS[fp8][0], d)
    expected = ref.static(_norm_rows(x, w), x.shape, scale, fp8)
    _check("rms_norm_fp8_quant_static", fn, (x, w, EPS, scale, 0.0, fp8), expected)


@impls
@cases
def test_fused_add_rms_norm_fp8_quant_static(provider, dtype, fp8, shape):
    fn, d = _impl("fused_add_rms_norm_fp8_quant_static", provider), _device(provider)
    x, r = _x(_shape(shape), dtype, d, 6), _x(_shape(shape), dtype, d, 7)
    w = _w(x.shape[-1], torch.float32, d).sub(1.0)  # Gemma's fp32 (1 + weight)
    scale = _scale(2.5 / ref.FORMATS[fp8][0], d)
    s = [ref.rms_norm_row(row, w, EPS, 1.0) for row in _sum_rows(x, r)]
    expected = (ref.static(s, x.shape, scale, fp8), _residual_out(x, r))
    _check("fused_add_rms_norm_fp8_quant_static", fn, (x, r, w, EPS, scale, 1.0, fp8), expected)


@impls
@cases
def test_rms_norm_fp8_quant_dynamic(provider, dtype, fp8, shape):
    fn, d = _impl("rms_norm_fp8_quant_dynamic", provider), _device(provider)
    x = _x(_shape(shape), dtype, d, 8)
    w = _w(x.shape[-1], dtype, d)
    ub = _scale(2.0, d)
    expected = ref.per_token(_norm_rows(x, w), x.shape, ub, fp8)
    _check("rms_norm_fp8_quant_dynamic", fn, (x, w, EPS, 0.0, ub, fp8), expected)


@impls
@cases
def test_fused_add_rms_norm_fp8_quant_dynamic(provider, dtype, fp8, shape):
    fn, d = _impl("fused_add_rms_norm_fp8_quant_dynamic", provider), _device(provider)
    x, r = _x(_shape(shape), dtype, d, 9), _x(_shape(shape), torch.float32, d, 10)
    w = _w(x.shape[-1], dtype, d)
    q, scale = ref.per_token(
        [ref.rms_norm_row(row, w, EPS, 0.0) for row in _sum_rows(x, r)], x.shape, None, fp8
    )
    expected = (q, scale, _residual_out(x, r))
    _check("fused_add_rms_norm_fp8_quant_dynamic", fn, (x, r, w, EPS, 0.0, None, fp8), expected)


@impls
@group_cases
def test_rms_norm_fp8_quant_group(provider, dtype, fp8, shape, layout):
    fn, d = _impl("rms_norm_fp8_quant_group", provider), _device(provider)
    lead, h, group = GROUPS[shape]
    x = _x((*lead, h), dtype, d, 11)
    if x.shape[0]:
        x[0] = 0.0  # a zero row normalizes to zero: the amax floor
    w = _w(h, dtype, d)
    column_major = ue8m0 = layout != "row-major"
    expected = ref.per_group(_norm_rows(x, w), x.shape, group, column_major, ue8m0, fp8)
    args = (x, w, EPS, group, 0.0, column_major, ue8m0, fp8)
    _check("rms_norm_fp8_quant_group", fn, args, expected)


@impls
@cases
def test_silu_and_mul_fp8_quant_static(provider, dtype, fp8, shape):
    fn, d = _impl("silu_and_mul_fp8_quant_static", provider), _device(provider)
    x = _x(_shape(shape, double=True), dtype, d, 12)
    scale = _scale(3.0 / ref.FORMATS[fp8][0], d)
    out_shape = (*x.shape[:-1], x.shape[-1] // 2)
    values = [ref.silu_and_mul_row(r) for r in ref.rows(x)]
    _check(
        "silu_and_mul_fp8_quant_static",
        fn,
        (x, scale, fp8),
        ref.static(values, out_shape, scale, fp8),
    )


def test_the_reference_rounds_to_nearest_even_on_both_grids():
    """Spot values worked out by hand from the formats (not from torch or the ops)."""
    fn, fnuz = torch.float8_e4m3fn, torch.float8_e4m3fnuz
    assert ref.fp8_round(17.0, fn) == 16.0  # tie between 16 and 18: even mantissa
    assert ref.fp8_round(19.0, fn) == 20.0  # tie between 18 and 20
    assert ref.fp8_round(1.0625, fn) == 1.0
    assert ref.fp8_round(3 * 2.0**-10, fn) == 2.0**-8  # subnormal tie (spacing 2^-9)
    assert ref.fp8_round(3 * 2.0**-11, fnuz) == 2.0**-9  # fnuz subnormal spacing 2^-10
    assert ref.fp8_round(447.0, fn) == 448.0 and ref.fp8_round(-239.0, fnuz) == -240.0
    assert ref.quantize([1e9, -1e9], 1.0, fn) == [448.0, -448.0]
