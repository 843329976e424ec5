"""The fp8 quant ops as ops: their torch schema with a ``torch.dtype`` argument, validation,
the declared comparison (codes judged by dequantized value), and the conformance kit on native.

Their numerics against an fp64 reference are checked in the top-level
``tests/test_quant_reference.py`` (native and Triton alike).
"""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.catalogue import quant
from ir_core.conformance.runner import run
from ir_core.testing import output_mismatches

QUANT_OPS = [
    "fp8_quant_static",
    "fp8_quant_dynamic",
    "fp8_quant_group",
    "rms_norm_fp8_quant_static",
    "fused_add_rms_norm_fp8_quant_static",
    "rms_norm_fp8_quant_dynamic",
    "fused_add_rms_norm_fp8_quant_dynamic",
    "rms_norm_fp8_quant_group",
    "silu_and_mul_fp8_quant_static",
]
FN, FNUZ = torch.float8_e4m3fn, torch.float8_e4m3fnuz
X = torch.randn(3, 8)
W = torch.randn(8)
S = torch.tensor([0.05])


# -- the schema: a torch.dtype argument with a default ---------------------------------------


@pytest.mark.parametrize("name", QUANT_OPS)
def test_schema_takes_the_fp8_dtype_with_its_default(name):
    schema = ir_core.get_op(name).torch_op._schema
    assert "ScalarType dtype=" in str(schema)
    (arg,) = [a for a in schema.arguments if a.name == "dtype"]
    # torch stores a ScalarType default as its enum number: 24 is float8_e4m3fn
    assert (
        arg.default_value == 24
        and ir_core.get_op(name).signature.parameters["dtype"].default is torch.float8_e4m3fn
    )


def test_the_torch_op_defaults_and_accepts_both_fp8_dtypes():
    op = torch.ops.ir_core.fp8_quant_static
    assert op(X, S).dtype == FN
    assert op(X, S, FNUZ).dtype == FNUZ
    assert op(X, S, dtype=FNUZ).dtype == FNUZ
    assert ir_core.ops.fp8_quant_dynamic(X, True, None, FNUZ)[0].dtype == FNUZ


@pytest.mark.parametrize("fp8", [FN, FNUZ], ids=str)
@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
def test_compiled_calls_keep_the_dtype_argument(backend, fp8):
    from torch._inductor import config as inductor_config

    def f(x, s):
        q = ir_core.ops.fp8_quant_static(x, s, fp8)
        q2, scale = ir_core.ops.fp8_quant_dynamic(x, True)  # default dtype
        return q, q2, scale

    torch._dynamo.reset()
    with inductor_config.patch(fx_graph_cache=False):
        q, q2, _ = torch.compile(f, backend=backend, fullgraph=True)(X, S)
    assert q.dtype == fp8 and q2.dtype == FN
    assert torch.equal(q.view(torch.uint8), quant.fp8_quant_static(X, S, fp8).view(torch.uint8))
    report = ir_core.compile_report()
    assert report.providers()["fp8_quant_static"] == {"native": 1}


# -- validation ------------------------------------------------------------------------------

ops = ir_core.ops
BAD = [
    (lambda: ops.fp8_quant_static(X, S, torch.float16), ValueError, ["fp8_quant_static", "'dtype'", "float8_e4m3fn"]),
    (lambda: ops.fp8_quant_static(X, S, torch.float8_e5m2), ValueError, ["'dtype'", "float8_e5m2"]),
    (lambda: ops.fp8_quant_static(X, S, "fp8"), TypeError, ["'dtype'", "torch.dtype"]),
    (lambda: ops.fp8_quant_static(X, S.double()), TypeError, ["fp8_quant_static", "'scale'", "float32"]),
    (lambda: ops.fp8_quant_static(X, torch.ones(2)), ValueError, ["'scale'", "one element", "(2,)"]),
    (lambda: ops.fp8_quant_static(X, torch.ones(1, 1)), None, []),  # one element, any shape
    (lambda: ops.fp8_quant_static(X, 0.05), TypeError, ["'scale'", "Tensor"]),
    (lambda: ops.fp8_quant_static(X.to(torch.int32), S), TypeError, ["'x'", "floating"]),
    (lambda: ops.fp8_quant_static(X.to(FN), S), TypeError, ["'x'", "16-, 32- or 64-bit"]),
    (lambda: ops.fp8_quant_static(torch.randn(3, 0), S), ValueError, ["'x'", "last dimension"]),
    (lambda: ops.fp8_quant_dynamic(X, False, S), ValueError, ["fp8_quant_dynamic", "'scale_ub'", "per_token=True"]),
    (lambda: ops.fp8_quant_dynamic(X, True, torch.ones(1, dtype=torch.float16)), TypeError, ["'scale_ub'", "float32"]),
    (lambda: ops.fp8_quant_dynamic(X, True, torch.ones(3)), ValueError, ["'scale_ub'", "one element"]),
    (lambda: ops.fp8_quant_dynamic(X, 1), TypeError, ["'per_token'", "bool"]),
    (lambda: ops.fp8_quant_group(X, 3), ValueError, ["fp8_quant_group", "'group_size'", "divide", "(8)"]),
    (lambda: ops.fp8_quant_group(X, 0), ValueError, ["'group_size'", "positive"]),
    (lambda: ops.fp8_quant_group(X, 4.0), TypeError, ["'group_size'", "int"]),
    (lambda: ops.fp8_quant_group(X, True), TypeError, ["'group_size'", "int"]),
    (lambda: ops.fp8_quant_group(X, 4, 1), TypeError, ["'column_major_scales'", "bool"]),
    (lambda: ops.fp8_quant_group(X, 4, False, "yes"), TypeError, ["'scale_ue8m0'", "bool"]),
    (lambda: ops.rms_norm_fp8_quant_static(X, torch.randn(7), 1e-6, S), ValueError, ["rms_norm_fp8_quant_static", "'weight'", "(8,)"]),
    (lambda: ops.rms_norm_fp8_quant_static(X, W, -1.0, S), ValueError, ["'epsilon'"]),
    (lambda: ops.rms_norm_fp8_quant_static(X, None, 1e-6, S, 1.0), ValueError, ["'weight_bias'"]),
    (lambda: ops.rms_norm_fp8_quant_static(X, W, 1e-6, torch.ones(2)), ValueError, ["'scale'"]),
    (lambda: ops.fused_add_rms_norm_fp8_quant_static(X, torch.randn(3, 7), W, 1e-6, S), ValueError, ["fused_add_rms_norm_fp8_quant_static", "'residual'", "(3, 8)"]),
    (lambda: ops.fused_add_rms_norm_fp8_quant_dynamic(X, X.int(), W, 1e-6), TypeError, ["'residual'", "floating"]),
    (lambda: ops.rms_norm_fp8_quant_dynamic(X, W, 1e-6, 0.0, torch.ones(2)), ValueError, ["rms_norm_fp8_quant_dynamic", "'scale_ub'"]),
    (lambda: ops.rms_norm_fp8_quant_dynamic(X, W, 1e-6, dtype=torch.bfloat16), ValueError, ["'dtype'"]),
    (lambda: ops.rms_norm_fp8_quant_group(X, W, 1e-6, 5), ValueError, ["rms_norm_fp8_quant_group", "'group_size'"]),
    (lambda: ops.rms_norm_fp8_quant_group(X, W, 1e-6, 4, 0.0, None), TypeError, ["'column_major_scales'"]),
    (lambda: ops.silu_and_mul_fp8_quant_static(torch.randn(3, 7), S), ValueError, ["silu_and_mul_fp8_quant_static", "'x'", "even", "7"]),
    (lambda: ops.silu_and_mul_fp8_quant_static(X, S.to(torch.bfloat16)), TypeError, ["'scale'", "float32"]),
]  # fmt: skip


@pytest.mark.parametrize("call, error, words", BAD)
def test_bad_input_names_op_and_argument(call, error, words):
    if error is None:
        call()
        return
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# -- the declared comparison -----------------------------------------------------------------


def _codes(values, dtype=FN):
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def _problems(name, actual, expected, *args):
    op = ir_core.get_op(name)
    return output_mismatches(op, actual, expected, op.bind(args, {}))


@pytest.mark.parametrize("fp8", [FN, FNUZ], ids=str)
def test_one_fp8_step_passes_two_fail(fp8):
    x = torch.zeros(1, 6)
    scale = torch.tensor([0.5])
    # neighbours on the grid: 1 -> 1.125 (step 1/8), 4 -> 4.5, 0 -> smallest subnormal
    smallest = torch.finfo(fp8).smallest_normal * torch.finfo(fp8).eps
    expected = _codes([[1.0, 4.0, 0.0, -7.5, 224.0, 17.0]], fp8)
    one = _codes([[1.125, 4.5, smallest, -7.0, 208.0, 18.0]], fp8)
    two = _codes([[1.25, 4.5, smallest, -7.0, 208.0, 18.0]], fp8)
    assert _problems("fp8_quant_static", one, expected, x, scale, fp8) == []
    (problem,) = _problems("fp8_quant_static", two, expected, x, scale, fp8)
    assert "output 0 dequantized: 1 of 6 elements out of tolerance" in problem
    assert "got 0.625, expected 0.5" in problem and f"one {fp8} step" in problem


def test_scales_are_judged_within_fp32_rtol():
    x = torch.ones(2, 4)
    q, scale = quant.fp8_quant_dynamic(x, True)
    assert _problems("fp8_quant_dynamic", (q, scale * (1 + 5e-6)), (q, scale), x, True) == []
    problems = _problems("fp8_quant_dynamic", (q, scale * (1 + 1e-3)), (q, scale), x, True)
    assert any(p.startswith("output 1 (scale): 2 of 2 elements") for p in problems), problems


def test_group_scales_in_the_wrong_layout_fail():
    x = torch.randn(4, 64)
    q, scale = quant.fp8_quant_group(x, 16, True)
    assert scale.stride() == (1, 4)
    assert _problems("fp8_quant_group", (q, scale), (q, scale), x, 16, True) == []
    (problem,) = _problems("fp8_quant_group", (q, scale.contiguous()), (q, scale), x, 16, True)
    assert problem.startswith("output 1 (scale) strides") and "native's layout" in problem


def test_wrong_dtype_or_count_is_reported_before_values():
    x = torch.randn(2, 4)
    q = quant.fp8_quant_static(x, S)
    (problem,) = _problems("fp8_quant_static", q.view(torch.uint8), q, x, S)
    assert problem == "output 0: dtype torch.uint8, expected torch.float8_e4m3fn"
    (problem,) = _problems("fp8_quant_dynamic", (q,), quant.fp8_quant_dynamic(x), x)
    assert problem == "returned 1 outputs, expected 2"


def test_residual_out_keeps_the_default_tolerance():
    x, r = torch.randn(2, 8, dtype=torch.bfloat16), torch.randn(2, 8, dtype=torch.bfloat16)
    q, residual = quant.fused_add_rms_norm_fp8_quant_static(x, r, W, 1e-6, S)
    bumped = residual + 0.25
    (problem,) = _problems(
        "fused_add_rms_norm_fp8_quant_static", (q, bumped), (q, residual), x, r, W, 1e-6, S
    )
    assert problem.startswith("output 1: ") and "for torch.bfloat16" in problem


def test_ceil_pow2_is_exact_around_powers_of_two():
    below = torch.nextafter(torch.tensor(0.25), torch.tensor(0.0))
    above = torch.nextafter(torch.tensor(0.25), torch.tensor(1.0))
    values = torch.stack([below, torch.tensor(0.25), above, torch.tensor(3e-13)])
    assert quant.ceil_pow2(values).tolist() == [0.25, 0.25, 0.5, 2.0**-41]


def test_fp8_step_matches_the_grid_spacing():
    for fp8 in (FN, FNUZ):
        grid = torch.arange(256, dtype=torch.uint8).view(fp8).double()
        grid = grid[grid.isfinite() & (grid >= 0)].unique().sort().values
        steps = quant.fp8_step(grid[:-1], fp8)
        assert torch.equal(steps, grid[1:] - grid[:-1]), fp8


# -- the conformance kit on native -------------------------------------------------------------


def test_kit_runs_every_check_on_every_quant_op_for_native():
    """numerics, mutation, native's deterministic promise and opcheck on every bf16 sample, and
    a compile per op (its samples cover both fp8 dtypes, zero tokens, strided rows, 3-D,
    saturation and the scale floors)."""
    report = run(["native"], ops=QUANT_OPS, dtypes=[torch.bfloat16])
    assert report.ok, [r.message for r in report.failures]
    for name in QUANT_OPS:
        samples = len(ir_core.get_op(name).sample_inputs(torch.bfloat16))
        passed = [r for r in report.results if r.target.op == name and r.outcome == "passed"]
        assert {r.check for r in passed} == {
            "numerics", "mutation", "capabilities", "opcheck", "compile"
        }  # fmt: skip
        assert sum(r.check == "opcheck" for r in passed) == samples >= 9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_opcheck_on_every_sample_in_the_other_dtypes(dtype):
    report = run(["native"], ops=QUANT_OPS, dtypes=[dtype], checks=["opcheck"])
    assert report.ok, [r.message for r in report.failures]
    assert len(report.results) == sum(
        len(ir_core.get_op(n).sample_inputs(dtype)) for n in QUANT_OPS
    )


@pytest.mark.parametrize("name", QUANT_OPS)
def test_every_op_lowers_under_plain_torch_compile(name):
    """Plain ``torch.compile`` (Inductor) lowers each op (native, inlined) on its largest bf16
    sample and matches eager by the op's comparison; the kit's compile check covers
    ``backend="ir_core"``."""
    from torch._inductor import config as inductor_config

    op = ir_core.get_op(name)
    sample = max(op.sample_inputs(torch.bfloat16), key=lambda s: s.args[0].numel())
    args = op.bind(sample.args, sample.kwargs)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]

    def call(*given):
        it = iter(given)
        return op.dispatcher(*(next(it) if isinstance(a, torch.Tensor) else a for a in args))

    torch._dynamo.reset()
    with inductor_config.patch(fx_graph_cache=False):
        out = torch.compile(call, fullgraph=True)(*tensors)
    assert ir_core.compile_report().providers() == {name: {"native": 1}}
    assert output_mismatches(op, out, op.native(*args), args) == []
