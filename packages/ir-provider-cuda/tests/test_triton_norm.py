"""The Triton kernels against the ops' native semantics.

Without a GPU these run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set by
conftest), which executes the very kernel code a GPU compiles; shapes stay small because the
interpreter is slow. With a GPU they run compiled, on it.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from launch_spy import LaunchSpy

import ir_core
from ir_core import Sample
from ir_core.kit import row_layout
from ir_core.testing import assert_matches_native, mismatch
from ir_provider_cuda import triton_norm

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
HIDDEN_SIZES = [1, 127, 4095, 5120, 8192]
EPS = 1e-6

IMPLS = {
    "rms_norm": (triton_norm.rms_norm, triton_norm.rms_norm_supports),
    "fused_add_rms_norm": (triton_norm.fused_add_rms_norm, triton_norm.fused_add_rms_norm_supports),
    "dual_rms_norm": (triton_norm.dual_rms_norm, triton_norm.dual_rms_norm_supports),
}


def _kernels() -> Any:
    return importlib.import_module("ir_provider_cuda.triton_kernels")


def _act(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).to(dtype=dtype, device=device)


def _weight(h: int, dtype: torch.dtype, device: str, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(h, generator=g) * 0.5 + 1).to(dtype=dtype, device=device)


def _check(op_name: str, *args: Any, **kwargs: Any) -> None:
    """The Triton impl accepts these arguments and matches native within the op's tolerance."""
    fn, supports = IMPLS[op_name]
    assert supports(*args, **kwargs), f"triton {op_name} declined {kwargs or ''}"
    assert_matches_native(op_name, fn, Sample(args, kwargs, f"{op_name} {kwargs}"))


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch, triton_on_device: str) -> dict[str, LaunchSpy]:
    k = _kernels()
    found = {"rms": LaunchSpy(k._rms_norm_kernel), "dual": LaunchSpy(k._dual_rms_norm_kernel)}
    monkeypatch.setattr(k, "_rms_norm_kernel", found["rms"])
    monkeypatch.setattr(k, "_dual_rms_norm_kernel", found["dual"])
    return found


# -- the op catalogue's own samples ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", list(IMPLS))
def test_catalogue_samples(triton_on_device: str, op_name: str, dtype: torch.dtype) -> None:
    fn, supports = IMPLS[op_name]
    samples = ir_core.get_op(op_name).sample_inputs(dtype, triton_on_device)
    assert samples, f"the catalogue has no samples for {op_name}"
    for sample in samples:
        assert supports(*sample.args, **sample.kwargs), f"triton declined [{sample.label}]"
        assert_matches_native(op_name, fn, sample)


# -- hidden sizes and dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("hidden", HIDDEN_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rms_norm_hidden_sizes(triton_on_device: str, dtype: torch.dtype, hidden: int) -> None:
    d = triton_on_device
    _check("rms_norm", _act((2, hidden), dtype, d), _weight(hidden, dtype, d), EPS)


@pytest.mark.parametrize("hidden", HIDDEN_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_add_hidden_sizes(triton_on_device: str, dtype: torch.dtype, hidden: int) -> None:
    d = triton_on_device
    x, residual = _act((2, hidden), dtype, d, 0), _act((2, hidden), dtype, d, 2)
    _check("fused_add_rms_norm", x, residual, _weight(hidden, dtype, d), EPS)


@pytest.mark.parametrize("hidden", HIDDEN_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dual_hidden_sizes(triton_on_device: str, dtype: torch.dtype, hidden: int) -> None:
    d = triton_on_device
    other = max(1, hidden // 3)
    a, b = _act((2, hidden), dtype, d, 0), _act((2, other), dtype, d, 2)
    _check("dual_rms_norm", a, _weight(hidden, dtype, d), b, _weight(other, dtype, d, 3), EPS, 1e-5)


def test_rows_longer_than_one_block(triton_on_device: str) -> None:
    """fp32 rows over 16K elements take the two-pass path; variance_size spans both chunks."""
    d, h = triton_on_device, 20000
    cfg = _kernels().launch_config(h, 2, 4)
    assert not cfg.single_pass and cfg.block < h
    x, residual = _act((2, h), torch.float32, d), _act((2, h), torch.float32, d, 2)
    w = _weight(h, torch.float32, d)
    _check("rms_norm", x, w, EPS, variance_size=17000)
    _check("fused_add_rms_norm", x, residual, w, EPS, weight_bias=1.0, variance_size=17000)


def test_many_rows_packed_per_program(triton_on_device: str, spies: dict[str, LaunchSpy]) -> None:
    """Enough short rows that one program normalizes several; a ragged last program."""
    d, rows, h = triton_on_device, 1030, 64
    cfg = _kernels().launch_config(h, rows, 2)
    assert cfg.rows_per_program > 1 and rows % cfg.rows_per_program != 0
    _check("rms_norm", _act((rows, h), torch.bfloat16, d), _weight(h, torch.bfloat16, d), EPS)
    ((grid, _),) = spies["rms"].launches
    assert grid == (-(-rows // cfg.rows_per_program),)


def test_norms_are_batch_invariant_as_their_capability_tags_say(triton_on_device: str) -> None:
    """What ``batch_invariant`` promises: a row's bits do not depend on how many rows share
    the call, across the switch to several rows per program (1030 rows: packed; 1 and 7: not)."""
    d, rows, h = triton_on_device, 1030, 64
    assert _kernels().launch_config(h, rows, 2).rows_per_program > 1
    assert _kernels().launch_config(h, 7, 2).rows_per_program == 1
    x, r = _act((rows, h), torch.bfloat16, d), _act((rows, h), torch.bfloat16, d, 2)
    w = _weight(h, torch.bfloat16, d)
    full = triton_norm.rms_norm(x, w, EPS)
    fused, fused_res = triton_norm.fused_add_rms_norm(x, r, w, EPS)
    for start, n in ((0, 1), (500, 7), (1029, 1)):
        part = slice(start, start + n)
        assert torch.equal(triton_norm.rms_norm(x[part], w, EPS), full[part])
        out, res = triton_norm.fused_add_rms_norm(x[part], r[part], w, EPS)
        assert torch.equal(out, fused[part]) and torch.equal(res, fused_res[part])
    tagged = ir_core.get_op("rms_norm").impls["triton"].capabilities
    assert {"batch_invariant", "deterministic"} <= tagged


# -- layouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_3d_inputs(triton_on_device: str, dtype: torch.dtype) -> None:
    d = triton_on_device
    x, residual, w = (
        _act((2, 3, 96), dtype, d),
        _act((2, 3, 96), dtype, d, 2),
        _weight(96, dtype, d),
    )
    _check("rms_norm", x, w, EPS)
    _check("fused_add_rms_norm", x, residual, w, EPS)
    _check("dual_rms_norm", x, w, _act((3, 2, 16), dtype, d, 4), _weight(16, dtype, d), EPS, EPS)


def test_strided_rows_go_to_the_kernel_uncopied(
    triton_on_device: str, spies: dict[str, LaunchSpy]
) -> None:
    """A column slice of a wider buffer (rows 200 apart): the kernel gets the original storage
    and its row stride, in a single launch."""
    d, h = triton_on_device, 127
    buf = _act((4, 200), torch.bfloat16, d)
    x, w = buf[:, 7 : 7 + h], _weight(h, torch.bfloat16, d)
    _check("rms_norm", x, w, EPS)
    triton_norm.rms_norm(x, w, EPS)
    _, args = spies["rms"].launches[-1]
    assert args[0].data_ptr() == x.data_ptr()
    assert args[1:3] == (0, 200)  # one stride level: (outer, inner) row strides


def test_rows_on_two_stride_levels(triton_on_device: str, spies: dict[str, LaunchSpy]) -> None:
    """A transposed (seq, batch, H) buffer whose leading dims do not merge into one stride."""
    d, h = triton_on_device, 64
    x = _act((3, 2, h + 8), torch.float16, d)[:, :, :h].transpose(0, 1)
    residual = _act((2, 3, h), torch.float16, d, 2)
    assert row_layout(x).inner_rows == 3 and row_layout(x).stride_outer != 0
    w = _weight(h, torch.float16, d)
    _check("rms_norm", x, w, EPS)
    _check("fused_add_rms_norm", x, residual, w, EPS)
    triton_norm.fused_add_rms_norm(x, residual, w, EPS)
    _, args = spies["rms"].launches[-1]
    assert args[0].data_ptr() == x.data_ptr() and args[3].data_ptr() == residual.data_ptr()


def test_broadcast_rows(triton_on_device: str) -> None:
    """Rows with stride 0 (an expanded tensor) are read, never written.

    Compared without ``assert_matches_native``, whose stride-keeping copy cannot recreate an
    overlapping layout (reported to ir-core).
    """
    d = triton_on_device
    x = _act((1, 33), torch.float32, d).expand(4, 33)
    w, residual = _weight(33, torch.float32, d), _act((4, 33), torch.float32, d, 2)
    assert triton_norm.rms_norm_supports(x, w, EPS)
    assert triton_norm.fused_add_rms_norm_supports(x, residual, None, EPS)
    cases = [
        ("rms_norm", triton_norm.rms_norm(x, w, EPS), (x, w, EPS)),
        (
            "fused_add_rms_norm",
            triton_norm.fused_add_rms_norm(x, residual, None, EPS),
            (x, residual, None, EPS),
        ),
    ]
    for name, got, args in cases:
        op = ir_core.get_op(name)
        expected = op.native(*args)
        for g, e in zip(
            got if isinstance(got, tuple) else (got,),
            expected if isinstance(expected, tuple) else (expected,),
        ):
            assert mismatch(op, g, e) is None, mismatch(op, g, e)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_zero_tokens(
    triton_on_device: str, dtype: torch.dtype, spies: dict[str, LaunchSpy]
) -> None:
    d = triton_on_device
    x, w = _act((0, 64), dtype, d), _weight(64, dtype, d)
    _check("rms_norm", x, w, EPS)
    _check("fused_add_rms_norm", x, _act((0, 64), dtype, d), w, EPS)
    _check("dual_rms_norm", x, w, _act((0, 2, 16), dtype, d), _weight(16, dtype, d), EPS, EPS)
    assert not spies["rms"].launches and not spies["dual"].launches


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_weight_none(triton_on_device: str, dtype: torch.dtype) -> None:
    d = triton_on_device
    _check("rms_norm", _act((3, 127), dtype, d), None, EPS)
    _check("fused_add_rms_norm", _act((3, 127), dtype, d), _act((3, 127), dtype, d, 2), None, EPS)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gemma_weight_bias(triton_on_device: str, dtype: torch.dtype) -> None:
    d = triton_on_device
    x, w = _act((3, 256), dtype, d), _weight(256, dtype, d) - 1
    _check("rms_norm", x, w, EPS, weight_bias=1.0)
    _check("fused_add_rms_norm", x, _act((3, 256), dtype, d, 2), w, EPS, weight_bias=1.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_fp32_weight_with_16bit_x(triton_on_device: str, dtype: torch.dtype) -> None:
    """Gemma's fp32 ``1 + weight`` meets a 16-bit activation in the kernel, no detour."""
    d = triton_on_device
    x, w = _act((3, 256), dtype, d), _weight(256, torch.float32, d) - 1
    _check("rms_norm", x, w, EPS, weight_bias=1.0)
    _check("fused_add_rms_norm", x, _act((3, 256), dtype, d, 2), w, EPS, weight_bias=1.0)


def test_fp32_residual_with_bf16_x(triton_on_device: str) -> None:
    """residual_out keeps the residual's dtype, out keeps x's."""
    d = triton_on_device
    x, residual = _act((3, 256), torch.bfloat16, d), _act((3, 256), torch.float32, d, 2)
    _check("fused_add_rms_norm", x, residual, _weight(256, torch.bfloat16, d), EPS)
    out, residual_out = triton_norm.fused_add_rms_norm(x, residual, None, EPS)
    assert (out.dtype, residual_out.dtype) == (torch.bfloat16, torch.float32)


@pytest.mark.parametrize("variance_size", [1, 100, 255])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_variance_size(triton_on_device: str, dtype: torch.dtype, variance_size: int) -> None:
    d = triton_on_device
    x, w = _act((3, 256), dtype, d), _weight(256, dtype, d)
    _check("rms_norm", x, w, EPS, variance_size=variance_size)
    _check(
        "fused_add_rms_norm", x, _act((3, 256), dtype, d, 2), w, EPS, variance_size=variance_size
    )


def test_fused_add_normalizes_the_fp32_sum(triton_on_device: str) -> None:
    """fp32 x with a bf16 residual: out (fp32, tight tolerance) must be the norm of the fp32
    sum; the norm of the rounded residual_out is measurably different, so this discriminates."""
    d = triton_on_device
    x, residual = _act((3, 256), torch.float32, d), _act((3, 256), torch.bfloat16, d, 2)
    w = _weight(256, torch.float32, d)
    _check("fused_add_rms_norm", x, residual, w, EPS)
    out, residual_out = triton_norm.fused_add_rms_norm(x, residual, w, EPS)
    of_rounded = ir_core.get_op("rms_norm").native(residual_out.float(), w, EPS)
    atol, rtol = ir_core.get_op("fused_add_rms_norm").tolerance(torch.float32)
    assert not torch.allclose(of_rounded, out, atol=atol, rtol=rtol)


# -- one launch for two norms ---------------------------------------------------------------


def test_dual_is_one_launch(triton_on_device: str, spies: dict[str, LaunchSpy]) -> None:
    """MLA's split latents (a and b are column slices of one buffer): one kernel launch."""
    d = triton_on_device
    fused = _act((5, 96 + 32 + 8), torch.bfloat16, d)
    a, b = fused[:, :96], fused[:, 96:128]
    wa, wb = _weight(96, torch.bfloat16, d), _weight(32, torch.bfloat16, d, 3)
    _check("dual_rms_norm", a, wa, b, wb, EPS, 1e-5)
    assert len(spies["dual"].launches) == 1 and not spies["rms"].launches


@pytest.mark.parametrize(("rows_a", "rows_b"), [(0, 3), (3, 0), (1, 4)])
def test_dual_with_different_row_counts(triton_on_device: str, rows_a: int, rows_b: int) -> None:
    d = triton_on_device
    a, b = _act((rows_a, 64), torch.float16, d), _act((rows_b, 2, 16), torch.float16, d, 2)
    _check(
        "dual_rms_norm",
        a,
        _weight(64, torch.float16, d),
        b,
        _weight(16, torch.float16, d),
        EPS,
        0.1,
    )


# -- rounding -------------------------------------------------------------------------------


def test_stores_round_to_nearest_even(triton_on_device: str) -> None:
    """Every output is rounded once, to nearest even, as torch's ``.to(dtype)`` rounds; this
    holds in Triton's interpreter too, whose own fp32->bf16 cast truncates."""
    d = triton_on_device
    one_ulp = 2.0**-7  # bf16 spacing in [1, 2)
    values = torch.tensor(
        [
            1 + one_ulp / 2,  # tie: stays at even 1.0
            1 + 3 * one_ulp / 2,  # tie: goes up to even 1 + 2 ulp
            1 + one_ulp * 0.51,
            -(1 + one_ulp * 0.49),
            3.0e38,
            float("inf"),
            -float("inf"),
            0.0,
        ],
        dtype=torch.float32,
    )
    # rms_norm of a one-element row with weight w and epsilon 0 is sign(x) * w: the kernel
    # stores w * 1.0 computed in fp32, so the store's rounding is all that is tested.
    x = torch.ones(values.numel(), 1, dtype=torch.bfloat16, device=d)
    for v in values:
        w = v.reshape(1).to(d)
        got = triton_norm.rms_norm(x[:1], w, 0.0)
        assert torch.equal(got.float().cpu(), v.to(torch.bfloat16).float().reshape(1, 1)), float(v)


# -- what the provider declines ---------------------------------------------------------------


def test_declines_unsupported_layouts_and_dtypes() -> None:
    h = 16
    w = torch.ones(h)
    assert not triton_norm.rms_norm_supports(torch.ones(4, h, dtype=torch.float64), None, EPS)
    assert not triton_norm.rms_norm_supports(torch.ones(h, 4).t(), w, EPS)  # column stride 4
    # leading dims (2, 3, 5) with strides that merge into no fewer than three levels
    scattered = torch.ones(5, 3, 2, h + 1)[..., :h].permute(2, 1, 0, 3)
    assert row_layout(scattered) is None
    assert not triton_norm.rms_norm_supports(scattered, w, EPS)
    assert not triton_norm.fused_add_rms_norm_supports(torch.ones(2, h), torch.ones(3, h), w, EPS)


def test_declined_args_fall_back_to_native(triton_on_device: str) -> None:
    h = 16
    scattered = _act((5, 3, 2, h + 1), torch.float32, triton_on_device)[..., :h].permute(2, 1, 0, 3)
    w = _weight(h, torch.float32, triton_on_device)
    with ir_core.set_priority(rms_norm=["triton"]):
        why = ir_core.explain("rms_norm", scattered, w, EPS)
        out = ir_core.ops.rms_norm(scattered, w, EPS)
    assert why.provider == "native"
    assert ("triton", "supports_args declined these arguments") in why.skipped
    assert torch.equal(out, ir_core.get_op("rms_norm").native(scattered, w, EPS))


# -- launch heuristics -----------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [1, 127, 4095, 5120, 8192, 16384, 20000, 65536])
@pytest.mark.parametrize("element_size", [2, 4])
@pytest.mark.parametrize("rows", [1, 16, 4096])
def test_launch_config_invariants(hidden: int, element_size: int, rows: int) -> None:
    cfg = _kernels().launch_config(hidden, rows, element_size)
    assert cfg.block & (cfg.block - 1) == 0, "block must be a power of two"
    assert cfg.block * element_size <= 65536, "a chunk must fit the register budget"
    assert cfg.single_pass == (hidden <= cfg.block)
    if cfg.single_pass:
        assert cfg.block < 2 * max(hidden, 16), "no more than one power of two of padding"
    assert cfg.num_warps in (4, 8, 16)
    assert cfg.rows_per_program >= 1 and cfg.rows_per_program & (cfg.rows_per_program - 1) == 0
    if rows < 1024:
        assert cfg.rows_per_program == 1, "few rows: one per program, to use every SM"
