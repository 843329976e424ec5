"""The conformance kit's ``capabilities`` check: declared tags are held to their promise.

Each impl below computes rms_norm within tolerance (numerics pass) but breaks, or keeps, one
promise in a way real kernels do: a reduction split chosen by the row count (not
batch-invariant), a summation order that changes per call, as float atomics do (not
deterministic).
"""

from __future__ import annotations

import pytest
import torch
from kernels import rms_norm_signature

from ir_core import Sample
from ir_core.conformance import Case, plan, run
from ir_core.conformance.checks import (
    CheckFailed,
    CheckSkipped,
    _row_arguments,
    check_capabilities,
)


def _rms_norm(mean_square):
    """An rms_norm impl whose mean of squares is ``mean_square(x_fp32)``."""

    def body(x, weight, epsilon, weight_bias, variance_size):
        xf = x.float()
        y = xf * torch.rsqrt(mean_square(xf) + epsilon)
        return (y * weight.float()).to(x.dtype)

    return rms_norm_signature(body)


def _plain_weighted(x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
    """The impls below implement the plain weighted norm only."""
    return weight is not None and weight_bias == 0.0 and variance_size is None


def _row_by_row(xf: torch.Tensor) -> torch.Tensor:
    rows = xf.reshape(-1, xf.shape[-1])
    each = [row.square().sum().reshape(1) for row in rows]
    total = torch.cat(each) if each else xf.new_empty(0)
    return (total / xf.shape[-1]).reshape(*xf.shape[:-1], 1)


def _split_when_many_rows(xf: torch.Tensor) -> torch.Tensor:
    """Four partial sums per row for a batch of rows, one sum below that: the
    batch-size heuristic that makes a kernel's bits depend on the batch."""
    h = xf.shape[-1]
    squares = xf.square()
    if xf.reshape(-1, h).shape[0] >= 2 and h % 4 == 0:
        total = squares.unflatten(-1, (4, h // 4)).sum(-1).sum(-1, keepdim=True)
    else:
        total = squares.sum(-1, keepdim=True)
    return total / h


def _shuffled_order(xf: torch.Tensor) -> torch.Tensor:
    """Eight fp32 partial sums per row over a fresh permutation of the row each call, as
    blocks whose atomic adds land in another order do."""
    h = xf.shape[-1]
    squares = xf.square()
    if h % 8:
        return squares.sum(-1, keepdim=True) / h
    parts = squares[..., torch.randperm(h)].unflatten(-1, (8, h // 8)).sum(-1)
    total = parts[..., 0]
    for i in range(1, 8):
        total = total + parts[..., i]
    return total.unsqueeze(-1) / h


@pytest.fixture
def tagged(plugin):
    """``tagged(name, mean_square, capabilities)`` registers an rms_norm impl for cpu."""

    def register(name, mean_square, capabilities):
        def register_impls(registry):
            registry.register_impl(
                "rms_norm",
                name,
                _rms_norm(mean_square),
                device_types=("cpu",),
                supports_args=_plain_weighted,
                capabilities=capabilities,
            )

        plugin(register_impls=register_impls)
        return name

    return register


def _results(name, dtype=torch.float32):
    report = run([name], dtypes=[dtype], checks=["numerics", "capabilities"])
    numerics = [r for r in report.results if r.check == "numerics"]
    assert numerics and {r.outcome for r in numerics} == {"passed", "skipped"}  # within tolerance
    return [r for r in report.results if r.check == "capabilities" and r.outcome != "skipped"]


def test_native_keeps_its_deterministic_promise_on_every_op():
    report = run(["native"], dtypes=[torch.bfloat16], checks=["capabilities"])
    assert report.ok, [r.message for r in report.failures]
    assert {r.outcome for r in report.results} == {"passed"}
    assert len({r.target.op for r in report.results}) >= 10


def test_a_kernel_that_reduces_row_by_row_is_batch_invariant(tagged):
    name = tagged("rowwise", _row_by_row, {"batch_invariant", "deterministic"})
    results = _results(name)
    passed = [r for r in results if r.outcome == "passed"]
    assert not [r for r in results if r.outcome == "failed"]
    assert {"2d h=1024", "3d", "strided rows"} <= {r.sample for r in passed}


def _model_like_case(name: str) -> Case:
    """8 tokens of a 4096-wide hidden state in fp32, where a 1-ulp change in a row's mean
    square shows in its outputs (on the op's small samples it mostly rounds away)."""
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(8, 4096, generator=g), torch.randn(4096, generator=g)
    (target,) = plan(name, dtypes=[torch.float32])
    return Case(target.target, 0, Sample((x, weight, 1e-6), label="8x4096"), claimed=True)


def test_a_split_chosen_by_row_count_fails_batch_invariant(tagged):
    name = tagged("splitter", _split_when_many_rows, {"batch_invariant"})
    _results(name)  # within tolerance everywhere: only the capability check can tell
    with pytest.raises(CheckFailed) as failed:
        check_capabilities(_model_like_case(name))
    message = str(failed.value)
    assert message.startswith("rms_norm-splitter-cpu-float32 [8x4096]: batch_invariant: rows ")
    assert "changed bits when run with fewer rows: output 0 rows 1:2" in message


def test_a_row_by_row_reduction_passes_the_model_like_case(tagged):
    check_capabilities(_model_like_case(tagged("rowwise8", _row_by_row, {"batch_invariant"})))


def test_the_same_split_is_not_flagged_when_batch_invariance_is_not_claimed(tagged):
    name = tagged("honest_splitter", _split_when_many_rows, {"deterministic"})
    assert {r.outcome for r in _results(name)} == {"passed"}
    check_capabilities(_model_like_case(name))


def test_a_summation_order_that_changes_per_call_fails_deterministic(tagged):
    torch.manual_seed(0)
    name = tagged("atomics", _shuffled_order, {"deterministic"})
    failed = [r for r in _results(name) if r.outcome == "failed"]
    assert failed, "a per-call summation order went unnoticed"
    assert "deterministic: a second run on equal inputs gave other bits in output 0" in (
        failed[0].message
    )


def test_tags_the_kit_cannot_check_are_skipped_saying_so(tagged):
    name = tagged("graphs", _row_by_row, {"cuda_graph_safe", "acme_exact"})
    (target,) = plan(name, dtypes=[torch.float32])
    with pytest.raises(CheckSkipped, match="declares none of the capabilities the kit checks"):
        check_capabilities(target.claimed_cases[0])


def test_a_sample_with_a_single_row_checks_only_determinism(tagged):
    name = tagged("single", _row_by_row, {"batch_invariant"})
    (target,) = plan(name, dtypes=[torch.float32])
    (one,) = [c for c in target.claimed_cases if c.label == "one token"]
    with pytest.raises(CheckSkipped, match="batch_invariant not checked: the first tensor has no"):
        check_capabilities(one)


def test_rows_are_told_from_shapes_and_ambiguity_is_refused():
    x, residual, weight = torch.empty(4, 8), torch.empty(4, 8), torch.empty(8)
    out = torch.empty(4, 8)
    assert _row_arguments((x, residual, weight, 1e-6), (out, out)) == [0, 1]
    positions = torch.empty(4, dtype=torch.long)  # per row, or a weight of size 4?
    assert "1-D argument of length 4" in _row_arguments((x, positions), (out,))
    assert "does not have the 4 rows" in _row_arguments((x, weight), (torch.empty(8),))
    assert "no leading dimension" in _row_arguments((weight,), (weight,))
