"""Checks that an implementation honours its op's native semantics.

``assert_matches_native`` is the building block of provider test suites and of the conformance
kit: it runs an impl and native on private copies of a sample, compares every output with the
op's tolerance for that dtype, and checks that the impl left its inputs untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .op import Op, Sample
from .registry import get_op


def _outputs(result: Any) -> tuple[torch.Tensor, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _tensors(sample: Sample) -> list[tuple[str, torch.Tensor]]:
    found = [(f"args[{i}]", a) for i, a in enumerate(sample.args) if isinstance(a, torch.Tensor)]
    found += [(k, v) for k, v in sample.kwargs.items() if isinstance(v, torch.Tensor)]
    return found


def mismatch(
    op: Op, actual: torch.Tensor, expected: torch.Tensor, *, what: str = "output"
) -> str | None:
    """A sentence describing how ``actual`` misses ``expected``, or None when within tolerance."""
    if actual.shape != expected.shape:
        return f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    if actual.numel() == 0:
        return None
    atol, rtol = op.tolerance(expected.dtype)
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    err = (a - e).abs()
    allowed = atol + rtol * e.abs()
    bad = ~(err <= allowed)  # NaN counts as bad unless both are NaN
    bad &= ~(a.isnan() & e.isnan())
    if not bool(bad.any()):
        return None
    excess = torch.where(bad, err - allowed, torch.zeros_like(err)).nan_to_num(float("inf"))
    where = tuple(int(i) for i in torch.unravel_index(excess.argmax(), err.shape))
    max_err = float(err.nan_to_num(float("inf")).max())
    return (
        f"{what}: {int(bad.sum())} of {err.numel()} elements out of tolerance; max error "
        f"{max_err:.3g} (at {where}: got {float(a[where]):.6g}, expected {float(e[where]):.6g}); "
        f"tolerance atol={atol:g} rtol={rtol:g} for {expected.dtype}"
    )


def assert_matches_native(
    op: Op | str, fn: Callable[..., Any], sample: Sample, *, check_mutation: bool = True
) -> None:
    """Run ``fn`` and the op's native impl on copies of ``sample`` and compare.

    Raises AssertionError naming the op, the sample, the output, the max error, where it is,
    and the tolerance; or naming the input ``fn`` wrote into.
    """
    target = get_op(op) if isinstance(op, str) else op
    expected = _outputs(target.native(*sample.clone().args, **sample.clone().kwargs))
    run = sample.clone()
    before = run.clone()
    actual = _outputs(fn(*run.args, **run.kwargs))
    prefix = f"{target.name} [{sample.label or 'sample'}]"
    if len(actual) != len(expected):
        raise AssertionError(f"{prefix}: returned {len(actual)} outputs, expected {len(expected)}")
    problems = [
        m
        for i, (a, e) in enumerate(zip(actual, expected))
        if (m := mismatch(target, a, e, what=f"output {i}")) is not None
    ]
    if check_mutation:
        for (name, after), (_, orig) in zip(_tensors(run), _tensors(before)):
            if not torch.equal(after, orig) and not (after.isnan().any() and orig.isnan().any()):
                problems.append(f"input {name} was modified (impls must be functional)")
    if problems:
        raise AssertionError(f"{prefix}: " + "; ".join(problems))
