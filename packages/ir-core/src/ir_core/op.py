"""Ops and their implementations: the data the registry holds and the dispatcher reads.

An :class:`Op` is declared once from a typed native function whose body *is* the semantics;
every :class:`Impl` (a kernel from one provider) is checked against it.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

NATIVE = "native"

#: The capability tags ir-core defines (docs/contract.md, "Capabilities"): what an impl
#: promises beyond matching native within tolerance.
KNOWN_CAPABILITIES: dict[str, str] = {
    "batch_invariant": "a row's result does not depend on the other rows (batch size, position)",
    "deterministic": "the same inputs give the same bits on every run",
    "cuda_graph_safe": "may be captured in a CUDA graph (no host sync, no allocation per call)",
}

#: What the native impl of every op promises: plain torch ops with no atomics are
#: deterministic; their reductions may be split differently for another row count, so native
#: is not batch-invariant, and an op's native body is not known to be graph-safe.
NATIVE_CAPABILITIES = frozenset({"deterministic"})

_TAG = re.compile(r"[a-z][a-z0-9_]*")


def capability_tags(tags: Iterable[str], *, what: str) -> frozenset[str]:
    """``tags`` checked: lowercase identifiers, and none that looks like a typo of a known tag
    (``batch_invariants``) -- a misspelt tag would silently never match. Other names are
    allowed, for a vendor's own promises (``acme_fp8_exact``). Raises ValueError."""
    if isinstance(tags, str):
        raise ValueError(f"{what}: capabilities must be a collection of names, not a string")
    result = frozenset(tags)
    for tag in sorted(result, key=str):
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ValueError(f"{what}: capability {tag!r} is not a lowercase identifier")
        if tag in KNOWN_CAPABILITIES:
            continue
        close = difflib.get_close_matches(tag, KNOWN_CAPABILITIES, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"{what}: unknown capability {tag!r}; did you mean {close[0]!r}?")
    return result


#: Default per-dtype (atol, rtol) every impl must meet against native (docs/contract.md).
DEFAULT_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-5, 1.3e-6),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1e-3, 1.6e-2),
}


@dataclass(frozen=True)
class Comparison:
    """One quantity an impl's outputs are judged on: ``|actual - expected| <= allowed``.

    Most ops compare each output with native's within the per-dtype ``(atol, rtol)``
    (:func:`value_comparison`). An op whose outputs are not judged element by element as
    stored -- fp8 codes, judged by the values they dequantize to, with an error of one fp8
    step -- declares ``compare`` and returns its own comparisons (see :meth:`Op.comparisons`).
    ``actual`` and ``expected`` are fp64 tensors of one shape; ``allowed`` is a tensor of that
    shape or a float; ``tolerance`` says in words what ``allowed`` is, for failure messages.
    """

    what: str
    actual: torch.Tensor
    expected: torch.Tensor
    allowed: torch.Tensor | float
    tolerance: str


def value_comparison(
    what: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float
) -> Comparison:
    """``actual`` within ``atol + rtol * |expected|`` of ``expected``, element by element."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    return Comparison(
        what, a, e, atol + rtol * e.abs(), f"atol={atol:g} rtol={rtol:g} for {expected.dtype}"
    )


#: An op's own comparison: ``(actual outputs, expected outputs, arguments by name)`` -> what to
#: judge. Called only when the outputs' count, shapes and dtypes already match native's.
Compare = Callable[
    [tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], dict[str, Any]], list[Comparison]
]


@dataclass
class Sample:
    """One set of arguments for an op, with a label that says what case it covers."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def clone(self) -> Sample:
        """Deep-copy the tensors, keeping strides, so a run cannot touch the original."""
        return Sample(
            tuple(_clone_keep_strides(a) for a in self.args),
            {k: _clone_keep_strides(v) for k, v in self.kwargs.items()},
            self.label,
        )


def _clone_keep_strides(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    copy = torch.empty_strided(value.size(), value.stride(), dtype=value.dtype, device=value.device)
    try:
        return copy.copy_(value)
    except RuntimeError:  # overlapping memory (an expanded, stride-0 view) cannot be rebuilt
        return value.clone()


class Param:
    """How the dispatcher and validation treat one parameter of an op."""

    __slots__ = ("annotation", "default", "is_tensor", "name", "optional")

    def __init__(self, name: str, annotation: Any, default: Any) -> None:
        self.name = name
        self.annotation = annotation
        self.default = default
        args = typing.get_args(annotation)
        self.optional = type(None) in args
        self.is_tensor = annotation is torch.Tensor or (
            self.optional and torch.Tensor in args and len(args) == 2
        )


def resolved_signature(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    """The signature of ``fn`` and its annotations with string annotations resolved."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an unresolvable annotation is a declaration error, said plainly
        raise TypeError(f"cannot resolve the annotations of {fn.__qualname__}: {exc}") from exc
    return sig, hints


class Impl:
    """A kernel for one op from one provider."""

    __slots__ = (
        "_available",
        "_status",
        "capabilities",
        "device_types",
        "fn",
        "op_name",
        "plugin",
        "provider",
        "supports_args",
    )

    def __init__(
        self,
        op_name: str,
        provider: str,
        fn: Callable[..., Any],
        *,
        device_types: frozenset[str] | None,
        supports_args: Callable[..., bool] | None,
        available: bool | Callable[[], tuple[bool, str]],
        plugin: str | None,
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        self.op_name = op_name
        self.provider = provider
        self.fn = fn
        #: None means every device type (the native impl).
        self.device_types = device_types
        self.supports_args = supports_args
        self.plugin = plugin
        #: What the impl promises beyond tolerance (:data:`KNOWN_CAPABILITIES`, vendor tags).
        self.capabilities = capabilities
        self._available = available
        self._status: tuple[bool, str] | None = None

    def status(self) -> tuple[bool, str]:
        """``(available, reason)``, evaluated once: availability checks may import libraries."""
        if self._status is None:
            check = self._available
            if callable(check):
                try:
                    ok, reason = check()
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # a broken check (even sys.exit) means unavailable
                    ok, reason = False, f"availability check raised {type(exc).__name__}: {exc}"
            else:
                ok, reason = bool(check), "" if check else "declared unavailable"
            self._status = (bool(ok), "" if ok else str(reason))
        return self._status

    def runs_on(self, device_type: str) -> bool:
        return self.device_types is None or device_type in self.device_types

    def rejection(self, device_type: str, args: Sequence[Any]) -> str | None:
        """Why this impl cannot run ``args`` (all positional) on ``device_type``, or None when
        it can: unavailable, another device type, or ``supports_args`` declining.

        Dispatch, ``ir-core bench`` and the conformance kit all ask this one question.
        """
        ok, reason = self.status()
        if not ok:
            return f"unavailable: {reason}"
        if not self.runs_on(device_type):
            return f"runs on {', '.join(sorted(self.device_types or ()))}, not {device_type}"
        return self.declines(args)

    def lacks(self, required: frozenset[str]) -> str | None:
        """Why this impl does not meet a ``require=`` (the first tag it lacks), or None."""
        missing = sorted(required - self.capabilities)
        return f"lacks capability {missing[0]}" if missing else None

    def declines(self, args: Sequence[Any]) -> str | None:
        """Why ``supports_args`` does not accept ``args``, or None when it does (or there is
        none). A predicate that raises declines: it must not break the call."""
        if self.supports_args is None:
            return None
        try:
            supported = self.supports_args(*args)
        except Exception as exc:  # a faulty predicate declines; it must not break the call
            return f"supports_args raised {type(exc).__name__}: {exc}"
        if supported is True:
            return None
        if supported is False:
            return "supports_args declined these arguments"
        # a tensor (whose truth may be ambiguous or data-dependent), None, 1, a numpy bool...:
        # the contract is a plain bool, and guessing what else meant yes would be a silent risk
        return f"supports_args returned {type(supported).__name__}, not a bool: declined"

    def __repr__(self) -> str:
        return f"<Impl {self.op_name}:{self.provider}>"


@dataclass(frozen=True)
class OpDeclaration:
    """One row of an op table: what ``Registry.register_op`` takes to declare an op.

    ``fn`` is the typed native function (its name is the op's unless ``name`` is given); see
    :class:`Op` for the rest.
    """

    fn: Callable[..., Any]
    validate: Callable[..., None] | None = None
    sample_inputs: Callable[[torch.dtype, torch.device], Iterable[Sample]] | None = None
    example_inputs: Callable[..., Sample] | None = None
    tolerances: dict[torch.dtype, tuple[float, float]] | None = None
    name: str | None = None
    compare: Compare | None = None


class Op:
    """A functional operator: schema, native semantics, tolerances, validation and samples."""

    def __init__(
        self,
        name: str,
        native: Callable[..., Any],
        *,
        tolerances: dict[torch.dtype, tuple[float, float]] | None = None,
        validate: Callable[..., None] | None = None,
        sample_inputs: Callable[[torch.dtype, torch.device], Iterable[Sample]] | None = None,
        example_inputs: Callable[..., Sample] | None = None,
        compare: Compare | None = None,
        plugin: str | None = None,
    ) -> None:
        self.name = name
        self.native = native
        self.signature, hints = resolved_signature(native)
        if "return" not in hints:
            raise TypeError(f"op {name}: the native function needs a return annotation")
        self.hints = hints
        self.params: tuple[Param, ...] = tuple(
            Param(p.name, hints.get(p.name, inspect.Parameter.empty), p.default)
            for p in self.signature.parameters.values()
        )
        missing = [p.name for p in self.params if p.annotation is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"op {name}: parameters without annotation: {', '.join(missing)}")
        self.tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
        self._validate = validate
        self._sample_inputs = sample_inputs
        self._example_inputs = example_inputs
        self._compare = compare
        self.plugin = plugin
        self.impls: dict[str, Impl] = {}
        #: The generated eager dispatcher, ``ir_core.ops.<name>`` (bound by :mod:`ir_core.ops`).
        self.dispatcher: Callable[..., Any] = native
        #: ``torch.ops.ir_core.<name>`` (bound by :mod:`ir_core.ops`).
        self.torch_op: Any = None

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        """``(atol, rtol)`` for outputs of ``dtype``."""
        return self.tolerances.get(dtype, DEFAULT_TOLERANCES[torch.float32])

    def comparisons(
        self,
        actual: Sequence[torch.Tensor],
        expected: Sequence[torch.Tensor],
        args: Sequence[Any],
    ) -> list[Comparison]:
        """What ``actual`` (an impl's outputs) is judged on against ``expected`` (native's) for
        the call ``args`` (bound, all positional): the op's ``compare`` when it declares one,
        else every output within the tolerance of its dtype. Count, shapes and dtypes of the
        outputs are checked before (:func:`ir_core.testing.output_mismatches`)."""
        if self._compare is not None:
            named = {p.name: a for p, a in zip(self.params, args)}
            return list(self._compare(tuple(actual), tuple(expected), named))
        return [
            value_comparison(f"output {i}", a, e, *self.tolerance(e.dtype))
            for i, (a, e) in enumerate(zip(actual, expected))
        ]

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """All arguments positionally, defaults applied; a TypeError names the op."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"ir_core.ops.{self.name}: {exc}") from None
        bound.apply_defaults()
        return tuple(bound.arguments.values())

    def validate(self, args: Sequence[Any]) -> None:
        """Raise TypeError/ValueError naming the op and the argument for bad input.

        The generic part checks that tensor parameters hold dense tensors; the op's own
        ``validate`` checks dtypes and shapes. Runs once per dispatch key, never on a cache hit.
        """
        for p, value in zip(self.params, args):
            if not p.is_tensor:
                continue
            if not isinstance(value, torch.Tensor):
                if value is None and p.optional:
                    continue
                raise TypeError(
                    f"ir_core.ops.{self.name}: argument '{p.name}' must be a torch.Tensor"
                    f"{' or None' if p.optional else ''}, got {type(value).__name__}"
                )
            if value.layout != torch.strided:  # sparse, nested: no strides for a kernel to walk
                raise TypeError(
                    f"ir_core.ops.{self.name}: argument '{p.name}' must be a dense (strided) "
                    f"tensor, got layout {value.layout}"
                )
        if self._validate is not None:
            self._validate(*args)

    def sample_inputs(self, dtype: torch.dtype, device: str | torch.device = "cpu") -> list[Sample]:
        """Cases every impl is checked on: odd sizes, 3-D, strided rows, zero tokens, ..."""
        if self._sample_inputs is None:
            return []
        return list(self._sample_inputs(dtype, torch.device(device)))

    def example_inputs(
        self,
        num_tokens: int,
        hidden_size: int,
        dtype: torch.dtype,
        device: str | torch.device = "cpu",
    ) -> Sample:
        """One representative call of the given size, for benchmarks and ``ir-core explain``."""
        if self._example_inputs is None:
            raise NotImplementedError(f"op {self.name} declares no example inputs")
        return self._example_inputs(num_tokens, hidden_size, dtype, torch.device(device))

    def __repr__(self) -> str:
        return f"<Op {self.name} providers={list(self.impls)}>"
