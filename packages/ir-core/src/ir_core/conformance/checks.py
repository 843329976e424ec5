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
from ..testing import assert_matches_native, output_mismatches, outputs
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


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same shape, dtype and bits of every value (so NaNs of one payload are equal, and
    -0.0 differs from 0.0); compared as bytes, which every dtype (fp8 included) can be read as."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(_bytes(a), _bytes(b))


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values and the same strides."""
    return a.stride() == b.stride() and _bitwise_equal(a, b)


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


# -- capabilities ----------------------------------------------------------------------------

#: The capability tags whose promise the kit checks; any other tag is taken on trust.
CHECKED_CAPABILITIES: tuple[str, ...] = ("deterministic", "batch_invariant")


def _row_arguments(args: tuple[Any, ...], results: tuple[torch.Tensor, ...]) -> list[int] | str:
    """Which arguments hold the sample's rows (so a sub-batch slices them), or why that cannot
    be told from shapes: the rows are the leading dimension N of the first tensor; the other
    tensors of at least two dimensions with N leading are rows too, the rest (weights, caches,
    scales) are shared. A 1-D tensor of length N, or an output without N leading, leaves it
    ambiguous, and the sample is not used."""
    tensors = [(i, a) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    first = tensors[0][1] if tensors else None
    if first is None or first.dim() < 2 or first.shape[0] < 2:
        return "the first tensor has no leading dimension of 2 or more rows"
    n = first.shape[0]
    if any(a.dim() == 1 and a.shape[0] == n for _, a in tensors):
        return f"a 1-D argument of length {n} might be per-row or shared"
    if any(o.dim() == 0 or o.shape[0] != n for o in results):
        return f"an output does not have the {n} rows leading"
    return [i for i, a in tensors if a.dim() >= 2 and a.shape[0] == n]


def _differing(
    actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...], rows: slice
) -> list[str]:
    return [
        f"output {i} rows {rows.start}:{rows.stop}"
        for i, (a, e) in enumerate(zip(actual, expected))
        if not _bitwise_equal(a, e[rows])
    ]


#: At most this many rows are each run alone (spread over the batch, its ends included).
SINGLE_ROWS = 8


def _sub_batches(n: int) -> list[slice]:
    """Each row alone (at most :data:`SINGLE_ROWS` of them), then every row but the first."""
    picked = sorted({round(i * (n - 1) / (SINGLE_ROWS - 1)) for i in range(SINGLE_ROWS)})
    return [slice(i, i + 1) for i in (picked if n > SINGLE_ROWS else range(n))] + [slice(1, n)]


def _batch_invariance_problems(case: Case, full: tuple[torch.Tensor, ...]) -> list[str] | str:
    """Rows of ``full`` that change when the impl runs on fewer rows (each row alone, every
    row but the first), or why this sample cannot tell."""
    op = _op(case)
    impl = op.impls[case.target.provider]
    args = op.bind(case.sample.clone().args, case.sample.clone().kwargs)
    rows = _row_arguments(args, full)
    if isinstance(rows, str):
        return rows
    problems: list[str] = []
    tried = 0
    for part in _sub_batches(args[rows[0]].shape[0]):
        sub = tuple(a[part] if i in rows else a for i, a in enumerate(args))
        if impl.declines(sub) is not None:
            continue  # dispatch would not send this sub-batch to the impl
        tried += 1
        problems += _differing(outputs(impl.fn(*sub)), full, part)
    return problems if tried else "supports_args declines every sub-batch of this sample"


def check_capabilities(case: Case) -> None:
    """The promises of the impl's capability tags hold bitwise on this sample:
    ``deterministic``, a second run on equal inputs gives the same bits; ``batch_invariant``,
    each row's bits are the same when the impl runs on a sub-batch of the rows (each row alone,
    and every row but the first; rows are told from shapes, see :func:`_row_arguments`). Tags
    the kit cannot check are taken on trust."""
    _require_claimed(case)
    op = _op(case)
    impl = op.impls[case.target.provider]
    tags = [t for t in CHECKED_CAPABILITIES if t in impl.capabilities]
    if not tags:
        raise CheckSkipped(
            f"declares none of the capabilities the kit checks ({', '.join(CHECKED_CAPABILITIES)})"
        )

    def run_once() -> tuple[torch.Tensor, ...]:
        return outputs(impl.fn(*op.bind(case.sample.clone().args, case.sample.clone().kwargs)))

    problems: list[str] = []
    unchecked: list[str] = []
    try:
        full = run_once()
        if "deterministic" in tags:
            changed = [
                f"output {i}"
                for i, (a, b) in enumerate(zip(run_once(), full))
                if not _bitwise_equal(a, b)
            ]
            if changed:
                problems.append(
                    f"deterministic: a second run on equal inputs gave other bits in "
                    f"{', '.join(changed)}"
                )
        if "batch_invariant" in tags:
            found = _batch_invariance_problems(case, full)
            if isinstance(found, str):
                unchecked.append(f"batch_invariant not checked: {found}")
            elif found:
                problems.append(
                    "batch_invariant: rows changed bits when run with fewer rows: "
                    + ", ".join(found)
                )
    except Exception as exc:
        raise CheckFailed(f"{_where(case)}: raised {type(exc).__name__}: {exc}") from None
    if problems:
        raise CheckFailed(f"{_where(case)}: " + "; ".join(problems))
    if len(unchecked) == len(tags):
        raise CheckSkipped("; ".join(unchecked))


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
    "capabilities": check_capabilities,
    "opcheck": check_opcheck,
}
#: Checks run once per target.
TARGET_CHECKS: dict[str, Callable[[TargetPlan], None]] = {"compile": check_compile}
CHECK_NAMES: tuple[str, ...] = (*SAMPLE_CHECKS, *TARGET_CHECKS)
