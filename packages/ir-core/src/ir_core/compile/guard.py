"""The Dynamo guard that ties a compiled graph to the priority it was lowered under.

Lowering bakes the selected impls into the compiled code, but Dynamo reuses a compiled frame
whenever its guards pass, and by default nothing it guards on changes when
``ir_core.set_priority`` or ``ir_core.configure`` does. So the code Dynamo traces for an IR op
call reads ``guard.priority_key`` and branches on it: Dynamo then guards on its value and, on a
later call under another priority, the guard fails and the frame is compiled again (a priority
seen before finds its earlier graph among the cached ones).

``priority_key`` is not stored: this module's ``__getattr__`` computes it on every read, in the
caller's context, because ``set_priority`` is a contextvar (thread- and task-local). Dynamo's
guard re-reads the attribute on every call of a compiled frame, so the read is cached per
priority scope and reset whenever priorities may change; a hit costs a dict lookup.
``IR_CORE_OP_PRIORITY`` is read when priorities are resolved, as for eager dispatch: set it
before compiling (editing it later is seen once something else changes the priorities).
"""

from __future__ import annotations

from typing import Any

from .. import priority

_keys: dict[priority.Scope, str] = {}
_current_scope = priority.current_scope.get


def _forget() -> None:
    _keys.clear()


priority.on_change(_forget)


def current_key() -> str:
    """``ir_core.priority_hash()`` for the calling context, cached per priority scope."""
    scope = _current_scope()
    key = _keys.get(scope)
    if key is None:
        key = _keys[scope] = priority.priority_hash()
    return key


def __getattr__(name: str) -> Any:
    # One Python frame and C calls only: Dynamo runs this on every call of a compiled frame,
    # and each Python frame executed inside its guard check costs microseconds.
    if name == "priority_key":
        key = _keys.get(_current_scope())
        return key if key is not None else current_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
