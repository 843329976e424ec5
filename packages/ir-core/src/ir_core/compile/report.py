"""What the last compile did: fusions, the provider chosen for each IR node, what stayed opaque.

``ir_core.compile_report()`` returns it; with ``IR_CORE_LOG=info`` (or ``debug``) the same is
logged through ``logging.getLogger("ir_core")`` as each graph is compiled.

A graph Inductor serves from its on-disk cache (FX graph cache, AOTAutograd cache) runs no
pass, so its report travels with the cached artifact: Inductor stores, with each compiled
graph, how much each of its counters (``torch._dynamo.utils.counters["inductor"]``) grew while
the graph was compiled, and adds that again when it serves the graph from the cache. The report
is published under a counter named by its JSON (:func:`publish`), so a cache hit, in this
process or another, increments that counter again; :func:`served_from_cache` notices the
increase (at the start of the next compile and in :func:`compile_report`) and publishes the
stored report, marked ``from_cache``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import tracing

ENV_LOG = "IR_CORE_LOG"

logger = logging.getLogger("ir_core")


@dataclass(frozen=True)
class LoweredNode:
    """One IR node and the provider whose impl replaced it."""

    op: str
    provider: str
    node: str


@dataclass(frozen=True)
class UnloweredNode:
    """An IR node left opaque, and why."""

    op: str
    node: str
    reason: str


@dataclass
class CompileReport:
    """The passes' account of one compiled graph.

    ``fusions`` maps each fusion pass that ran to the matches it rewrote; ``lowered`` lists
    every IR node with the provider whose impl replaced it; ``unlowered`` lists IR nodes left
    as opaque ``torch.ops.ir_core`` calls (it should be empty); ``seconds`` is the time the
    passes took.
    """

    fusions: dict[str, int] = field(default_factory=dict)
    lowered: list[LoweredNode] = field(default_factory=list)
    unlowered: list[UnloweredNode] = field(default_factory=list)
    priority_hash: str = ""
    seconds: float = 0.0
    #: Which graph: the function Dynamo traced, where it is, and its compile id.
    graph: str = ""
    #: True when Inductor served the graph from its cache: this is the report stored with it
    #: when it was compiled (``seconds`` is that compile's).
    from_cache: bool = False

    def providers(self) -> dict[str, dict[str, int]]:
        """``{op: {provider: node count}}``."""
        counts: dict[str, Counter[str]] = {}
        for item in self.lowered:
            counts.setdefault(item.op, Counter())[item.provider] += 1
        return {op: dict(c) for op, c in counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "fusions": dict(self.fusions),
            "lowered": [vars(n) for n in self.lowered],
            "unlowered": [vars(n) for n in self.unlowered],
            "priority_hash": self.priority_hash,
            "seconds": self.seconds,
            "graph": self.graph,
            "from_cache": self.from_cache,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompileReport:
        """The inverse of :meth:`to_dict`."""
        return cls(
            fusions=dict(data["fusions"]),
            lowered=[LoweredNode(**n) for n in data["lowered"]],
            unlowered=[UnloweredNode(**n) for n in data["unlowered"]],
            priority_hash=data["priority_hash"],
            seconds=data["seconds"],
            graph=data.get("graph", ""),
            from_cache=data.get("from_cache", False),
        )

    def __str__(self) -> str:
        fusions = ", ".join(f"{k}={v}" for k, v in self.fusions.items()) or "none ran"
        chosen = "; ".join(
            f"{op}: " + ", ".join(f"{p}*{n}" for p, n in by.items())
            for op, by in self.providers().items()
        )
        cached = " (served from Inductor's cache: as reported when compiled)"
        lines = [
            f"ir_core compile of {self.graph or 'a graph'}: {len(self.lowered)} IR nodes "
            f"lowered in {self.seconds * 1e3:.1f} ms{cached if self.from_cache else ''}",
            f"  fusions: {fusions}",
            f"  providers: {chosen or 'no IR nodes'}",
        ]
        lines += [f"  lowered {n.node}: {n.op} -> {n.provider}" for n in self.lowered]
        lines += [f"  NOT lowered {n.node}: {n.op} ({n.reason})" for n in self.unlowered]
        return "\n".join(lines)


_lock = threading.RLock()
_last: CompileReport | None = None
#: The prefix of the Inductor counter each report is published under (see the module's doc).
CACHE_COUNTER = "ir_core_compile_report "
#: The count seen of each report counter.
_seen: dict[str, int] = {}


def _inductor_counters() -> Counter[str] | None:
    """Inductor's counters, or None when no compile has run (Dynamo is not even imported:
    importing it costs seconds, which ``import ir_core`` must not pay)."""
    utils = sys.modules.get("torch._dynamo.utils")
    return None if utils is None else utils.counters["inductor"]


def publish(report: CompileReport) -> None:
    """Record ``report`` as the last one and log it when ``IR_CORE_LOG`` asks for it; a report
    just made is also counted under its JSON, which Inductor stores with the compiled graph."""
    global _last
    with _lock:
        counter = _inductor_counters()
        if counter is not None and not report.from_cache:
            served_from_cache()  # an earlier cache hit is older than this report
            key = CACHE_COUNTER + json.dumps(report.to_dict(), sort_keys=True)
            counter[key] += 1
            _seen[key] = counter[key]
        _last = report
    tracing.note_compile(report.to_dict())
    _configure_logging()
    if report.unlowered:
        logger.warning(
            "ir_core: %d IR node(s) left un-lowered: %s",
            len(report.unlowered),
            ", ".join(f"{n.node} ({n.op}: {n.reason})" for n in report.unlowered),
        )
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", report)


def served_from_cache() -> None:
    """Publish the stored report of a graph Inductor served from its cache since the last look
    (called at the start of every compile, so reports keep the order of the compiles)."""
    with _lock:
        counter = _inductor_counters()
        if counter is None:
            return
        counts = {k: n for k, n in list(counter.items()) if k.startswith(CACHE_COUNTER)}
        if any(counts.get(k, 0) < n for k, n in _seen.items()):
            _seen.clear()  # the counters were reset (``counters.clear()``): all of them are new
        grown = [k for k, n in counts.items() if n != _seen.get(k, 0)]
        _seen.update(counts)
        newest = grown[-1] if grown else None  # one per compile: served_from_cache runs in each
        if newest is not None:
            data = json.loads(newest[len(CACHE_COUNTER) :])
            publish(CompileReport.from_dict({**data, "from_cache": True}))


def compile_report() -> CompileReport | None:
    """The report of the last compiled graph that held IR ops (None: none yet in this process).

    Graphs without IR ops do not replace it. For a graph Inductor served from its cache, it is
    the report made when that graph was compiled, with ``from_cache`` set.
    """
    served_from_cache()
    return _last


_configured_level: str | None = None


def _configure_logging() -> None:
    """Apply ``IR_CORE_LOG`` (a logging level name) to the ``ir_core`` logger, once per value.

    A stderr handler is added only when neither the logger nor the root has one, so an
    application's own logging setup is left alone.
    """
    global _configured_level
    level = os.environ.get(ENV_LOG, "").strip().upper()
    if not level or level == _configured_level:
        return
    _configured_level = level
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        logger.warning("%s=%s is not a logging level; ignored", ENV_LOG, level)
        return
    logger.setLevel(numeric)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
