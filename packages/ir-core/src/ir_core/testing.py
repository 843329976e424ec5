"""Checks that an implementation honours its op's native semantics.

``assert_matches_native`` is the building block of provider test suites and of the conformance
kit: it runs an impl and native on private copies of a sample, compares every output with the
op's tolerance for that dtype (or as the op's own ``compare`` says: fp8 codes by the values they
dequantize to), and checks that the impl left its inputs untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .op import Comparison, Op, Sample, value_comparison
from .registry import get_op


def outputs(result: Any) -> tuple[torch.Tensor, ...]:
    """An op call's result as a tuple of its outputs (a single tensor is one output)."""
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _tensors(sample: Sample) -> list[tuple[str, torch.Tensor]]:
    found = [(f"args[{i}]", a) for i, a in enumerate(sample.args) if isinstance(a, torch.Tensor)]
    found += [(k, v) for k, v in sample.kwargs.items() if isinstance(v, torch.Tensor)]
    return found


def judge(comparison: Comparison) -> str | None:
    """A sentence describing how ``comparison`` fails, or None when it holds everywhere."""
    a, e = comparison.actual, comparison.expected
    if a.numel() == 0:
        return None
    err = (a - e).abs()
    allowed = torch.as_tensor(comparison.allowed, dtype=err.dtype).expand_as(err)
    bad = ~(err <= allowed)  # NaN counts as bad unless both are NaN
    bad &= ~(a.isnan() & e.isnan())
    if not bool(bad.any()):
        return None
    excess = torch.where(bad, err - allowed, torch.zeros_like(err)).nan_to_num(float("inf"))
    where = tuple(int(i) for i in torch.unravel_index(excess.argmax(), err.shape))
    max_err = float(err.nan_to_num(float("inf")).max())
    return (
        f"{comparison.what}: {int(bad.sum())} of {err.numel()} elements out of tolerance; max "
        f"error {max_err:.3g} (at {where}: got {float(a[where]):.6g}, expected "
        f"{float(e[where]):.6g}, allowed {float(allowed[where]):.3g}); "
        f"tolerance {comparison.tolerance}"
    )


def _layout_mismatch(actual: torch.Tensor, expected: torch.Tensor, what: str) -> str | None:
    if actual.shape != expected.shape:
        return f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    return None


def mismatch(
    op: Op, actual: torch.Tensor, expected: torch.Tensor, *, what: str = "output"
) -> str | None:
    """A sentence describing how ``actual`` misses ``expected`` within the op's per-dtype
    tolerance, or None when it is within."""
    problem = _layout_mismatch(actual, expected, what)
    if problem is not None:
        return problem
    return judge(value_comparison(what, actual, expected, *op.tolerance(expected.dtype)))


def output_mismatches(op: Op, actual: Any, expected: Any, args: Sequence[Any]) -> list[str]:
    """How an impl's result ``actual`` misses native's ``expected`` for the call ``args``
    (bound, all positional): output count, shapes and dtypes, then what the op judges them on
    (:meth:`ir_core.Op.comparisons`: the per-dtype tolerance, or the op's own ``compare``).
    Empty when everything is within tolerance."""
    outs, refs = outputs(actual), outputs(expected)
    if len(outs) != len(refs):
        return [f"returned {len(outs)} outputs, expected {len(refs)}"]
    problems = [
        m
        for i, (a, e) in enumerate(zip(outs, refs))
        if (m := _layout_mismatch(a, e, f"output {i}")) is not None
    ]
    if problems:
        return problems
    return [m for c in op.comparisons(outs, refs, args) if (m := judge(c)) is not None]


def assert_matches_native(
    op: Op | str, fn: Callable[..., Any], sample: Sample, *, check_mutation: bool = True
) -> None:
    """Run ``fn`` and the op's native impl on copies of ``sample`` and compare.

    Raises AssertionError naming the op, the sample, the output, the max error, where it is,
    and the tolerance; or naming the input ``fn`` wrote into.
    """
    target = get_op(op) if isinstance(op, str) else op
    expected = outputs(target.native(*sample.clone().args, **sample.clone().kwargs))
    run = sample.clone()
    before = run.clone()
    actual = outputs(fn(*run.args, **run.kwargs))
    prefix = f"{target.name} [{sample.label or 'sample'}]"
    problems = output_mismatches(target, actual, expected, target.bind(sample.args, sample.kwargs))
    if check_mutation:
        for (name, after), (_, orig) in zip(_tensors(run), _tensors(before)):
            if not torch.equal(after, orig) and not (after.isnan().any() and orig.isnan().any()):
                problems.append(f"input {name} was modified (impls must be functional)")
    if problems:
        raise AssertionError(f"{prefix}: " + "; ".join(problems))
