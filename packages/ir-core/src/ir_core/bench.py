"""``ir-core bench OP``: every impl of an op timed side by side on the same arguments.

Each impl's kernel is called directly (not through dispatch) on one representative call from
the op's ``example_inputs``; the median of repeated calls is reported with the bandwidth it
implies, next to the fastest and slowest call. A row is *noisy* (:data:`NOISY_IQR`) when the
middle half of its calls spreads wider than half the median: the machine was busy while it
was timed, and its figures should not be compared. The max/min ratio is shown but not judged:
one preempted call makes it large on any machine.

Bytes moved counts every tensor argument read once and every output written once: the least
traffic any kernel of the op can have, which is what a norm kernel is bound by.
A last row times ``ir_core.ops.<op>`` itself: the impl dispatch picks plus the eager overhead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .dispatch import select
from .op import NATIVE, Op, Sample
from .progress import Progress
from .testing import output_mismatches

#: Default problem sizes: a prefill-sized batch on a GPU, something a CPU answers in seconds.
DEFAULT_SHAPES = {"cpu": (256, 4096), "cuda": (4096, 4096)}
FALLBACK_SHAPE = (1024, 4096)

#: A row is noisy when (75th - 25th percentile) / median of its calls exceeds this.
NOISY_IQR = 0.5


@dataclass
class BenchRow:
    """One impl's timing, or why it was not timed."""

    provider: str
    status: str  # "ok", "skipped" or "failed"
    reason: str = ""
    median_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    #: Interquartile range of the calls: 75th minus 25th percentile.
    iqr_s: float | None = None
    runs: int = 0
    gb_per_s: float | None = None
    matches_native: bool | None = None
    selected: bool = False

    @property
    def noisy(self) -> bool:
        """The calls spread too much to trust the median (see :data:`NOISY_IQR`)."""
        if self.median_s is None or self.iqr_s is None or self.median_s <= 0:
            return False
        return self.iqr_s / self.median_s > NOISY_IQR

    def to_dict(self) -> dict[str, Any]:
        def us(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1e6, 3)

        return {
            "provider": self.provider,
            "status": self.status,
            "reason": self.reason,
            "median_us": us(self.median_s),
            "min_us": us(self.min_s),
            "max_us": us(self.max_s),
            "iqr_us": us(self.iqr_s),
            "noisy": self.noisy,
            "runs": self.runs,
            "gb_per_s": None if self.gb_per_s is None else round(self.gb_per_s, 3),
            "matches_native": self.matches_native,
            "selected_by_dispatch": self.selected,
        }


def default_shape(device_type: str) -> tuple[int, int]:
    return DEFAULT_SHAPES.get(device_type, FALLBACK_SHAPE)


def bytes_moved(sample: Sample, outputs: Any) -> int:
    """Each tensor argument read once plus each output written once."""
    tensors = [a for a in (*sample.args, *sample.kwargs.values()) if isinstance(a, torch.Tensor)]
    outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    tensors += [o for o in outs if isinstance(o, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def time_round_robin(
    calls: dict[str, Callable[[], Any]],
    device_type: str,
    *,
    min_time: float,
    rounds: int = 5,
    min_runs: int = 5,
) -> dict[str, list[float]]:
    """Seconds per call for each entry of ``calls``.

    Two warm-up calls each (JIT compiles, allocator), then ``rounds`` rounds in which every
    entry runs for ``min_time / rounds`` seconds (at least one call): interleaving spreads
    machine noise (other processes, clock changes) over all impls instead of whichever ran
    during it. At least ``min_runs`` calls each, at most 10,000.
    """
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    for call in calls.values():
        for _ in range(2):
            call()
            sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(rounds):
        for name, call in calls.items():
            spent = 0.0
            while (
                spent < min_time / rounds
                or (round_index == rounds - 1 and len(times[name]) < min_runs)
            ) and len(times[name]) < 10_000:
                t0 = time.perf_counter()
                call()
                sync()
                elapsed = time.perf_counter() - t0
                times[name].append(elapsed)
                spent += elapsed
    return times


def bench_op(
    op: Op,
    *,
    num_tokens: int,
    hidden_size: int,
    dtype: torch.dtype,
    device: str,
    min_time: float = 0.2,
    progress: Progress | None = None,
) -> list[BenchRow]:
    """Time every impl of ``op`` that is available, runs on ``device`` and accepts the call;
    the last row is ``ir_core.ops.<op>`` (dispatch included)."""
    progress = progress or Progress(enabled=False)
    device_type = torch.device(device).type
    sample = op.example_inputs(num_tokens, hidden_size, dtype, device)
    args = op.bind(sample.args, sample.kwargs)
    op.validate(args)
    expected = op.native(*args)
    chosen = select(op, args).provider
    providers = [NATIVE, *sorted(p for p in op.impls if p != NATIVE)]
    progress.add_total(len(providers) + 2)
    rows: dict[str, BenchRow] = {}
    calls: dict[str, Callable[[], Any]] = {}
    for provider in providers:
        progress.step(f"{op.name} {provider}: first call")
        impl = op.impls[provider]
        row = rows[provider] = BenchRow(provider, "skipped", selected=provider == chosen)
        reason = impl.rejection(device_type, args)
        if reason:
            row.reason = reason
            continue
        call = _checked_call(row, lambda fn=impl.fn: fn(*args), op, expected, args)
        if call is not None:
            calls[provider] = call
    dispatch_name = f"ir_core.ops.{op.name} -> {chosen}"
    rows[dispatch_name] = BenchRow(dispatch_name, "skipped")
    call = _checked_call(rows[dispatch_name], lambda: op.dispatcher(*args), op, expected, args)
    if call is not None:
        calls[dispatch_name] = call
    progress.step(f"{op.name}: timing {len(calls)} impls, {min_time:g}s each")
    try:
        times = time_round_robin(calls, device_type, min_time=min_time)
    except Exception as exc:  # a kernel that ran once but fails when repeated
        for name in calls:
            rows[name].status, rows[name].reason = "failed", f"raised {type(exc).__name__}: {exc}"
        times = {}
    moved = bytes_moved(sample, expected)
    for name, measured in times.items():
        row = rows[name]
        row.runs = len(measured)
        row.median_s = statistics.median(measured)
        row.min_s, row.max_s = min(measured), max(measured)
        if len(measured) >= 2:
            q1, _, q3 = statistics.quantiles(measured, n=4)
            row.iqr_s = q3 - q1
        row.gb_per_s = moved / row.median_s / 1e9 if row.median_s > 0 else None
        progress.note(f"  {name}: {_format_row(row)}")
    progress.step(f"{op.name}: done")
    progress.close()
    return list(rows.values())


def _checked_call(
    row: BenchRow, call: Callable[[], Any], op: Op, expected: Any, args: tuple[Any, ...]
) -> Callable[[], Any] | None:
    """Run ``call`` once and compare with native; the call to time, or None if it raised."""
    try:
        out = call()
    except Exception as exc:
        row.status, row.reason = "failed", f"raised {type(exc).__name__}: {exc}"
        return None
    problems = output_mismatches(op, out, expected, args)
    row.status = "ok"
    row.matches_native = not problems
    row.reason = "; ".join(problems)
    return call


def _format_row(row: BenchRow) -> str:
    if row.median_s is None:
        return row.reason
    return f"{row.median_s * 1e6:.1f} us, {row.gb_per_s or 0:.1f} GB/s"


def table_rows(rows: list[BenchRow]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the timed impls for the text report; speed is relative to native.
    Impls that were not timed are listed by :func:`untimed_lines`."""
    native = next((r for r in rows if r.provider == NATIVE and r.median_s), None)
    header = ["impl", "min", "median", "max", "GB/s", "vs native", "matches native", "note"]
    body = []
    for r in rows:
        if r.median_s is None:
            continue
        speed = f"{native.median_s / r.median_s:.2f}x" if native and native.median_s else "-"
        note = "dispatch picks this" if r.selected else ""
        if r.noisy:
            note = ", ".join(n for n in ("noisy", note) if n)
        if r.matches_native is False:
            note = r.reason[:120]
        body.append(
            [
                r.provider,
                _duration(r.min_s),
                _duration(r.median_s),
                _duration(r.max_s),
                f"{r.gb_per_s:.2f}" if r.gb_per_s is not None else "-",
                speed,
                "yes" if r.matches_native else "NO",
                note,
            ]
        )
    return header, body


def untimed_lines(rows: list[BenchRow]) -> list[str]:
    """'provider: reason' for every impl that was not timed."""
    return [f"{r.provider}: {r.status}: {r.reason}" for r in rows if r.median_s is None]


def noisy_warning(rows: list[BenchRow]) -> str:
    """A warning naming the noisy rows, or '' when every timing is steady."""
    noisy = [r.provider for r in rows if r.noisy]
    if not noisy:
        return ""
    return (
        f"warning: noisy timings ({', '.join(noisy)}): the middle half of the calls spread "
        f"over more than {NOISY_IQR:.0%} of the median, so the machine was busy; rerun on an "
        "idle machine or with a larger --min-time before comparing"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"
