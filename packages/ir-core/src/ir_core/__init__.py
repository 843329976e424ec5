"""ir-core: op specs, fast dispatch and plugin discovery for the tensor operators of LLM inference.

Engines call ``ir_core.ops.<name>(...)``; provider wheels register kernels through pluggy hooks
(``ir_core.hookspecs``); priorities decide which kernel runs, and ``ir_core.explain`` says why.
"""

from __future__ import annotations

from .catalogue import OP_API as __op_api__
from .catalogue import register_builtin_ops as _register_builtin_ops
from .compile import compile_report
from .discovery import (
    API_VERSION,
    PluginLoadError,
    load_plugins,
    register_plugin,
    registry,
    unregister_plugin,
)
from .dispatch import Explanation, explain
from .hookspecs import hookimpl
from .op import Impl, Op, Sample
from .priority import PriorityError, configure, priority_hash, set_priority
from .registry import RegistrationError, Registry

_register_builtin_ops(registry)

from . import ops  # noqa: E402  (needs the built-in ops registered)
from .version import __version__ as __version__  # noqa: E402


def get_op(name: str) -> Op:
    """The op called ``name`` (plugins loaded first, so fused ops are found too)."""
    if name not in {op.name for op in registry.ops()}:
        load_plugins()
    return registry.get_op(name)


__all__ = [
    "API_VERSION",
    "Explanation",
    "Impl",
    "Op",
    "PluginLoadError",
    "PriorityError",
    "RegistrationError",
    "Registry",
    "Sample",
    "__op_api__",
    "compile_report",
    "configure",
    "explain",
    "get_op",
    "hookimpl",
    "load_plugins",
    "ops",
    "priority_hash",
    "register_plugin",
    "registry",
    "set_priority",
    "unregister_plugin",
]
