"""``ir-core check``: the conformance kit on every available impl, as a table (exit 1: failed).

By default the checks that cost milliseconds (:data:`DEFAULT_CHECKS`) on every sample: seconds
on a small CPU. ``--full`` adds ``torch.library.opcheck`` and the torch.compile lowering, which
trace and compile every target (minutes there); ``pytest --pyargs ir_core.conformance`` always
runs everything.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import ir_core
from ir_core import conformance
from ir_core.conformance.runner import QUICK_CHECKS, Report, summary_table
from ir_core.platform import parse_dtypes

from .args import EXIT_FAILURE, EXIT_OK, UsageError, progress, split
from .format import fit, print_json, table, wrapped

#: What ``ir-core check`` runs without ``--full`` or ``--checks``.
DEFAULT_CHECKS = QUICK_CHECKS


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="conformance of every available impl against native (the kit, as a table)",
        description="Run the conformance kit on providers: numerics vs native, input mutation "
        "and supports_args on FakeTensors and symbolic shapes on every sample; with --full also "
        "torch.library.opcheck and the torch.compile lowering. Exit 1 when any check fails.",
    )
    p.add_argument(
        "--provider", action="append", metavar="P", help="provider(s) to check (default: all)"
    )
    p.add_argument("--op", action="append", metavar="OP", help="only these ops")
    p.add_argument("--dtype", action="append", metavar="T", help="only these dtypes")
    p.add_argument("--device", action="append", metavar="D", help="only these device types")
    p.add_argument(
        "--checks",
        action="append",
        metavar="NAME",
        help="only these checks: numerics, mutation, supports_args, opcheck, compile",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="every check, opcheck and compile included (minutes on a small CPU)",
    )
    p.add_argument(
        "--quick", action="store_true", help="fast subset: 3 samples, no opcheck/compile"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.full and (args.quick or args.checks):
        raise UsageError("--full runs every check: it cannot be combined with --quick or --checks")
    ir_core.load_plugins()
    providers = split(args.provider) or ir_core.registry.providers()
    checks = split(args.checks) or (None if args.full or args.quick else list(DEFAULT_CHECKS))
    try:
        dtypes = parse_dtypes(split(args.dtype)) or None
    except ValueError as exc:
        raise UsageError(f"--dtype: {exc}") from None
    shown = progress(args)
    shown.note(f"ir-core check: {', '.join(providers)}")
    try:
        report = conformance.run(
            providers,
            ops=split(args.op) or None,
            dtypes=dtypes,
            devices=split(args.device) or None,
            checks=checks,
            quick=args.quick,
            progress=shown,
        )
    except conformance.ProviderUnusable as exc:  # quarantined: a failure, not a usage error
        print(f"ir-core check: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK if report.ok else EXIT_FAILURE
    header, rows = summary_table(report)
    checked = [r for r in rows if not r[-1].startswith("skipped")]
    if checked:
        print(table(checked, header))
    else:
        print("nothing was checked: no target of these providers can run here")
    skipped = _grouped_skips(report)
    if skipped:
        print("\nnot checked:")
        for line in skipped:
            print("\n".join(wrapped(line, indent="  ")))
    if report.failures:
        print("\nfailures:")
        for r in report.failures:
            print("\n".join(fit(f"  [{r.check}] {r.message}")))
    left_out = [c for c in conformance.CHECK_NAMES if c not in report.checks]
    if left_out and not args.checks:
        print(f"\nnot run: {', '.join(left_out)} (ir-core check --full runs every check)")
    counts = report.counts()
    verdict = "OK" if report.ok else "FAILED"
    print(
        f"\n{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped in {report.seconds:.1f}s"
    )
    return EXIT_OK if report.ok else EXIT_FAILURE


def _grouped_skips(report: Report) -> list[str]:
    """Unchecked targets folded by provider and reason: 'triton: unavailable: ... (9 targets:
    dual_rms_norm, fused_add_rms_norm, rms_norm on cuda)'."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for p in report.plans:
        if p.skip:
            groups.setdefault((p.target.provider, p.skip), []).append(p.target)
    lines = []
    for (provider, reason), targets in groups.items():
        ops = ", ".join(sorted({t.op for t in targets}))
        devices = ", ".join(sorted({t.device for t in targets}))
        count = f"{len(targets)} target{'s' if len(targets) != 1 else ''}"
        lines.append(f"{provider}: {reason} ({count}: {ops} on {devices})")
    return lines
