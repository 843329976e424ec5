"""Which providers an op tries, in what order, and where that order comes from.

Sources, strongest first (docs/contract.md, "Priorities"): ``set_priority`` (a contextvar, so
thread- and task-local) > ``configure(priority=...)`` > ``IR_CORE_OP_PRIORITY`` > the config
file's ``priority`` table (:mod:`ir_core.config`) > the merged ``platform_priority`` hooks >
``native``. Reference mode (``IR_CORE_REFERENCE=1``, ``configure(reference=True)``, the file's
``reference``) overrides them all: every op resolves to ``native`` alone. The strongest user
source that names an op gives its leading providers; plugin defaults follow without
duplicates; ``native`` is always the last resort. The plugin defaults reach this module through
:func:`set_plugin_defaults`, which the plugin layer calls: this module never imports it.

The compile guard lives here too (:data:`priority_key`): the key a compiled graph is guarded
on, so that a graph lowered under one priority is never run under another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from . import config
from .digest import source_digest
from .op import NATIVE, capability_tags
from .registry import registry

ENV_PRIORITY = config.ENV_PRIORITY

PriorityMap = dict[str, tuple[str, ...]]


class PriorityError(ValueError):
    """A priority names an op or provider nobody registered."""


class Scope:
    """One ``set_priority`` layer. Part of every dispatch cache key, so it is hashed by identity;
    equal overrides and requirements share one Scope so that re-entering the same block reuses
    cached decisions. ``require`` holds the capabilities the block requires (the process-wide
    requirement, :func:`required`, adds to it)."""

    __slots__ = ("__weakref__", "overrides", "require")

    def __init__(self, overrides: PriorityMap, require: frozenset[str] = frozenset()) -> None:
        self.overrides = overrides
        self.require = require

    def __repr__(self) -> str:
        return f"<priority scope {self.overrides} require={sorted(self.require)}>"


GLOBAL_SCOPE = Scope({})
current_scope: ContextVar[Scope] = ContextVar("ir_core_priority_scope", default=GLOBAL_SCOPE)

_scopes: dict[tuple[tuple[tuple[str, tuple[str, ...]], ...], frozenset[str]], Scope] = {}
_configured: PriorityMap = {}
_resolved: dict[tuple[Scope, str], tuple[str, ...]] = {}
_env_cache: tuple[str, PriorityMap] | None = None
_file_cache: tuple[config.ConfigFile, PriorityMap] | None = None
#: The env vars resolution depends on, as last seen: an edit means resolving again.
_seen_env: tuple[str, ...] = ("", "", "")
_listeners: list[Callable[[], None]] = []
_warned: set[str] = set()
logger = logging.getLogger("ir_core")


def _nobody_knows(provider: str, op: str | None = None) -> str | None:
    return None


#: The plugins' merged ``platform_priority`` answers for the current platform, and why a
#: provider has no impl (``"quarantined: ..."``, ``"clash: ..."``, or None when nobody knows
#: the name): installed by the plugin layer.
_plugin_defaults: Callable[[], PriorityMap] = dict
_absent: Callable[[str, str | None], str | None] = _nobody_knows


def set_plugin_defaults(
    defaults: Callable[[], PriorityMap], absent: Callable[[str, str | None], str | None]
) -> None:
    """Install where plugin defaults come from: ``defaults()`` is the plugins' merged order per
    op for the current platform, ``absent(provider, op)`` why a provider has no impl of ``op``
    (its plugin was quarantined, or it clashes), or None."""
    global _plugin_defaults, _absent
    _plugin_defaults, _absent = defaults, absent
    changed()


def unregistered(op: str, provider: str) -> str:
    """Why ``provider``, named in ``op``'s priority, has no impl of it (dispatch's reason)."""
    return _absent(provider, op) or f"no {provider} impl registered for this op"


# -- parsing and validation ------------------------------------------------------------------


def parse(text: str) -> PriorityMap:
    """Parse ``"rms_norm=oink,triton;fused_add_rms_norm=aiter"`` or the same as JSON."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PriorityError(f"{ENV_PRIORITY}: invalid JSON: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(p, str) for p in v) for v in data.values()
        ):
            raise PriorityError(f"{ENV_PRIORITY}: JSON must map op names to lists of providers")
        return {op: tuple(providers) for op, providers in data.items()}
    result: PriorityMap = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        op, sep, providers = entry.partition("=")
        if not sep or not op.strip():
            raise PriorityError(
                f"{ENV_PRIORITY}: expected 'op=provider,provider;...', got {entry!r}"
            )
        result[op.strip()] = tuple(p.strip() for p in providers.split(",") if p.strip())
    return result


def normalize(mapping: Mapping[str, Sequence[str] | str], *, source: str) -> PriorityMap:
    """Check op and provider names against the registry (plugins loaded first)."""
    registry.ensure_loaded()
    known_ops = {op.name for op in registry.ops()}
    known_providers = set(registry.providers())
    result: PriorityMap = {}
    for op, providers in mapping.items():
        if op not in known_ops:
            raise PriorityError(
                f"{source}: unknown op {op!r}; known ops: {', '.join(sorted(known_ops))}"
            )
        if isinstance(providers, str):
            providers = [p.strip() for p in providers.split(",") if p.strip()]
        for provider in (p for p in providers if p not in known_providers):
            reason = _absent(provider, op)
            if reason is None:
                raise PriorityError(
                    f"{source}: unknown provider {provider!r} for op {op!r}; known providers: "
                    f"{', '.join(sorted(known_providers))}"
                )
            # one broken wheel must not take the engine down: skipped, said once
            _warn_once(f"{source}: provider {provider!r} for op {op!r} is skipped: {reason}")
        result[op] = tuple(dict.fromkeys(providers))
    return result


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("ir_core: %s", message)


# -- the user-facing sources -----------------------------------------------------------------


def _require(names: Iterable[str] | None, source: str) -> frozenset[str]:
    try:
        return capability_tags(names or (), what=source)
    except ValueError as exc:
        raise PriorityError(str(exc)) from None


@contextmanager
def set_priority(
    mapping: Mapping[str, Sequence[str]] | None = None,
    /,
    *,
    require: Iterable[str] | None = None,
    **ops: Sequence[str],
) -> Iterator[None]:
    """Use these provider orders inside the block, in this thread or task only.

    ``with ir_core.set_priority(rms_norm=["triton", "native"]): ...``. Nested blocks override
    the ops they name and inherit the rest. ``require={"batch_invariant"}`` skips every impl
    lacking one of these capabilities, for every op, inside the block; nested blocks add to
    the outer block's requirement (a requirement is never dropped inside its block).
    """
    overrides = normalize({**(mapping or {}), **ops}, source="set_priority")
    outer = current_scope.get()
    merged = {**outer.overrides, **overrides}
    needs = outer.require | _require(require, "set_priority(require=...)")
    key = (tuple(sorted(merged.items())), needs)
    scope = _scopes.get(key)
    if scope is None:
        scope = _scopes.setdefault(key, Scope(merged, needs))
    token = current_scope.set(scope)
    try:
        yield
    finally:
        current_scope.reset(token)


_UNSET: Any = object()


def configure(
    priority: Mapping[str, Sequence[str]] | str | None = _UNSET,
    *,
    reference: bool | None = _UNSET,
    require: Iterable[str] | None = _UNSET,
) -> None:
    """Set process-wide settings (weaker than ``set_priority``, stronger than env and file).

    ``priority`` is a mapping or a string in the ``IR_CORE_OP_PRIORITY`` format;
    ``reference=True`` runs ``native`` for every op, eager and compiled; ``require`` the
    capabilities every impl must have (replacing the config file's ``require``; an empty
    collection requires nothing). Only the settings named change; ``None`` clears what an
    earlier call set, and ``configure()`` clears all three. Everything is checked before
    anything changes.
    """
    global _configured
    if priority is _UNSET and reference is _UNSET and require is _UNSET:
        priority = reference = require = None
    if reference not in (_UNSET, None) and not isinstance(reference, bool):
        raise TypeError(f"configure: reference must be True, False or None, got {reference!r}")
    if require not in (_UNSET, None):
        require = tuple(sorted(_require(require, "configure(require=...)")))
    if isinstance(priority, str):
        priority = parse(priority)
    if priority is not _UNSET:
        priority = normalize(priority, source="configure") if priority else {}
    if reference is not _UNSET:
        config.set_configured("reference", reference)
    if require is not _UNSET:
        config.set_configured("require", require)
    if priority is not _UNSET:
        _configured = priority
    changed()


def required(scope: Scope | None = None) -> frozenset[str]:
    """The capabilities every impl must have under ``scope`` (default: the caller's)."""
    scope = scope or current_scope.get()
    process = config.lookup("require")
    return scope.require | _require(process.value, f"require ({process.source})")


def _env_priorities() -> PriorityMap:
    """``IR_CORE_OP_PRIORITY``, parsed when priorities are resolved (set it before the first
    dispatch: decisions already cached are not revisited until something else changes)."""
    global _env_cache
    text = os.environ.get(ENV_PRIORITY, "")
    if _env_cache is None or _env_cache[0] != text:
        _env_cache = None
        _env_cache = (text, normalize(parse(text), source=ENV_PRIORITY))
    return _env_cache[1]


def _file_priorities() -> PriorityMap:
    """The config file's ``priority`` table, checked against the registry, each op's errors
    naming the file and the op's line."""
    global _file_cache
    found = config.config_file()
    if _file_cache is None or _file_cache[0] is not found:
        table = found.values.get("priority", {})
        checked: PriorityMap = {}
        for op, providers in table.items():
            where = found.where(f"priority.{op}")
            checked.update(normalize({op: providers}, source=f"{where}: priority"))
        _file_cache = (found, checked)
    return _file_cache[1]


def _watch_env() -> None:
    """Resolve again when an env var resolution reads was edited since it was last read."""
    global _seen_env
    seen = tuple(os.environ.get(name, "") for name in _WATCHED)
    if seen != _seen_env:
        _seen_env = seen
        changed()


_WATCHED = (ENV_PRIORITY, config.ENV_REFERENCE, config.ENV_CONFIG)


# -- resolution ------------------------------------------------------------------------------


def resolve(op: str, scope: Scope | None = None) -> tuple[str, ...]:
    """The providers ``op`` tries, in order, ending with ``native``."""
    scope = scope or current_scope.get()
    _watch_env()  # the env was edited since we read it: nothing resolved from it stands
    cached = _resolved.get((scope, op))
    if cached is not None:
        return cached
    registry.ensure_loaded()
    if config.reference().value:
        _resolved[(scope, op)] = (NATIVE,)
        return (NATIVE,)
    user: tuple[str, ...] = ()
    for source in (scope.overrides, _configured, _env_priorities(), _file_priorities()):
        if op in source:
            user = source[op]
            break
    defaults = _plugin_defaults().get(op, ())
    order = tuple(dict.fromkeys((*user, *defaults, NATIVE)))
    if NATIVE in user:  # the user put native at a place of their choosing: nothing after it
        order = order[: order.index(NATIVE) + 1]
    _resolved[(scope, op)] = order
    return order


def origin(op: str, scope: Scope | None = None) -> str:
    """Where :func:`resolve`'s order for ``op`` comes from: ``"set_priority"``,
    ``"configure"``, ``"env IR_CORE_OP_PRIORITY"``, ``"file PATH:LINE"``, ``"plugin
    defaults"``, ``"default"`` (native alone), or ``"reference mode (<its source>)"``."""
    scope = scope or current_scope.get()
    registry.ensure_loaded()
    mode = config.reference()
    if mode.value:
        return f"reference mode ({mode.source})"
    named = (
        ("set_priority", scope.overrides),
        ("configure", _configured),
        (f"env {ENV_PRIORITY}", _env_priorities()),
    )
    for source, table in named:
        if op in table:
            return source
    if op in _file_priorities():
        return f"file {config.config_file().where(f'priority.{op}')}"
    return "plugin defaults" if _plugin_defaults().get(op) else "default"


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever priorities may resolve differently."""
    _listeners.append(listener)


def changed() -> None:
    """Forget resolved priorities and everything cached from them."""
    _resolved.clear()
    _guard_keys.clear()
    for listener in _listeners:
        listener()


registry.on_change(changed)  # new impls or ops: resolve again
config.on_change(changed)  # the config file was read again, or configure() set a setting


def priority_hash() -> str:
    """Digest of every op's resolved priority and the source of each impl it can select.

    Used in compile-cache keys: a graph compiled under one priority, requirement
    (``require=``) or version of a kernel is never reused under another.
    """
    registry.ensure_loaded()
    digest = hashlib.sha256()
    if config.reference().value:  # native everywhere: never the graph of another mode
        digest.update(b"reference mode;")
    needs = required()
    if needs:  # only when set: the hash of a process that requires nothing stays what it was
        digest.update(f"require:{','.join(sorted(needs))};".encode())
    for op in sorted(registry.ops(), key=lambda o: o.name):
        for provider in resolve(op.name):
            impl = op.impls.get(provider)
            if impl is None or not impl.status()[0]:
                continue
            digest.update(f"{op.name}:{provider}:".encode())
            digest.update(source_digest(impl.fn).encode())
    return digest.hexdigest()[:32]


# -- the compile guard -----------------------------------------------------------------------
#
# Lowering bakes the selected impls into the compiled code, but Dynamo reuses a compiled frame
# whenever its guards pass, and by default nothing it guards on changes when ``set_priority`` or
# ``configure`` does. So the code Dynamo traces for an IR op call (see ``ir_core.dispatch``)
# reads ``priority.priority_key`` and branches on it: Dynamo then guards on its value and, on a
# later call under another priority, the guard fails and the frame is compiled again (a priority
# seen before finds its earlier graph among the cached ones).
#
# ``priority_key`` is not stored: this module's ``__getattr__`` computes it on every read, in
# the caller's context, because ``set_priority`` is a contextvar. Dynamo's guard re-reads the
# attribute on every call of a compiled frame, so the read is cached per scope and reset
# whenever priorities may change; a hit costs a dict lookup. ``IR_CORE_OP_PRIORITY`` is read
# when priorities are resolved, as for eager dispatch: set it before compiling.

_guard_keys: dict[Scope, str] = {}
_current_scope = current_scope.get


def guard_key() -> str:
    """:func:`priority_hash` for the calling context, cached per priority scope."""
    scope = _current_scope()
    key = _guard_keys.get(scope)
    if key is None:
        key = _guard_keys[scope] = priority_hash()
    return key


def __getattr__(name: str) -> Any:
    # One Python frame and C calls only: Dynamo runs this on every call of a compiled frame,
    # and each Python frame executed inside its guard check costs microseconds.
    if name == "priority_key":
        key = _guard_keys.get(_current_scope())
        return key if key is not None else guard_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
