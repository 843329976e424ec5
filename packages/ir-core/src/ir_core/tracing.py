"""What ran: ``with ir_core.trace() as t:`` counts, per op and argument signature, which
provider ran each eager call; ``IR_CORE_TRACE=FILE`` does the same for the whole process and
writes the file at exit.

Why a swap rather than a flag: the hit paths of dispatch have no "am I traced?" check, because
every check costs every call of every engine. Entering the first active trace installs a
recorder (:func:`ir_core.dispatch.set_recorder`), which routes every op through the
pure-Python recording hit path (both usual hit paths, compiled and Python, are swapped out) and
makes bound calls rebind to a kernel that records; leaving the last one swaps them back. So a
trace costs nothing when none is active, and calls run slower while one is (the Python path
and a lock per call).

The semantics, which tests pin down:

- A trace is process-wide: it counts calls from every thread while it is active, exactly (one
  lock around each count). Nested or overlapping traces each count every call made while they
  are active: an outer trace's counts include an inner one's.
- A record is ``(op, signature, provider)`` with its count; the signature is
  :func:`ir_core.dispatch.call_signature` (each tensor's dtype, shape and device type, other
  arguments by value). A bound call (``ir_core.bind``) is recorded under the signature of the
  arguments it was (re)bound for: its caller promises every call has that metadata.
- Compiled graphs run no eager dispatch: their kernels were chosen when the graph was lowered.
  What the lowering chose is in the compile reports (``ir_core.compile_report``); every report
  published while a trace is active (each compile, and each graph Inductor serves from its
  cache, noticed at the next compile or ``compile_report()``) is kept in the trace's
  ``compiled``, as ``CompileReport.to_dict()``. An IR node left un-lowered runs eagerly and is
  counted as an eager call.
- Calls under Dynamo tracing or ``torch.export`` are not counted (they record the IR op).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dispatch

ENV_TRACE = "IR_CORE_TRACE"

logger = logging.getLogger("ir_core")

#: ``schema`` and ``version`` of a saved trace; the version changes when a field's meaning does.
SCHEMA = "ir_core.trace"
VERSION = 1


class TraceFileError(ValueError):
    """A file that is not a trace this ir-core can read."""


@dataclass(frozen=True)
class TraceRecord:
    """How often ``provider`` ran ``op`` for arguments of ``signature``."""

    op: str
    signature: str
    provider: str
    count: int


class Trace:
    """The eager calls counted while the trace was active, and the compile reports made."""

    def __init__(self) -> None:
        self._counts: Counter[dispatch.Record] = Counter()
        self.compiled: list[dict[str, Any]] = []

    @property
    def records(self) -> list[TraceRecord]:
        """Every ``(op, signature, provider)`` seen with its count, by op then signature."""
        with _lock:
            items = list(self._counts.items())
        return [TraceRecord(*key, n) for key, n in sorted(items)]

    def to_dict(self) -> dict[str, Any]:
        """The saved form: ``schema``, ``version``, ``records`` and ``compiled``."""
        with _lock:
            compiled = list(self.compiled)
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "records": [vars(r) for r in self.records],
            "compiled": compiled,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Trace:
        """The inverse of :meth:`to_dict`; a TraceFileError says what is wrong."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise TraceFileError(f'not an ir-core trace (no "schema": {SCHEMA!r})')
        if data.get("version") != VERSION:
            raise TraceFileError(
                f"trace version {data.get('version')!r}; this ir-core reads version {VERSION}"
            )
        trace = cls()
        try:
            for r in data["records"]:
                key = (str(r["op"]), str(r["signature"]), str(r["provider"]))
                trace._counts[key] += int(r["count"])
            trace.compiled = [dict(c) for c in data.get("compiled", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise TraceFileError(f"malformed trace record: {exc!r}") from None
        return trace

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trace:
        """Read a file :meth:`save` wrote (OSError when unreadable, TraceFileError when not a
        trace)."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise TraceFileError(f"{path}: not JSON: {exc}") from None
        return cls.from_dict(data)

    def summary(self) -> str:
        """One line per record, ``op  provider  count  signature``, and the compiled graphs."""
        records = self.records
        if not records:
            lines = ["no eager IR op calls traced"]
        else:
            width = max(len(r.op) for r in records)
            pwidth = max(len(r.provider) for r in records)
            lines = [
                f"{r.op:<{width}}  {r.provider:<{pwidth}}  {r.count:>8}  {r.signature}"
                for r in records
            ]
        for report in self.compiled:
            lowered = Counter((n["op"], n["provider"]) for n in report.get("lowered", []))
            chosen = ", ".join(f"{op} -> {p}*{n}" for (op, p), n in sorted(lowered.items()))
            lines.append(f"compiled {report.get('graph') or 'a graph'}: {chosen or 'no IR nodes'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace {len(self._counts)} records, {len(self.compiled)} compiled graphs>"


_lock = threading.Lock()
_active: list[Trace] = []


def _record(key: dispatch.Record) -> None:
    with _lock:
        for t in _active:
            t._counts[key] += 1


def start() -> Trace:
    """Start a trace that counts until :func:`stop` (what ``trace()`` and the env var use)."""
    t = Trace()
    with _lock:  # held while swapping, so that a concurrent stop() cannot swap back in between
        _active.append(t)
        if len(_active) == 1:
            dispatch.set_recorder(_record)
    return t


def stop(t: Trace) -> None:
    """Stop counting into ``t``; the last active trace swaps the usual hit paths back."""
    with _lock:
        if t in _active:
            _active.remove(t)
            if not _active:
                dispatch.set_recorder(None)


@contextmanager
def trace() -> Iterator[Trace]:
    """Count which provider runs each eager IR op call inside the block (every thread): see
    the module docstring. The trace stays readable after the block."""
    t = start()
    try:
        yield t
    finally:
        stop(t)


def note_compile(report: dict[str, Any]) -> None:
    """Keep a published compile report (its ``to_dict()``) in every active trace."""
    with _lock:
        for t in _active:
            t.compiled.append(report)


def _trace_process(path: str) -> None:
    """``IR_CORE_TRACE=FILE``: one trace from import to exit, saved to ``path`` at exit."""
    t = start()

    def save() -> None:
        stop(t)
        try:
            t.save(path)
        except OSError as exc:  # at exit there is no caller to raise to: say it, once
            logger.warning(
                "ir_core: %s=%s: the trace could not be written: %s", ENV_TRACE, path, exc
            )

    atexit.register(save)


if os.environ.get(ENV_TRACE):
    _trace_process(os.environ[ENV_TRACE])
