"""What the last compile did: fusions, the provider chosen for each IR node, what stayed opaque.

``ir_core.compile_report()`` returns it; with ``IR_CORE_LOG=info`` (or ``debug``) the same is
logged through ``logging.getLogger("ir_core")`` as each graph is compiled.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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
        }

    def __str__(self) -> str:
        fusions = ", ".join(f"{k}={v}" for k, v in self.fusions.items()) or "none ran"
        chosen = "; ".join(
            f"{op}: " + ", ".join(f"{p}*{n}" for p, n in by.items())
            for op, by in self.providers().items()
        )
        lines = [
            f"ir_core compile: {len(self.lowered)} IR nodes lowered in {self.seconds * 1e3:.1f} ms",
            f"  fusions: {fusions}",
            f"  providers: {chosen or 'no IR nodes'}",
        ]
        lines += [f"  lowered {n.node}: {n.op} -> {n.provider}" for n in self.lowered]
        lines += [f"  NOT lowered {n.node}: {n.op} ({n.reason})" for n in self.unlowered]
        return "\n".join(lines)


_lock = threading.Lock()
_last: CompileReport | None = None


def publish(report: CompileReport) -> None:
    """Record ``report`` as the last one and log it when ``IR_CORE_LOG`` asks for it."""
    global _last
    with _lock:
        _last = report
    _configure_logging()
    if report.unlowered:
        logger.warning(
            "ir_core: %d IR node(s) left un-lowered: %s",
            len(report.unlowered),
            ", ".join(f"{n.node} ({n.op}: {n.reason})" for n in report.unlowered),
        )
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", report)


def compile_report() -> CompileReport | None:
    """The report of the last compiled graph that held IR ops (None: none yet in this process).

    Graphs without IR ops do not replace it; a graph Inductor serves from its FX graph cache
    runs no pass, so it makes no report either.
    """
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
