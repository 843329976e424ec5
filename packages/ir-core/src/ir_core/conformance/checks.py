"""The conformance checks, each in one place: the pytest suite and ``ir-core check`` call these.

A check returns None when it passes, raises :class:`~ir_core.conformance.errors.CheckFailed`
with a message that says what is wrong (values, where, tolerances), or
:class:`~ir_core.conformance.errors.CheckSkipped` saying why it does not apply.
Sample-level checks take a :class:`~ir_core.conformance.targets.Case`; the compile check takes
a whole :class:`~ir_core.conformance.targets.TargetPlan` because compiling is expensive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..dispatch import select
from ..op import NATIVE, Op
from ..priority import set_priority
from ..registry import get_op
from ..testing import assert_matches_native, output_mismatches
from .errors import CheckFailed, CheckSkipped
from .lowering import compile_and_run
from .symbolic import fake_call, symbolic_call
from .targets import Case, TargetPlan, describe


def _require_claimed(case: Case) -> None:
    if not case.claimed:
        raise CheckSkipped(case.declined or "supports_args declined this sample")


def _where(case: Case) -> str:
    return f"{case.target.id} [{case.label}]"


# -- numerics --------------------------------------------------------------------------------


def check_numerics(case: Case) -> None:
    """Every output matches native within the op's tolerance for its dtype.

    Uses :func:`ir_core.testing.assert_matches_native`, so a failure names the output, the
    number of elements out of tolerance, the max error, where it is, and the tolerance.
    """
    _require_claimed(case)
    op = _op(case)
    target = case.target
    try:
        assert_matches_native(op, op.impls[target.provider].fn, case.sample, check_mutation=False)
    except AssertionError as exc:
        detail = str(exc).removeprefix(f"{op.name} [{case.sample.label or 'sample'}]: ")
        raise CheckFailed(f"{_where(case)}: {detail}") from None
    except Exception as exc:  # a claimed sample must run
        raise CheckFailed(
            f"{_where(case)}: raised {type(exc).__name__}: {exc} "
            "(supports_args accepted these arguments)"
        ) from None


# -- input mutation --------------------------------------------------------------------------


def _tensor_inputs(args: tuple[Any, ...], names: list[str]) -> list[tuple[str, torch.Tensor]]:
    return [(n, a) for n, a in zip(names, args) if isinstance(a, torch.Tensor)]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values and the same strides (NaNs compare equal to NaNs)."""
    if a.stride() != b.stride():
        return False
    if a.is_floating_point():
        return torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)) and torch.equal(
            a.isnan(), b.isnan()
        )
    return torch.equal(a, b)


def check_no_mutation(case: Case) -> None:
    """The impl leaves every input as it found it: ops are functional (docs/contract.md)."""
    _require_claimed(case)
    op = _op(case)
    names = [p.name for p in op.params]
    run = op.bind(case.sample.clone().args, case.sample.clone().kwargs)
    before = op.bind(case.sample.clone().args, case.sample.clone().kwargs)
    try:
        op.impls[case.target.provider].fn(*run)
    except Exception as exc:
        raise CheckFailed(f"{_where(case)}: raised {type(exc).__name__}: {exc}") from None
    changed = [
        name
        for (name, after), (_, orig) in zip(
            _tensor_inputs(run, names), _tensor_inputs(before, names)
        )
        if not _same(after, orig)
    ]
    if changed:
        raise CheckFailed(
            f"{_where(case)}: wrote into input {', '.join(changed)} "
            "(impls must be functional; in-place variants are an explicit opt-in)"
        )


# -- supports_args ---------------------------------------------------------------------------


def check_supports_args(case: Case) -> None:
    """``supports_args`` reads metadata only: on real tensors, FakeTensors and symbolic token
    counts it returns the same plain ``bool`` and adds no guard to the ShapeEnv.

    Runs on every sample, claimed or not: a predicate must answer for anything it is asked.
    """
    op = _op(case)
    predicate = op.impls[case.target.provider].supports_args
    if predicate is None:
        raise CheckSkipped("no supports_args: the impl accepts every call")
    args = op.bind(case.sample.args, case.sample.kwargs)
    shapes = ", ".join(describe(a) for a in args if isinstance(a, torch.Tensor))
    problems: list[str] = []

    def ask(kind: str, call_args: tuple[Any, ...], mode: Any = None) -> Any:
        try:
            if mode is None:
                return predicate(*call_args)
            with mode:
                return predicate(*call_args)
        except Exception as exc:
            problems.append(f"on {kind} it raised {type(exc).__name__}: {exc}")
            return None

    real = ask("real tensors", args)
    if real is not None and type(real) is not bool:
        problems.append(f"on real tensors it returned {type(real).__name__}, not bool")
    fake = fake_call(args)
    on_fake = ask("FakeTensors", fake.args, fake.mode)
    if on_fake is not None and type(on_fake) is not bool:
        problems.append(f"on FakeTensors it returned {type(on_fake).__name__}, not bool")
    elif on_fake is not None and type(real) is bool and on_fake != real:
        problems.append(f"on FakeTensors it answered {on_fake}, on real tensors {real}")
    symbolic = symbolic_call(args)
    on_symbolic = ask("symbolic shapes", symbolic.args, symbolic.mode)
    if on_symbolic is not None and type(on_symbolic) is not bool:
        problems.append(
            f"on symbolic shapes it returned {type(on_symbolic).__name__}, not bool "
            "(a SymBool: compare sizes with statically known values only)"
        )
    elif on_symbolic is not None and type(real) is bool and on_symbolic != real:
        problems.append(f"on symbolic shapes it answered {on_symbolic}, on real tensors {real}")
    guards = symbolic.guards()
    if guards:
        problems.append(
            f"on symbolic shapes it added guard(s) {', '.join(guards)}: it specialized on the "
            "number of tokens, so a compiled graph would recompile per token count"
        )
    if problems:
        symbolic_shapes = ", ".join(
            describe(a) for a in symbolic.args if isinstance(a, torch.Tensor)
        )
        raise CheckFailed(
            f"{_where(case)}: supports_args " + "; ".join(problems) + f" (arguments: {shapes}; "
            f"symbolic: {symbolic_shapes})"
        )


# -- opcheck ---------------------------------------------------------------------------------


def check_opcheck(case: Case) -> None:
    """Under ``set_priority`` naming this provider, dispatch picks it, and
    ``torch.library.opcheck`` passes on ``torch.ops.ir_core.<op>`` (schema, fake impl vs the
    real kernel's output metadata, autograd registration, AOT dispatch with dynamic shapes)."""
    _require_claimed(case)
    op = _op(case)
    provider = case.target.provider
    sample = case.sample.clone()
    with set_priority({op.name: [provider, NATIVE]}):
        chosen = select(op, op.bind(sample.args, sample.kwargs))
        if chosen.provider != provider:
            why = "; ".join(f"{p}: {r}" for p, r in chosen.skipped) or "no reason recorded"
            raise CheckFailed(
                f"{_where(case)}: under set_priority({op.name}=[{provider!r}]) dispatch chose "
                f"{chosen.provider} ({why})"
            )
        try:
            torch.library.opcheck(
                op.torch_op, _opcheck_safe(sample.args), _opcheck_safe(sample.kwargs)
            )
        except Exception as exc:
            raise CheckFailed(f"{_where(case)}: torch.library.opcheck failed: {exc}") from None


def _opcheck_safe(values: Any) -> Any:
    """Zero-element tensors made contiguous: opcheck's input copy (``clone_input`` in
    ``torch._dynamo.utils``) computes a negative storage size for an empty tensor with a row
    pitch wider than its rows. An empty tensor's strides carry no data, so nothing is lost."""

    def fix(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.numel() == 0:
            return torch.empty(v.shape, dtype=v.dtype, device=v.device)
        return v

    if isinstance(values, dict):
        return {k: fix(v) for k, v in values.items()}
    return tuple(fix(v) for v in values)


# -- compile ---------------------------------------------------------------------------------


def compile_case(plan: TargetPlan) -> Case:
    """The sample the compile check uses (compiling costs seconds, so one per target): the
    claimed sample whose first tensor is largest, i.e. the most model-like one."""
    claimed = plan.claimed_cases
    if not claimed:
        raise CheckSkipped(plan.skip or "no claimed sample")

    def size(case: Case) -> int:
        return next((a.numel() for a in case.sample.args if isinstance(a, torch.Tensor)), 0)

    return max(claimed, key=size)


def check_compile(plan: TargetPlan) -> None:
    """A tiny function calling the op, compiled by ``torch.compile`` under ``set_priority``
    naming this provider, lowers the op to this provider and matches native."""
    if plan.skip:
        raise CheckSkipped(plan.skip)
    case = compile_case(plan)
    op = plan.op
    sample = case.sample.clone()
    args = op.bind(sample.args, sample.kwargs)
    expected = op.native(*op.bind(case.sample.clone().args, case.sample.clone().kwargs))
    try:
        actual, lowered_to = compile_and_run(op, plan.target.provider, args)
    except Exception as exc:
        raise CheckFailed(
            f"{_where(case)}: torch.compile failed: {type(exc).__name__}: {_first_lines(exc)}"
        ) from None
    if lowered_to is not None and lowered_to != plan.target.provider:
        raise CheckFailed(
            f"{_where(case)}: compiled under set_priority({op.name}=[{plan.target.provider!r}])"
            f" the op was lowered to {lowered_to}"
        )
    problems = output_mismatches(op, actual, expected, args)
    if problems:
        raise CheckFailed(f"{_where(case)} compiled: " + "; ".join(problems))


def _first_lines(exc: BaseException, limit: int = 1200) -> str:
    """The start of a compiler error: Inductor repeats its message and appends advice."""
    text = str(exc).split("\n\nSet TORCHDYNAMO_VERBOSE")[0].strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


def _op(case: Case) -> Op:
    return get_op(case.target.op)


#: Checks run on each sample, in report order.
SAMPLE_CHECKS: dict[str, Callable[[Case], None]] = {
    "numerics": check_numerics,
    "mutation": check_no_mutation,
    "supports_args": check_supports_args,
    "opcheck": check_opcheck,
}
#: Checks run once per target.
TARGET_CHECKS: dict[str, Callable[[TargetPlan], None]] = {"compile": check_compile}
CHECK_NAMES: tuple[str, ...] = (*SAMPLE_CHECKS, *TARGET_CHECKS)
