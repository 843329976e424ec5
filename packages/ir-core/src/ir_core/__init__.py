"""ir-core: op specs, fast dispatch and plugin discovery for the tensor operators of LLM inference.

Engines call ``ir_core.ops.<name>(...)``; provider wheels register kernels through pluggy hooks
(``ir_core.hookspecs``); priorities decide which kernel runs, and ``ir_core.explain`` says why.
The layers below this public face, and where each thing lives, are in docs/architecture.md.
"""

from __future__ import annotations

from . import config, ops
from .catalogue import OP_API
from .compile import compile_report
from .config import ConfigError
from .dispatch import CapabilityError, Explanation, bind, explain
from .hookspecs import API_VERSION, hookimpl
from .op import Impl, Op, Sample
from .plugins import PluginLoadError, load_plugins, register_plugin, unregister_plugin
from .priority import PriorityError, configure, priority_hash, set_priority
from .registry import RegistrationError, Registry, get_op, registry
from .tracing import Trace, TraceFileError, TraceRecord, trace
from .version import __version__ as __version__

#: The version of the op catalogue's signatures and semantics (not in ``__all__``: a dunder).
__op_api__ = OP_API

__all__ = [
    "API_VERSION",
    "CapabilityError",
    "ConfigError",
    "Explanation",
    "Impl",
    "Op",
    "PluginLoadError",
    "PriorityError",
    "RegistrationError",
    "Registry",
    "Sample",
    "Trace",
    "TraceFileError",
    "TraceRecord",
    "bind",
    "compile_report",
    "config",
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
    "trace",
    "unregister_plugin",
]
