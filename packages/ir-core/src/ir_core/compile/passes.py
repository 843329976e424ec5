"""The fusion pass extension point: graph rewrites that plugins contribute.

A fusion pass is a function ``fn(gm) -> int`` that rewrites the post-grad ATen graph of a
``torch.compile`` in place -- the graph that still holds ``torch.ops.ir_core.*`` nodes, before
they are lowered to kernels -- and returns how many matches it rewrote. Plugins contribute
passes through the ``register_fusion_passes(registry)`` hook, where ``registry`` is a
:class:`FusionPassRegistry`::

    @ir_core.hookimpl
    def register_fusion_passes(registry):
        registry.register("fused_add_rms_norm", fuse_add_rms_norm, order=10)

Passes run in ``order`` (then name), each once per compiled graph. A pass is part of the
compile-cache key through its *fingerprint*: ``fn.fingerprint()`` when ``fn`` defines one (a
pass object whose behaviour is in other modules than its class, as ir-fusions' are), else the
digest of ``fn``'s source. ``IR_CORE_FUSIONS`` picks which ones run:

- unset, empty or ``all``: every registered pass;
- ``-dual_rms_norm,-x``: every pass except the named ones;
- ``dual_rms_norm,fused_add_rms_norm``: only the named ones (a name without ``-``
  means "only these"; ``-`` entries still remove from that list);
- ``none``: no fusion pass.

An unknown name is an error that lists the known passes: a typo must not silently leave a
fusion on (or off).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch.fx

from .. import config, plugins
from ..digest import source_digest

ENV_FUSIONS = config.ENV_FUSIONS

#: ``fn(gm)`` rewrites ``gm`` in place and returns how many matches it rewrote.
FusionFn = Callable[[torch.fx.GraphModule], int]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = frozenset({"all", "none"})


class FusionPassError(ValueError):
    """A fusion pass was registered, selected or run wrongly; the message names the pass."""


@dataclass(frozen=True)
class RegisteredPass:
    """One registered rewrite: its name, the function and where it runs among the others."""

    name: str
    fn: FusionFn
    order: int

    def fingerprint(self) -> str:
        """What identifies this pass in a compile-cache key: name, order and the fingerprint of
        ``fn`` (its own ``fingerprint()``, else the digest of its source)."""
        own = getattr(self.fn, "fingerprint", None)
        source = str(own()) if callable(own) else source_digest(self.fn)
        return f"{self.name}@{self.order}:{source[:16]}"


class FusionPassRegistry:
    """The fusion passes of this process, in the order they run.

    ``ir_core`` fills one registry from every plugin's ``register_fusion_passes`` hook (see
    :func:`fusion_passes`); tests and engines may also build their own and call :meth:`run`.
    """

    def __init__(self) -> None:
        self._passes: dict[str, RegisteredPass] = {}

    def register(self, name: str, fn: FusionFn, *, order: int = 100) -> None:
        """Add the pass ``name``: ``fn(gm)`` rewrites in place and returns the match count.

        ``order`` places it among the others (lower runs first; ties run by name). A name is
        an identifier (dots allowed) and unique across plugins; ``all`` and ``none`` are
        reserved for ``IR_CORE_FUSIONS``.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise FusionPassError(
                f"fusion pass name {name!r} must be an identifier (letters, digits, '_', '.')"
            )
        if name in _KEYWORDS:
            raise FusionPassError(f"fusion pass name {name!r} is reserved for {ENV_FUSIONS}")
        if not callable(fn):
            raise FusionPassError(f"fusion pass {name}: fn must be callable, got {fn!r}")
        if isinstance(order, bool) or not isinstance(order, int):
            raise FusionPassError(f"fusion pass {name}: order must be an int, got {order!r}")
        if name in self._passes:
            raise FusionPassError(f"fusion pass {name} is already registered")
        self._passes[name] = RegisteredPass(name, fn, order)

    def passes(self) -> list[RegisteredPass]:
        """Every registered pass, in the order they run."""
        return sorted(self._passes.values(), key=lambda p: (p.order, p.name))

    def names(self) -> list[str]:
        return [p.name for p in self.passes()]

    def selected(self, spec: str | None = None) -> list[RegisteredPass]:
        """The passes ``spec`` enables, in run order (default: ``$IR_CORE_FUSIONS``, else the
        config file's ``fusions``)."""
        source = ENV_FUSIONS
        if spec is None:
            chosen = config.lookup("fusions")
            spec, source = chosen.value, chosen.origin if chosen.source != "default" else source
        enabled = select_names(spec, self.names(), source=source)
        return [p for p in self.passes() if p.name in enabled]

    def fingerprint(self, spec: str | None = None) -> str:
        """The enabled passes with their order and source: part of the compile-cache key."""
        return ";".join(p.fingerprint() for p in self.selected(spec))

    def run(self, gm: torch.fx.GraphModule, spec: str | None = None) -> dict[str, int]:
        """Run the enabled passes on ``gm`` in order; return ``{name: rewrites}``.

        A pass that raises, or returns something other than an int, stops the compile with an
        error naming it: the graph may be half-rewritten, so going on would not be safe.
        """
        counts: dict[str, int] = {}
        for fusion in self.selected(spec):
            try:
                count = fusion.fn(gm)
            except Exception as exc:
                raise FusionPassError(
                    f"fusion pass {fusion.name} raised {type(exc).__name__}: {exc} "
                    f"(disable it with {ENV_FUSIONS}=-{fusion.name})"
                ) from exc
            if isinstance(count, bool) or not isinstance(count, int):
                raise FusionPassError(
                    f"fusion pass {fusion.name} returned {count!r}; it must return the number "
                    "of matches it rewrote (an int)"
                )
            if count:
                try:
                    gm.graph.lint()
                except Exception as exc:
                    raise FusionPassError(
                        f"fusion pass {fusion.name} left an invalid graph: {exc}"
                    ) from exc
            counts[fusion.name] = count
        return counts

    def __len__(self) -> int:
        return len(self._passes)

    def __repr__(self) -> str:
        return f"<FusionPassRegistry {self.names()}>"


def select_names(spec: str, known: Iterable[str], *, source: str = ENV_FUSIONS) -> set[str]:
    """Names of the passes ``spec`` (the ``IR_CORE_FUSIONS`` syntax) enables among ``known``;
    an unknown name's error starts with ``source`` (the env var, or the file and line)."""
    known = list(known)
    only: set[str] = set()
    excluded: set[str] = set()
    everything = False
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        if entry == "none":
            return set()
        if entry == "all":
            everything = True
            continue
        name = entry[1:].strip() if entry.startswith(("-", "+")) else entry
        if name not in known:
            raise FusionPassError(
                f"{source}: unknown fusion pass {name!r}; known passes: "
                f"{', '.join(known) or '(none registered)'}"
            )
        (excluded if entry.startswith("-") else only).add(name)
    base = set(known) if everything or not only else only
    return base - excluded


# -- the process-wide registry, filled from plugins -------------------------------------------

_lock = threading.Lock()
_filled: tuple[tuple[tuple[str, int], ...], FusionPassRegistry] | None = None


def fusion_passes() -> FusionPassRegistry:
    """The registry every loaded plugin's ``register_fusion_passes`` hook filled.

    Filled when plugins load (a load step: a plugin whose hook fails is quarantined there, where
    ``list-providers`` and strict mode see it) and again whenever the set of loaded plugins
    changes. A plugin whose hook raises, or registers a bad pass, is quarantined (as for any
    hook) and the registry is rebuilt without it, so none of its passes stay half-registered.
    """
    global _filled
    plugins.load_plugins()
    with _lock:
        loaded = _plugin_names()
        if _filled is not None and _filled[0] == loaded:
            return _filled[1]
        while True:
            registry = FusionPassRegistry()
            quarantined = set(plugins.quarantined_names())
            plugins.call_hooks("register_fusion_passes", registry=registry)
            if set(plugins.quarantined_names()) <= quarantined:
                break
        _filled = (_plugin_names(), registry)
        return registry


plugins.on_load(fusion_passes)


def _plugin_names() -> tuple[tuple[str, int], ...]:
    """The loaded plugins, by name and object: a plugin re-registered under its old name
    (tests do this) counts as a change."""
    return tuple(sorted((name, id(p)) for name, p in plugins.manager.list_name_plugin()))
