"""Eager dispatch: ``ir_core.ops.<name>(...)`` picks an impl and calls it.

Each op gets one generated function with the op's own signature, ``ir_core.ops.<name>``. Its
body never changes, so a frame Dynamo compiled around it stays valid whatever eager calls come
later. Under tracing it records ``torch.ops.ir_core.<name>``: Dynamo folds
``is_dynamo_compiling()`` to True, and non-strict ``torch.export`` sets the flag behind
``torch.compiler.is_compiling()``, read directly (half the cost of calling it). Otherwise it
hands every argument, positionally, to the op's hit path.

The hit path remembers each decision under a key of everything ``supports_args`` may read: the
priority scope; the type, layout, device, dtype, shape, strides and requires_grad of every
tensor; the type and value of every other argument (``True``, ``1`` and ``1.0`` are three keys,
as are ``32`` and ``32.0``). A hit is one lookup and the kernel's call; validation, availability
checks and predicates run only on a miss. It has two implementations that decide alike:

- compiled (``ir_core._fastpath``, see :mod:`ir_core.fastpath`): the key is read through torch's
  stable C shim into an array of integers, with no Python attribute access;
- pure Python: the same key as a tuple read through torch's Python bindings (a few hundred
  nanoseconds per tensor); it runs where the extension is not loaded, and for the calls the
  extension does not key (tensor subclasses, scalar types other than None, bool, int, float,
  interned str and torch.dtype).

Why generated: a generic ``*args`` wrapper that loops over parameters costs several hundred
nanoseconds more per call; the generated body is what one would write by hand for each op. A new
token count is a miss, but a miss per shape is paid once for all layers of a model, and exact
metadata makes every validation and predicate answer exact.

A kernel that raises keeps raising -- falling back silently would hide a broken kernel -- with a
note naming the op, the provider, its plugin and how to leave it out. :func:`bind` is the
per-call-site variant for engines that call an op with the same metadata every step.

Two things sit beside the hit paths rather than on them, so that they cost nothing when unused:
a trace (:mod:`ir_core.tracing`) swaps in a third, recording, hit path while it is active
(:func:`set_recorder`); a capability requirement (``require=``) lives in the priority scope
that every key starts with, and is applied by :func:`select` on a miss.
"""

from __future__ import annotations

import itertools
import linecache
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.compiler import is_dynamo_compiling

from . import config, fastpath, priority
from .op import NATIVE, Impl, Op
from .registry import get_op, registry

#: Keys per op before the cache is dropped and rebuilt (bounds memory when shapes vary a lot).
CACHE_LIMIT = 4096

_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


@dataclass
class _HitPaths:
    """One op's two hit paths and the namespace of its generated code."""

    namespace: dict[str, Any]
    python: Callable[..., Any]
    compiled: Callable[..., Any] | None
    cache: dict[Any, tuple[Callable[..., Any], str]]
    #: The recording hit path's decisions: ``(kernel, note, record key)`` per dispatch key.
    recording_cache: dict[Any, tuple[Callable[..., Any], str, Record]]

    def hit(self) -> Callable[..., Any]:
        """The hit path calls take now: recording while a recorder is set, else the wanted one."""
        if _recorder[0] is not None:
            return self.namespace["recording_hit"]
        if _compiled_wanted and self.compiled is not None:
            return self.compiled
        return self.python


#: What a trace counts: ``(op, argument signature, provider)`` (see :func:`call_signature`).
Record = tuple[str, str, str]


_hit_paths: list[_HitPaths] = []
#: Replaced whenever decisions are forgotten: what a bound call compares to know it still holds.
_generation: list[object] = [object()]
_bound_count = itertools.count()
_compiled_wanted = True
#: The recorder of :mod:`ir_core.tracing` while a trace is active, else None (one cell, read by
#: the generated code and bound calls; see :func:`set_recorder`).
_recorder: list[Callable[[Record], None] | None] = [None]


def _forget() -> None:
    _generation[0] = object()
    for paths in _hit_paths:
        paths.cache.clear()
        paths.recording_cache.clear()
        if paths.compiled is not None:
            paths.compiled.forget()


priority.on_change(_forget)


def hit_path() -> str:
    """``"compiled"`` when eager dispatch runs ``ir_core._fastpath``, else ``"python"``."""
    return "compiled" if _compiled_wanted and fastpath.status().active else "python"


def _use_compiled(wanted: bool) -> None:
    """Switch every dispatcher between the two hit paths (tests and benchmarks run both)."""
    global _compiled_wanted
    if wanted and not fastpath.status().active:
        raise RuntimeError(f"the compiled hit path is off: {fastpath.status().reason}")
    _compiled_wanted = wanted
    for paths in _hit_paths:
        paths.namespace["hit"] = paths.hit()
    _forget()


def set_recorder(record: Callable[[Record], None] | None) -> None:
    """Route every eager call through the recording hit path, which calls ``record((op,
    signature, provider))`` before each kernel, or (None) back to the usual hit path.

    The usual hit paths have no check for this: they are swapped out, so calls cost nothing
    more when no trace is active. Bound calls rebind (their generation changes) to a kernel
    that records, and back.
    """
    _recorder[0] = record
    for paths in _hit_paths:
        paths.namespace["hit"] = paths.hit()
    _generation[0] = object()


def call_signature(op: Op, args: Sequence[Any]) -> str:
    """The arguments as a trace records them: each tensor's dtype, shape and device type, each
    other argument's value, e.g. ``x=bfloat16[4, 4096]@cpu, weight=..., epsilon=1e-06``.

    A part of the dispatch key, readable: strides, tensor type and requires_grad are left out,
    so calls differing only in those share a record unless another provider ran them.
    """
    parts = []
    for p, a in zip(op.params, args):
        if isinstance(a, torch.Tensor):
            dtype = str(a.dtype).removeprefix("torch.")
            parts.append(f"{p.name}={dtype}{list(a.shape)}@{a.device.type}")
        else:
            parts.append(f"{p.name}={a!r}")
    return ", ".join(parts)


@dataclass
class Explanation:
    """Why ``provider`` runs: the priority tried and the reason each earlier one was skipped."""

    #: The reason given for a provider that has an impl but is not in the op's priority.
    NOT_IN_PRIORITY: ClassVar[str] = "not in this op's priority"

    op: str
    provider: str
    priority: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "provider": self.provider,
            "priority": list(self.priority),
            "skipped": [{"provider": p, "reason": r} for p, r in self.skipped],
        }

    def __str__(self) -> str:
        lines = [f"{self.op} -> {self.provider}  (priority: {', '.join(self.priority)})"]
        lines += [f"  skipped {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


def anchor_index(op: Op) -> int:
    """The first non-optional tensor parameter: its type and device speak for the call."""
    for i, p in enumerate(op.params):
        if p.is_tensor and not p.optional:
            return i
    raise TypeError(f"op {op.name} has no required tensor parameter to dispatch on")


class CapabilityError(LookupError):
    """No impl of an op meets the required capabilities (``require=``), native included.

    Running native anyway would break the promise the caller asked for (batch invariance), so
    the call fails; ``explanation`` says why each provider was skipped.
    """

    def __init__(self, explanation: Explanation, required: frozenset[str]) -> None:
        self.explanation = explanation
        self.required = required
        reasons = "; ".join(
            f"{p}: {r}" for p, r in explanation.skipped if r != Explanation.NOT_IN_PRIORITY
        )
        super().__init__(
            f"ir_core: no impl of {explanation.op} has the required capabilities "
            f"{', '.join(sorted(required))} for these arguments ({reasons})"
        )


def select(
    op: Op,
    args: Sequence[Any],
    scope: priority.Scope | None = None,
    *,
    device_type: str | None = None,
) -> Explanation:
    """Walk the op's priority and return the first impl that accepts ``args``.

    An impl lacking a required capability (``set_priority(require=...)``, ``configure``) is
    skipped first; when native lacks one too, :class:`CapabilityError`. ``device_type``
    overrides the arguments' device, for explaining a device this machine lacks with stand-in
    (meta) tensors.
    """
    order = priority.resolve(op.name, scope)
    needs = priority.required(scope)
    device_type = device_type or args[anchor_index(op)].device.type
    skipped: list[tuple[str, str]] = []
    for provider in order:
        if provider == NATIVE:
            break
        impl = op.impls.get(provider)
        if impl is None:
            reason: str | None = priority.unregistered(op.name, provider)
        else:
            reason = impl.lacks(needs) or impl.rejection(device_type, args)
        if reason is None:
            return Explanation(op.name, provider, order, skipped)
        skipped.append((provider, reason))
    native_lacks = op.impls[NATIVE].lacks(needs)
    if native_lacks is not None:
        skipped.append((NATIVE, native_lacks))
    mode = config.reference()
    why = (
        f"reference mode ({mode.source}): every op runs native"
        if mode.value
        else Explanation.NOT_IN_PRIORITY
    )
    skipped += [(p, why) for p in op.impls if p not in order]
    explanation = Explanation(op.name, NATIVE, order, skipped)
    if native_lacks is not None:
        raise CapabilityError(explanation, needs)
    return explanation


def explain(op: str | Op, *args: Any, device_type: str | None = None, **kwargs: Any) -> Explanation:
    """The impl ``ir_core.ops.<op>(*args, **kwargs)`` would run here, and why.

    ``device_type`` pretends the arguments live on that device type (see :func:`select`).
    """
    target = get_op(op) if isinstance(op, str) else op
    bound = target.bind(args, kwargs)
    target.validate(bound)
    return select(target, bound, device_type=device_type)


# -- deciding a miss, and the note a failing kernel's error gets ------------------------------


def failure_note(op: Op, impl: Impl) -> str:
    """What an error raised by ``impl`` is told: which op and impl, and how to do without it."""
    if impl.provider == NATIVE:
        return f"ir_core: raised by the native impl of {op.name} (the op's own semantics)"
    others = ",".join(p for p in priority.resolve(op.name) if p != impl.provider)
    hint = f"IR_CORE_OP_PRIORITY='{op.name}={others}' (a list ending in native is the whole order)"
    if impl.plugin is None:
        where = "registered outside any plugin"
    else:
        where = f"from plugin '{impl.plugin}'"
        hint += f", or disable the plugin: IR_CORE_DISABLE_PLUGINS={impl.plugin}"
    return (
        f"ir_core: raised by provider '{impl.provider}' ({where}) running {op.name}; "
        f"to run without it: {hint}"
    )


def _annotate(exc: BaseException, note: str) -> None:
    """Add ``note`` to ``exc`` once (an error can cross two dispatches: torch op, then ours)."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not a kernel's failure
        return
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and note in notes:
        return
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps notes, its tracebacks do not print them
        exc.__notes__ = [*(notes or ()), note]


def _select_impl(op: Op, args: tuple[Any, ...]) -> Impl:
    """The miss path of both hit paths and of bound calls: validate, then select."""
    registry.ensure_loaded()
    op.validate(args)
    if type(args[anchor_index(op)]) not in _PLAIN_TENSOR_TYPES:
        # FakeTensor, FunctionalTensor, DTensor...: the native semantics is plain torch and
        # runs on all of them; vendor kernels would not. Tracing is not a hot path: no caching.
        return op.impls[NATIVE]
    return op.impls[select(op, args).provider]


def _decide(op: Op, args: tuple[Any, ...]) -> tuple[Callable[..., Any], str]:
    """``(kernel, note)``: what a hit calls, and what the kernel's error is told."""
    impl = _select_impl(op, args)
    return impl.fn, failure_note(op, impl)


def _python_miss(
    op: Op,
    cache: dict[Any, tuple[Callable[..., Any], str]],
    key_of: Callable[..., Any],
    args: tuple[Any, ...],
) -> tuple[Callable[..., Any], str]:
    """Decide, then remember under ``key_of(*args)`` (see :func:`_remember`)."""
    generation = _generation[0]
    return _remember(op, cache, key_of, args, _decide(op, args), generation)


def _remember(
    op: Op,
    cache: dict[Any, Any],
    key_of: Callable[..., Any],
    args: tuple[Any, ...],
    decision: Any,
    generation: object,
) -> Any:
    """``decision``, remembered under ``key_of(*args)`` unless some tensor is not a plain one
    or the decisions were forgotten since ``generation`` (another thread changed priorities)."""
    plain = all(
        a is None or type(a) in _PLAIN_TENSOR_TYPES for a, p in zip(args, op.params) if p.is_tensor
    )
    if plain and generation is _generation[0]:
        try:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[key_of(*args)] = decision
        except Exception:  # an argument that cannot be part of a key: decide again next time
            pass
    return decision


def _recording_miss(
    op: Op,
    cache: dict[Any, tuple[Callable[..., Any], str, Record]],
    key_of: Callable[..., Any],
    args: tuple[Any, ...],
) -> tuple[Callable[..., Any], str, Record]:
    """The miss of the recording hit path: as :func:`_python_miss`, with the record key."""
    generation = _generation[0]
    impl = _select_impl(op, args)
    decision = (impl.fn, failure_note(op, impl), (op.name, call_signature(op, args), impl.provider))
    return _remember(op, cache, key_of, args, decision, generation)


# -- the generated code ------------------------------------------------------------------------


def _key_source(op: Op) -> str:
    """The pure-Python key: the same facts as the compiled one, as a tuple."""
    parts = ["scope()"]
    for p in op.params:
        if p.is_tensor:
            n = p.name
            # no layout: stride() raises for every layout but strided, so none of them is keyed
            meta = f"(type({n}), {n}.device, {n}.dtype, {n}.shape, {n}.stride(), {n}.requires_grad)"
            parts.append(f"None if {n} is None else {meta}" if p.optional else meta)
        else:
            parts += [f"type({p.name})", p.name]
    return f"({', '.join(parts)},)"


def _kinds(op: Op) -> str:
    return "".join(("o" if p.optional else "t") if p.is_tensor else "s" for p in op.params)


def _finish(fn: Callable[..., Any], op: Op, defaults: tuple[Any, ...] | None) -> None:
    fn.__code__ = fn.__code__.replace(co_name=op.name)  # tracebacks show the op's name
    fn.__defaults__ = defaults
    fn.__name__ = fn.__qualname__ = op.name
    fn.__module__ = "ir_core.ops"


def _exec(source: str, filename: str, namespace: dict[str, Any]) -> None:
    # as attrs does for the classes it generates: mtime None keeps checkcache() from dropping it
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)


def _defaults(op: Op) -> tuple[Any, ...] | None:
    found = tuple(p.default for p in op.signature.parameters.values() if p.default is not p.empty)
    return found or None


_TRACED = """
def traced({call}):
    if not guard.priority_key:  # makes Dynamo guard on the priority: see ir_core.priority
        raise RuntimeError("ir_core: no priority key")
    return op.torch_op({call})
"""


def make_dispatcher(op: Op) -> Callable[..., Any]:
    """Generate ``ir_core.ops.<op.name>`` and its two hit paths; see the module docstring.

    What Dynamo traces reads ``ir_core.priority.priority_key``, so a compiled graph is guarded
    on the priority it was lowered under and recompiles when it changes. The generated source
    is registered with :mod:`linecache`, so tracebacks and pdb show its lines.
    """
    call = ", ".join(p.name for p in op.params)
    source = f"""
def dispatch({call}):
    if is_dynamo_compiling() or compiler._is_compiling_flag:  # Dynamo, torch.export
        return traced({call})
    return hit({call})
{_TRACED.format(call=call)}
def python_hit({call}):
    try:
        kernel, note = cache[{_key_source(op)}]
    except Exception:  # a miss, or an argument that cannot be part of a key
        kernel, note = miss(op, cache, key_of, ({call},))
    try:
        return kernel({call})
    except Exception as exc:
        annotate(exc, note)
        raise

def recording_hit({call}):
    try:
        kernel, note, record = recording_cache[{_key_source(op)}]
    except Exception:
        kernel, note, record = recording_miss(op, recording_cache, key_of, ({call},))
    recorder = recorders[0]
    if recorder is not None:  # None: the trace ended while this call was on its way
        recorder(record)
    try:
        return kernel({call})
    except Exception as exc:
        annotate(exc, note)
        raise

def key_of({call}):
    return {_key_source(op)}

def resolve({call}):
    return decide(op, ({call},))
"""
    cache: dict[Any, tuple[Callable[..., Any], str]] = {}
    recording_cache: dict[Any, tuple[Callable[..., Any], str, Record]] = {}
    namespace: dict[str, Any] = {
        "is_dynamo_compiling": is_dynamo_compiling,
        "compiler": torch.compiler,
        "op": op,
        "cache": cache,
        "recording_cache": recording_cache,
        "recording_miss": _recording_miss,
        "recorders": _recorder,
        "scope": priority.current_scope.get,
        "miss": _python_miss,
        "decide": _decide,
        "annotate": _annotate,
        "guard": priority,
    }
    _exec(source, f"<ir_core.ops.{op.name}>", namespace)
    defaults = _defaults(op)
    for name in ("dispatch", "traced", "python_hit", "recording_hit"):
        _finish(namespace[name], op, defaults)
    compiled = fastpath.make_dispatcher(
        _kinds(op),
        priority.current_scope,
        namespace["resolve"],
        namespace["python_hit"],
        _annotate,
        CACHE_LIMIT,
    )
    paths = _HitPaths(namespace, namespace["python_hit"], compiled, cache, recording_cache)
    namespace["hit"] = paths.hit()
    _hit_paths.append(paths)
    dispatcher = namespace["dispatch"]
    dispatcher.__doc__ = op.native.__doc__
    dispatcher.__annotations__ = dict(op.hints)
    dispatcher.__wrapped__ = op.native  # so inspect.signature shows the op's signature
    return dispatcher


# -- bound call sites --------------------------------------------------------------------------


def _op_of(op: str | Op | Callable[..., Any]) -> Op:
    if isinstance(op, str):
        return get_op(op)
    if isinstance(op, Op):
        return op
    for paths in _hit_paths:
        if paths.namespace["dispatch"] is op:
            return paths.namespace["op"]
    raise TypeError(f"not an op, an op's name or ir_core.ops.<name>: {op!r}")


def bind(op: str | Op | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """The impl dispatch selects for these example arguments, bound to one call site.

    ``rms = ir_core.bind("rms_norm", x, weight, 1e-6)`` (the op by name, ``Op`` or
    ``ir_core.ops.<name>``) returns a function with the op's signature that calls the selected
    kernel after a check of a few tens of nanoseconds: that no priority, plugin or impl changed
    since it was bound, and that it runs under the same ``set_priority`` scope. When the check
    fails it selects again, for the arguments of that call, and binds to the new choice.
    ``rms.kernel`` is the kernel itself (no check at all), ``rms.provider`` its provider,
    ``rms.matches(*args, **kwargs)`` whether a call's metadata is the bound one, for assertions
    in tests and debug builds.

    A bound call runs exactly what ``ir_core.ops.<op>`` would as long as its arguments have the
    metadata of those it was bound with -- for every tensor the same type, layout, device,
    dtype, shape, strides and requires_grad; every other argument equal and of the same type.
    That is the caller's promise and is not checked (``matches`` checks it): call
    ``ir_core.ops.<op>`` where it changes from call to call (a token count that varies). What
    the check covers: ``set_priority``, ``configure``, plugins loaded or removed, impls
    registered. ``IR_CORE_OP_PRIORITY`` edited after the first dispatch is seen, as by
    dispatch, when something else changes. Under ``torch.compile`` a bound call records the IR
    op, as ``ir_core.ops.<op>`` does. While an ``ir_core.trace()`` is active a bound call is
    counted, under the signature of the arguments it was bound for (it rebinds when a trace
    starts and when the last one ends).
    """
    target = _op_of(op)
    example = target.bind(args, kwargs)
    call = ", ".join(p.name for p in target.params)
    source = f"""
def bound({call}):
    if is_dynamo_compiling() or compiler._is_compiling_flag:
        return traced({call})
    if token is generation[0] and scope() is bound_scope:
        try:
            return kernel({call})
        except Exception as exc:
            annotate(exc, note)
            raise
    return rebind(({call},))({call})
{_TRACED.format(call=call)}"""
    key_of = next(p.namespace["key_of"] for p in _hit_paths if p.namespace["op"] is target)
    namespace: dict[str, Any] = {
        "is_dynamo_compiling": is_dynamo_compiling,
        "compiler": torch.compiler,
        "op": target,
        "generation": _generation,
        "scope": priority.current_scope.get,
        "annotate": _annotate,
        "guard": priority,
    }
    _exec(source, f"<ir_core.bind {target.name} #{next(_bound_count)}>", namespace)
    bound = namespace["bound"]
    defaults = _defaults(target)
    for name in ("bound", "traced"):
        _finish(namespace[name], target, defaults)

    def rebind(call_args: tuple[Any, ...]) -> Callable[..., Any]:
        generation = _generation[0]
        impl = _select_impl(target, call_args)
        note = failure_note(target, impl)
        try:
            key = key_of(*call_args)
        except Exception:  # no exact key (e.g. symbolic shapes): never matches
            key = None
        kernel = impl.fn
        recorder = _recorder[0]
        if recorder is not None:  # a trace is active: the call site records, until it ends
            kernel = _recording(
                impl.fn, recorder, (target.name, call_signature(target, call_args), impl.provider)
            )
        namespace.update(
            kernel=kernel, note=note, token=generation, bound_scope=priority.current_scope.get()
        )
        bound.kernel, bound.provider, bound.key = impl.fn, impl.provider, key
        return _annotated(kernel, note)

    def matches(*call_args: Any, **call_kwargs: Any) -> bool:
        try:
            return key_of(*target.bind(call_args, call_kwargs)) == bound.key
        except Exception:  # not even the op's arguments
            return False

    namespace["rebind"] = rebind
    bound.op, bound.matches = target.name, matches
    bound.__doc__ = target.native.__doc__
    bound.__wrapped__ = target.native
    rebind(example)
    return bound


def _recording(
    kernel: Callable[..., Any], recorder: Callable[[Record], None], record: Record
) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        recorder(record)
        return kernel(*args)

    return call


def _annotated(kernel: Callable[..., Any], note: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return kernel(*args)
        except Exception as exc:
            _annotate(exc, note)
            raise

    return call
