"""IR ops inside ``torch.compile``: fusion passes, then lowering to the selected kernels.

- :mod:`.passes` -- the fusion pass registry plugins fill (``register_fusion_passes``);
- :mod:`.lowering` -- each ``torch.ops.ir_core.*`` node becomes the impl the priority selects,
  chosen on size hints (:mod:`.selection`), native impls inlined as ATen ops (:mod:`.inline`);
- :mod:`.inductor` -- how plain ``torch.compile(m)`` runs these passes; :mod:`.backend` --
  ``backend="ir_core"`` (recompiling when the priority changes is ``ir_core.priority``'s
  compile guard);
- :mod:`.report` -- ``ir_core.compile_report()`` and ``IR_CORE_LOG``.

This package stays light to import: the Inductor and Dynamo parts load only when a compile
needs them (nothing below ``ir_core.compile`` imports it, except ``ir_core.library``, which
loads :mod:`.inductor` lazily on the first trace).
"""

from __future__ import annotations

from typing import Any

from .passes import (
    ENV_FUSIONS,
    FusionPassError,
    FusionPassRegistry,
    RegisteredPass,
    fusion_passes,
)
from .report import CompileReport, LoweredNode, UnloweredNode, compile_report


def install() -> None:
    """Make Inductor lower IR ops in this process now (imports Inductor).

    Rarely needed: tracing an IR op installs the pass already (see
    :mod:`ir_core.compile.inductor`). Use it when a graph reaches Inductor without Dynamo
    having traced it in this process (``make_fx`` then ``compile_fx``).
    """
    from .inductor import install as _install  # lazy: imports Inductor (seconds)

    _install()


def ir_core_backend(gm: Any, example_inputs: Any, **kwargs: Any) -> Any:
    """``torch.compile(m, backend="ir_core")``; see :mod:`ir_core.compile.backend`."""
    from .backend import ir_core_backend as _backend  # lazy: imports Inductor (seconds)

    return _backend(gm, example_inputs, **kwargs)


__all__ = [
    "ENV_FUSIONS",
    "CompileReport",
    "FusionPassError",
    "FusionPassRegistry",
    "LoweredNode",
    "RegisteredPass",
    "UnloweredNode",
    "compile_report",
    "fusion_passes",
    "install",
    "ir_core_backend",
]
