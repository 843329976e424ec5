"""``ir_core.ops.<name>``: the calls engines make.

Each attribute is the op's generated eager dispatcher (see :mod:`ir_core.dispatch`). Ops that
plugins declare appear here once plugins are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .discovery import load_plugins, registry

rms_norm: Callable[..., Any] = registry.get_op("rms_norm").dispatcher
fused_add_rms_norm: Callable[..., Any] = registry.get_op("fused_add_rms_norm").dispatcher
dual_rms_norm: Callable[..., Any] = registry.get_op("dual_rms_norm").dispatcher


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    load_plugins()
    try:
        return registry.get_op(name).dispatcher
    except KeyError as exc:
        raise AttributeError(f"module 'ir_core.ops' has no op {name!r}: {exc.args[0]}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *(op.name for op in registry.ops())})
