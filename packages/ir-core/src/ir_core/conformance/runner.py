"""Run the conformance checks outside pytest: ``ir-core check`` and ``ir-core doctor``.

The checks are the ones the pytest suite runs (:mod:`ir_core.conformance.checks`); this module
only walks the plan, times each check and collects the outcomes into a :class:`Report`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..progress import Progress
from .checks import CHECK_NAMES, SAMPLE_CHECKS, TARGET_CHECKS
from .errors import CheckFailed, CheckSkipped
from .targets import Case, Target, TargetPlan, dtype_name, plan

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

#: What ``quick`` runs: the checks that cost milliseconds, on a few samples per target.
QUICK_CHECKS: tuple[str, ...] = ("numerics", "mutation", "supports_args")
QUICK_SAMPLES = 3


@dataclass
class CheckResult:
    """The outcome of one check on one sample (``sample`` None: a per-target check)."""

    check: str
    target: Target
    sample: str | None
    outcome: str
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            **self.target.to_dict(),
            "sample": self.sample,
            "outcome": self.outcome,
            "message": self.message,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Report:
    """Everything one run found: the plan (with skip reasons) and every check's outcome."""

    providers: list[str]
    plans: list[TargetPlan] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    checks: tuple[str, ...] = CHECK_NAMES
    quick: bool = False
    seconds: float = 0.0

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        counts = {PASSED: 0, FAILED: 0, SKIPPED: 0}
        for r in self.results:
            counts[r.outcome] += 1
        return counts

    def target_rows(self) -> list[dict[str, Any]]:
        """Per target: how many samples it claims and each check's pass/fail/skip counts."""
        by_target: dict[Target, dict[str, dict[str, int]]] = {}
        for r in self.results:
            cell = by_target.setdefault(r.target, {}).setdefault(
                r.check, {PASSED: 0, FAILED: 0, SKIPPED: 0}
            )
            cell[r.outcome] += 1
        rows = []
        for p in self.plans:
            checks = by_target.get(p.target, {})
            failed = any(c[FAILED] for c in checks.values())
            rows.append(
                {
                    **p.target.to_dict(),
                    "status": "skipped" if p.skip else ("failed" if failed else "passed"),
                    "reason": p.skip,
                    "samples": len(p.cases),
                    "claimed": len(p.claimed_cases),
                    "checks": checks,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "providers": self.providers,
            "ok": self.ok,
            "quick": self.quick,
            "checks": list(self.checks),
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "targets": self.target_rows(),
            "results": [r.to_dict() for r in self.results],
        }


def _timed(check: str, target: Target, sample: str | None, fn: Any, arg: Any) -> CheckResult:
    start = time.perf_counter()
    try:
        fn(arg)
        outcome, message = PASSED, ""
    except CheckSkipped as exc:
        outcome, message = SKIPPED, str(exc)
    except CheckFailed as exc:
        outcome, message = FAILED, str(exc)
    except Exception as exc:  # a bug in the impl the check did not anticipate is still a failure
        outcome, message = FAILED, f"{target.id}: {check} raised {type(exc).__name__}: {exc}"
    return CheckResult(check, target, sample, outcome, message, time.perf_counter() - start)


def _quick_cases(p: TargetPlan) -> list[Case]:
    """A few claimed samples spread over the list (first, middle, last)."""
    claimed = p.claimed_cases
    if len(claimed) <= QUICK_SAMPLES:
        return claimed
    step = (len(claimed) - 1) / (QUICK_SAMPLES - 1)
    return [claimed[round(i * step)] for i in range(QUICK_SAMPLES)]


def run(
    providers: Sequence[str],
    *,
    ops: Sequence[str] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    devices: Sequence[str] | None = None,
    checks: Sequence[str] | None = None,
    quick: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Check every target of each provider; ``quick`` limits checks and samples (doctor).

    Raises KeyError for an unknown provider, op or check name.
    """
    chosen = tuple(checks or (QUICK_CHECKS if quick else CHECK_NAMES))
    unknown = [c for c in chosen if c not in CHECK_NAMES]
    if unknown:
        raise KeyError(f"unknown check {unknown[0]!r}; checks: {', '.join(CHECK_NAMES)}")
    started = time.perf_counter()
    report = Report(list(providers), checks=chosen, quick=quick)
    for provider in providers:
        report.plans += plan(provider, ops=ops, dtypes=dtypes, devices=devices)
    sample_checks = [(n, f) for n, f in SAMPLE_CHECKS.items() if n in chosen]
    target_checks = [(n, f) for n, f in TARGET_CHECKS.items() if n in chosen]
    work: list[tuple[TargetPlan, list[Case]]] = [
        (p, _quick_cases(p) if quick else p.cases) for p in report.plans if not p.skip
    ]
    progress = progress or Progress(enabled=False)
    progress.add_total(
        sum(len(cases) * len(sample_checks) + len(target_checks) for _, cases in work)
    )
    for p in report.plans:
        if p.skip and not quick:
            progress.note(f"  skip {p.target.id}: {p.skip}")
    for p, cases in work:
        first = len(report.results)
        for case in cases:
            for name, fn in sample_checks:
                progress.step(f"{p.target.id} {name} [{case.label}]")
                report.results.append(_timed(name, p.target, case.label, fn, case))
        for name, fn in target_checks:
            progress.step(f"{p.target.id} {name}")
            report.results.append(_timed(name, p.target, None, fn, p))
        mine = report.results[first:]
        if quick:
            continue  # doctor: a bar is enough, the per-target lines would be noise
        failed = sum(r.outcome == FAILED for r in mine)
        passed = sum(r.outcome == PASSED for r in mine)
        progress.note(
            f"  {'FAIL' if failed else 'ok  '} {p.target.id}: {passed} passed"
            + (f", {failed} failed" if failed else "")
            + f", {len(mine) - passed - failed} skipped"
        )
    progress.close()
    report.seconds = time.perf_counter() - started
    return report


def summary_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-target summary ``ir-core check`` prints."""
    header = ["op", "provider", "device", "dtype", "samples", *report.checks, "result"]
    rows = []
    for row in report.target_rows():
        cells = [row["op"], row["provider"], row["device"], row["dtype"]]
        if row["reason"]:
            rows.append([*cells, "-", *("-" for _ in report.checks), f"skipped: {row['reason']}"])
            continue
        cells.append(f"{row['claimed']}/{row['samples']}")
        for check in report.checks:
            c = row["checks"].get(check)
            if c is None:
                cells.append("-")
            elif c[FAILED]:
                cells.append(f"FAIL {c[FAILED]}")
            elif c[PASSED]:
                cells.append(f"ok {c[PASSED]}" if c[PASSED] > 1 else "ok")
            else:
                cells.append("skip")
        cells.append(row["status"])
        rows.append(cells)
    return header, rows


__all__ = [
    "FAILED",
    "PASSED",
    "QUICK_CHECKS",
    "SKIPPED",
    "CheckResult",
    "Report",
    "dtype_name",
    "run",
    "summary_table",
]
