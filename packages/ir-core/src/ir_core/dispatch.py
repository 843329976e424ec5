"""Eager dispatch: ``ir_core.ops.<name>(...)`` picks an impl and calls it.

The hot path is one generated function per op with the op's own signature. A decision is
remembered under a key of what is cheap to read (the priority scope, the first tensor's shape,
which optional tensors are None, every non-tensor argument) together with a matcher that checks
everything else predicates may read -- the type, device, dtype, shape, strides and
requires_grad of every tensor -- in one call into C++ (torch's ``TensorGuards``, the check
Dynamo's guards were built on). A hit costs one dict lookup and that check; validation,
availability checks and ``supports_args`` run only on a miss.

Why this split: reading a tensor's metadata through torch's Python bindings costs 50-200 ns a
field here, so a key holding every field of two tensors costs about as much as the whole budget
(1 µs); the C++ check reads them all in about 150 ns. The first tensor's shape stays in the key
so that calls alternating between shapes (hidden-state norms, then q/k norms) each find their
own entry instead of evicting each other. Where ``TensorGuards`` is missing (a future torch) or
refuses a tensor, the same metadata is compared in Python: slower, equally exact.

Why generated: a generic ``*args`` wrapper that loops over parameters costs several hundred
nanoseconds more per call; the generated body is what one would write by hand for each op.
A new token count is a miss, but a miss per shape is paid once for all layers of a model, and
exact metadata makes every validation and predicate answer exact.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.compiler import is_compiling

from . import priority
from .op import NATIVE, Op
from .registry import get_op, registry

try:  # C++ metadata checks; absent or changed in some future torch, then Python compares
    from torch._C._dynamo.guards import TensorGuards as _TensorGuards
except ImportError:  # pragma: no cover - every torch ir-core supports has it
    _TensorGuards = None

#: Keys per op before the cache is dropped and rebuilt (bounds memory when shapes vary a lot).
CACHE_LIMIT = 4096
#: Decisions kept under one key (metadata the key leaves out: dtypes, strides, devices...).
ENTRIES_PER_KEY = 8

_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)

#: One remembered decision: a matcher taking the op's tensor arguments, and the kernel.
Entry = tuple[Callable[..., bool], Callable[..., Any]]
_caches: list[dict[Any, tuple[Entry, ...]]] = []


def _clear_caches() -> None:
    for cache in _caches:
        cache.clear()


priority.on_change(_clear_caches)


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


def select(
    op: Op,
    args: Sequence[Any],
    scope: priority.Scope | None = None,
    *,
    device_type: str | None = None,
) -> Explanation:
    """Walk the op's priority and return the first impl that accepts ``args``.

    ``device_type`` overrides the arguments' device, for explaining a device this machine lacks
    with stand-in (meta) tensors.
    """
    order = priority.resolve(op.name, scope)
    device_type = device_type or args[anchor_index(op)].device.type
    skipped: list[tuple[str, str]] = []
    for provider in order:
        if provider == NATIVE:
            break
        impl = op.impls.get(provider)
        if impl is None:
            reason: str | None = priority.unregistered(op.name, provider)
        else:
            reason = impl.rejection(device_type, args)
        if reason is None:
            return Explanation(op.name, provider, order, skipped)
        skipped.append((provider, reason))
    skipped += [(p, Explanation.NOT_IN_PRIORITY) for p in op.impls if p not in order]
    return Explanation(op.name, NATIVE, order, skipped)


def explain(op: str | Op, *args: Any, device_type: str | None = None, **kwargs: Any) -> Explanation:
    """The impl ``ir_core.ops.<op>(*args, **kwargs)`` would run here, and why.

    ``device_type`` pretends the arguments live on that device type (see :func:`select`).
    """
    target = get_op(op) if isinstance(op, str) else op
    bound = target.bind(args, kwargs)
    target.validate(bound)
    return select(target, bound, device_type=device_type)


def _resolve(
    op: Op,
    cache: dict[Any, tuple[Entry, ...]],
    key_of: Callable[..., Any],
    args: tuple[Any, ...],
) -> Callable[..., Any]:
    """The miss path: validate, select, remember under ``key_of(*args)`` with a matcher."""
    registry.ensure_loaded()
    if op.dispatcher in _pending_fast_paths and "torch._dynamo" in sys.modules:
        _enable_fast_path(op.dispatcher)
    op.validate(args)
    if type(args[anchor_index(op)]) not in _PLAIN_TENSOR_TYPES:
        # FakeTensor, FunctionalTensor, DTensor...: the native semantics is plain torch and
        # runs on all of them; vendor kernels would not. Tracing is not a hot path: no caching.
        return op.impls[NATIVE].fn
    fn = op.impls[select(op, args).provider].fn
    try:
        key = key_of(*args)
        kept = cache.get(key, ())[-(ENTRIES_PER_KEY - 1) :]
    except Exception:  # an argument that cannot be part of a key: decide again next time
        return fn
    matches = _matcher([args[i] for i, p in enumerate(op.params) if p.is_tensor])
    if matches is None:
        return fn
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = (*kept, (matches, fn))
    return fn


def _matcher(tensors: list[torch.Tensor | None]) -> Callable[..., bool] | None:
    """A check that the tensors of a later call have the metadata these have; None if their
    metadata cannot be read (sparse layouts: such calls are decided every time).

    It takes every tensor parameter in order; the key already fixes which optional ones are
    None, so only the others are compared.
    """
    present = [t for t in tensors if t is not None]
    check = _cpp_check(present) or _python_check(present)
    if check is None or len(present) == len(tensors):
        return check
    keep = [i for i, t in enumerate(tensors) if t is not None]
    return lambda *given: check(*[given[i] for i in keep])


def _cpp_check(tensors: list[torch.Tensor]) -> Callable[..., bool] | None:
    """torch's C++ check of type, dispatch keys (device; inference mode), dtype, shape,
    strides and requires_grad; it returns False for anything that is not a tensor."""
    if _TensorGuards is None:
        return None
    try:
        return _TensorGuards(
            *tensors,
            dynamic_dims_sizes=[list(t.shape) for t in tensors],
            dynamic_dims_strides=[list(t.stride()) for t in tensors],
        ).check
    except Exception:  # a layout it refuses (sparse, nested...)
        return None


def _python_check(tensors: list[torch.Tensor]) -> Callable[..., bool] | None:
    """The same comparison in Python: about a microsecond slower for two tensors."""
    try:
        expected = [_layout(t) for t in tensors]
    except Exception:  # no strides to read
        return None

    def check(*given: torch.Tensor) -> bool:
        try:
            return [_layout(t) for t in given] == expected
        except Exception:  # not a tensor: not a match
            return False

    return check


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    return (type(t), t.device, t.dtype, t.shape, t.stride(), t.requires_grad)


def make_dispatcher(op: Op) -> Callable[..., Any]:
    """Generate ``ir_core.ops.<op.name>``; see the module docstring for why.

    Two bodies are generated. The first checks ``is_compiling()`` on every call so that Dynamo,
    tracing a model, records ``torch.ops.ir_core.<name>`` instead of the eager machinery. Once
    Dynamo is imported, a miss registers that behaviour with Dynamo itself
    (``torch.compiler.substitute_in_graph``) and swaps in the second body, which reads the flag
    behind ``is_compiling()`` directly (set by non-strict ``torch.export``) instead of calling
    it: the dispatcher object stays the same, so references users hold keep working. A frame
    Dynamo compiled before the swap recompiles once (Dynamo guards on the code object).
    What Dynamo traces reads ``ir_core.priority.priority_key``, so a compiled graph is
    guarded on the priority it was lowered under and recompiles when it changes. The generated
    source is registered with :mod:`linecache`, so tracebacks and pdb show its lines.
    """
    call = ", ".join(p.name for p in op.params)
    tensors = ", ".join(p.name for p in op.params if p.is_tensor)
    key_parts = ["scope()", f"{op.params[anchor_index(op)].name}.shape"]
    for p in op.params:
        if p.is_tensor and p.optional:
            key_parts.append(f"{p.name} is None")
        elif not p.is_tensor:
            key_parts.append(p.name)
    key = f"({', '.join(key_parts)},)"
    lookup = f"""
    try:
        entries = cache[{key}]
    except Exception:  # a miss, or an argument that cannot be part of a key
        entries = ()
    for matches, fn in entries:
        if matches({tensors}):
            return fn({call})
    return resolve(op, cache, key_of, ({call},))({call})
"""
    source = f"""
def guarded({call}):
    if is_compiling():
        return traced({call})
{lookup}

def fast({call}):
    if compiler._is_compiling_flag:  # non-strict torch.export: record the op, as Dynamo does
        return traced({call})
{lookup}

def traced({call}):
    if not guard.priority_key:  # makes Dynamo guard on the priority: see ir_core.priority
        raise RuntimeError("ir_core: no priority key")
    return op.torch_op({call})

def key_of({call}):
    return {key}
"""
    cache: dict[Any, tuple[Entry, ...]] = {}
    _caches.append(cache)
    namespace: dict[str, Any] = {
        "is_compiling": is_compiling,
        "compiler": torch.compiler,
        "op": op,
        "cache": cache,
        "scope": priority.current_scope.get,
        "resolve": _resolve,
        "guard": priority,
    }
    filename = f"<ir_core.ops.{op.name}>"
    # as attrs does for the classes it generates: mtime None keeps checkcache() from dropping it
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)
    defaults = tuple(
        p.default for p in op.signature.parameters.values() if p.default is not p.empty
    )
    for fn in (namespace["guarded"], namespace["fast"], namespace["traced"]):
        fn.__code__ = fn.__code__.replace(co_name=op.name)  # tracebacks show the op's name
        fn.__defaults__ = defaults or None
        fn.__name__ = fn.__qualname__ = op.name
        fn.__module__ = "ir_core.ops"
    dispatcher = namespace["guarded"]
    dispatcher.__doc__ = op.native.__doc__
    dispatcher.__annotations__ = dict(op.hints)
    dispatcher.__wrapped__ = op.native  # so inspect.signature shows the op's signature
    _pending_fast_paths[dispatcher] = (namespace["fast"].__code__, namespace["traced"])
    return dispatcher


#: Dispatchers still running their guarded body: dispatcher -> (fast body, Dynamo polyfill).
_pending_fast_paths: dict[Callable[..., Any], tuple[Any, Callable[..., Any]]] = {}


def _enable_fast_path(dispatcher: Callable[..., Any]) -> None:
    """Hand compile-time tracing to Dynamo and drop the per-call ``is_compiling`` check."""
    fast_code, traced = _pending_fast_paths.pop(dispatcher)
    try:
        torch.compiler.substitute_in_graph(dispatcher, skip_signature_check=True)(traced)
    except Exception:  # a torch without this hook keeps the guarded body, which is correct
        return
    dispatcher.__code__ = fast_code
