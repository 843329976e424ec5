"""Running ir_core's passes inside Inductor, for ``torch.compile(m)`` with no configuration.

How: Inductor runs the passes listed in ``torch._inductor.config.post_grad_custom_pre_pass``
(torch >= 2.8 accepts a list) on the post-grad ATen graph, before its own pattern passes and
scheduling. :func:`ensure_installed` appends :data:`GRAPH_PASS` to that list, keeping any pass
the user or an engine put there (theirs run first, so they still see the IR nodes).

When: the first time an IR op is traced. ``torch.ops.ir_core.*``'s fake impl (which Dynamo and
AOTAutograd run for every IR call they trace, before Inductor starts) calls
:func:`ensure_installed` whenever Inductor's config module is already loaded, which it is in any
process running Dynamo. ``import ir_core`` itself never imports Inductor (that costs seconds);
and because the check repeats on every trace, a ``config.patch`` that replaced the list is
repaired before the next compile. ``IR_CORE_INDUCTOR_PASS=0`` turns the automatic install off
(IR ops then stay opaque under plain ``torch.compile``, as in vLLM); ``backend="ir_core"``
installs the pass for its own compiles regardless.

Why not the alternatives: a decomposition or Inductor lowering registered per IR op would be
applied while AOTAutograd traces, so fusion passes would never see the IR nodes; a
``torch_dynamo_backends`` backend alone would leave ``torch.compile(m)`` opaque; installing at
``import ir_core`` would make every import pay for Inductor.

Caching: :meth:`IrCoreGraphPass.uuid` is part of Inductor's FX graph cache key (and
AOTAutograd's): it digests ir_core's compile code, ``ir_core.priority_hash()`` and the enabled
fusion passes, so a graph compiled under one priority is never served under another.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch.fx
from torch._inductor import config as inductor_config
from torch._inductor.custom_graph_pass import CustomGraphPass

try:  # torch >= 2.9: the config holds a list of passes
    from torch._inductor.custom_graph_pass import get_custom_graph_passes

    LIST_OF_PASSES = True
except ImportError:  # torch 2.6-2.8: one pass, so ours is chained after any already set
    LIST_OF_PASSES = False

    def get_custom_graph_passes(custom_pass: Any) -> tuple[Any, ...]:
        if custom_pass is None:
            return ()
        if isinstance(custom_pass, ChainedGraphPass):
            return custom_pass.passes
        return (custom_pass,)


from .. import library, priority
from ..digest import source_digest
from ..op import NATIVE
from ..registry import registry
from .passes import fusion_passes
from .pipeline import run_passes
from .report import served_from_cache

ENV_INDUCTOR_PASS = "IR_CORE_INDUCTOR_PASS"


class IrCoreGraphPass(CustomGraphPass):
    """Fusion passes then lowering, as an Inductor post-grad custom pass."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        gm = graph.owning_module
        if gm is None:  # Inductor always hands over a module's graph; be explicit if not
            raise RuntimeError("ir_core's graph pass needs a graph owned by a GraphModule")
        run_passes(gm)

    def uuid(self) -> str:
        # Inductor asks this at the start of every compile, cached or not: the moment to
        # publish the report of a graph the previous compile served from the cache
        served_from_cache()
        return source_digest(
            _source_digest(),
            priority.guard_key(),  # priority_hash(), cached per priority scope
            fusion_passes().fingerprint(),
        )

    def __repr__(self) -> str:
        return "<ir_core graph pass: fusions, then lowering>"


#: The one instance ir_core installs (identity tells ours from others in the config list).
GRAPH_PASS = IrCoreGraphPass()


class ChainedGraphPass(CustomGraphPass):
    """Several passes as one, for torch versions whose config takes a single pass."""

    def __init__(self, passes: tuple[Any, ...]) -> None:
        self.passes = passes

    def __call__(self, graph: torch.fx.Graph) -> None:
        for graph_pass in self.passes:
            graph_pass(graph)

    def uuid(self) -> str:
        parts = [str(p.uuid()) if hasattr(p, "uuid") else repr(p) for p in self.passes]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@lru_cache(1)
def _source_digest() -> str:
    """ir_core's compile code, op library, dispatcher and compile guard: a change to any of them
    invalidates cached graphs."""
    here = Path(__file__).parent
    core = ("library.py", "dispatch.py", "priority.py")
    return source_digest(*sorted([*here.glob("*.py"), *(here.parent / name for name in core)]))


def with_graph_pass(passes: Any) -> Any:
    """``passes`` (a config value: None, one pass or a list) with ours appended once."""
    current = list(get_custom_graph_passes(passes))
    if not any(p is GRAPH_PASS for p in current):
        current.append(GRAPH_PASS)
    if LIST_OF_PASSES:
        return current
    return current[0] if len(current) == 1 else ChainedGraphPass(tuple(current))


def installed() -> bool:
    """Whether Inductor's current config runs ir_core's passes."""
    passes = get_custom_graph_passes(inductor_config.post_grad_custom_pre_pass)
    return any(p is GRAPH_PASS for p in passes)


def install() -> None:
    """Make Inductor run ir_core's passes in this process (idempotent)."""
    define_impl_ops()
    if not installed():
        inductor_config.post_grad_custom_pre_pass = with_graph_pass(
            inductor_config.post_grad_custom_pre_pass
        )


def ensure_installed() -> None:
    """:func:`install` unless ``IR_CORE_INDUCTOR_PASS`` turns it off; called on every trace."""
    if os.environ.get(ENV_INDUCTOR_PASS, "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    install()


_defined: set[tuple[str, str]] = set()
_define_lock = threading.Lock()
#: Priority scopes whose impl ops are all defined (reset when priorities or plugins change):
#: this runs for every traced IR call, so the usual case is one set lookup.
_scopes_done: set[priority.Scope] = set()
priority.on_change(_scopes_done.clear)


def define_impl_ops() -> None:
    """Create ``torch.ops.ir_core_impl.*`` for the available impls the priority may select.

    Lowering creates these on first use, but a graph served from Inductor's FX graph cache in a
    fresh process calls them without lowering anything: they must exist before Inductor loads
    it, and this runs while Dynamo traces, which is before. Only providers in the current
    priority are considered, so no other vendor library is imported by an availability check.
    """
    scope = priority.current_scope.get()
    if scope in _scopes_done:
        return
    registry.ensure_loaded()  # first: loading changes priorities (and clears _scopes_done)
    for op in registry.ops():
        for provider in priority.resolve(op.name):
            key = (op.name, provider)
            if provider == NATIVE or key in _defined:
                continue
            impl = op.impls.get(provider)
            if impl is None or not impl.status()[0]:
                continue
            with _define_lock:
                library.impl_op(op, provider)
                _defined.add(key)
    _scopes_done.add(scope)
