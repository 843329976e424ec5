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
"""

from __future__ import annotations

import os
from typing import Any

from .. import priority

_keys: dict[tuple[priority.Scope, str], str] = {}


def _forget() -> None:
    _keys.clear()


priority.on_change(_forget)


def current_key() -> str:
    """``ir_core.priority_hash()`` for the calling context, cached per scope and env value."""
    cache_key = (priority.current_scope.get(), os.environ.get(priority.ENV_PRIORITY, ""))
    key = _keys.get(cache_key)
    if key is None:
        key = _keys[cache_key] = priority.priority_hash()
    return key


def __getattr__(name: str) -> Any:
    if name == "priority_key":
        return current_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
