"""The ``ir-core`` command line: what is installed, what will run, and why; whether it is right
(``check``), how fast (``bench``), the whole picture (``doctor``), and a new provider's
skeleton (``new-provider``).

Exit codes: 0 ok, 1 a failure (a strict plugin load failed, a check failed), 2 usage error.
Progress goes to stderr (a bar on a terminal, plain lines elsewhere); reports go to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


class UsageError(Exception):
    """Bad command-line input detected after argparse (exit code 2)."""


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


# -- list-providers --------------------------------------------------------------------------


def provider_rows() -> list[dict[str, Any]]:
    """One row per provider: where it comes from, its status, and the ops it implements."""
    import ir_core

    by_provider: dict[str, dict[str, Any]] = {}
    for op in ir_core.registry.ops():
        for name, impl in op.impls.items():
            row = by_provider.setdefault(
                name,
                {
                    "provider": name,
                    "plugin": impl.plugin or "ir_core",
                    "ops": [],
                    "device_types": set(),
                    "available": True,
                    "reason": "",
                },
            )
            row["ops"].append(op.name)
            row["device_types"] |= set(impl.device_types or {"any"})
            ok, reason = impl.status()
            if not ok and row["available"]:
                row["available"], row["reason"] = False, reason
    rows = sorted(by_provider.values(), key=lambda r: (r["provider"] != "native", r["provider"]))
    for row in rows:
        row["device_types"] = sorted(row["device_types"])
        row["status"] = "available" if row["available"] else f"unavailable: {row['reason']}"
    return rows


def cmd_list_providers(args: argparse.Namespace) -> int:
    import ir_core
    from ir_core import discovery
    from ir_core.platform import detect

    if args.no_load:
        records = discovery.list_entry_points()
        if args.json:
            _print_json({"plugins": [r.to_dict() for r in records]})
        else:
            print(
                _table(
                    [
                        (
                            r.name,
                            r.distribution or "",
                            r.version or "",
                            r.value or "",
                            r.status if r.status == "disabled" else "not loaded (--no-load)",
                        )
                        for r in records
                    ],
                    ("plugin", "distribution", "version", "entry point", "status"),
                )
            )
        return EXIT_OK
    try:
        records = discovery.records()
    except ir_core.PluginLoadError as exc:
        print(f"ir-core: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    platform, source = detect()
    providers = provider_rows()
    if args.json:
        _print_json(
            {
                "platform": platform,
                "platform_source": source,
                "providers": providers,
                "plugins": [r.to_dict() for r in records],
            }
        )
        return EXIT_OK
    print(f"platform: {platform} (from {source})\n")
    print(
        _table(
            [
                (
                    r["provider"],
                    r["plugin"],
                    r["status"],
                    ",".join(r["device_types"]),
                    ",".join(r["ops"]),
                )
                for r in providers
            ],
            ("provider", "plugin", "status", "devices", "ops"),
        )
    )
    print()
    if records:
        print(
            _table(
                [
                    (
                        r.name,
                        f"{r.distribution or '-'} {r.version or ''}".strip(),
                        r.status,
                        r.reason or r.description,
                    )
                    for r in records
                ],
                ("plugin", "distribution", "status", "reason / description"),
            )
        )
    else:
        print("no plugins installed (entry-point group ir_core.plugins)")
    return EXIT_OK


# -- list-ops --------------------------------------------------------------------------------


def cmd_list_ops(args: argparse.Namespace) -> int:
    import ir_core
    from ir_core.priority import resolve

    ir_core.load_plugins()
    ops = [
        {
            "op": op.name,
            "schema": str(op.torch_op._schema) if op.torch_op is not None else "",
            "declared_by": op.plugin or "ir_core",
            "providers": list(op.impls),
            "priority": list(resolve(op.name)),
        }
        for op in sorted(ir_core.registry.ops(), key=lambda o: o.name)
    ]
    if args.json:
        _print_json({"ops": ops})
    else:
        print(
            _table(
                [
                    (o["op"], o["declared_by"], ",".join(o["providers"]), ",".join(o["priority"]))
                    for o in ops
                ],
                ("op", "declared by", "impls", "priority"),
            )
        )
        print()
        for o in ops:
            print(f"  {o['schema']}")
    return EXIT_OK


# -- explain ---------------------------------------------------------------------------------


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        n, h = (int(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"--shape expects N,H (two integers), got {text!r}") from None
    if n < 0 or h < 1:
        raise UsageError(f"--shape needs N >= 0 and H >= 1, got {text!r}")
    return n, h


def cmd_explain(args: argparse.Namespace) -> int:
    import torch

    import ir_core
    from ir_core.dispatch import explain

    ir_core.load_plugins()
    try:
        op = ir_core.get_op(args.op)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    dtype_name = _DTYPES.get(args.dtype.lower())
    if dtype_name is None:
        raise UsageError(f"--dtype must be one of {', '.join(sorted(_DTYPES))}, got {args.dtype!r}")
    n, h = _parse_shape(args.shape)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from None
    stand_in = not _device_usable(device)
    sample = op.example_inputs(n, h, getattr(torch, dtype_name), "meta" if stand_in else device)
    result = explain(op, *sample.args, device_type=device.type, **sample.kwargs)
    data = {
        **result.to_dict(),
        "device": str(device),
        "dtype": dtype_name,
        "shape": [n, h],
        "stand_in_tensors": "meta" if stand_in else None,
    }
    if args.json:
        _print_json(data)
    else:
        print(result)
        if stand_in:
            print(f"  (no {device.type} device here: arguments were meta tensors standing in)")
    return EXIT_OK


def _device_usable(device: Any) -> bool:
    import torch

    try:
        torch.empty(1, device=device)
    except Exception:
        return False
    return True


# -- check -----------------------------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for given in values or [] for v in given.split(",") if v.strip()]


def _progress(args: argparse.Namespace) -> Any:
    from ir_core.progress import Progress

    return Progress(enabled=not getattr(args, "quiet", False))


def cmd_check(args: argparse.Namespace) -> int:
    import ir_core
    from ir_core import conformance
    from ir_core.conformance.runner import summary_table
    from ir_core.conformance.targets import parse_dtypes

    ir_core.load_plugins()
    providers = _split(args.provider) or ir_core.registry.providers()
    try:
        dtypes = parse_dtypes(_split(args.dtype)) or None
    except ValueError as exc:
        raise UsageError(f"--dtype: {exc}") from None
    progress = _progress(args)
    progress.note(f"ir-core check: {', '.join(providers)}")
    try:
        report = conformance.run(
            providers,
            ops=_split(args.op) or None,
            dtypes=dtypes,
            devices=_split(args.device) or None,
            checks=_split(args.checks) or None,
            quick=args.quick,
            progress=progress,
        )
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if args.json:
        _print_json(report.to_dict())
        return EXIT_OK if report.ok else EXIT_FAILURE
    header, rows = summary_table(report)
    checked = [r for r in rows if not r[-1].startswith("skipped")]
    if checked:
        print(_table([r for r in checked], header))
    else:
        print("nothing was checked: no target of these providers can run here")
    skipped = _grouped_skips(report)
    if skipped:
        import textwrap

        print("\nnot checked:")
        for line in skipped:
            print(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    "))
    if report.failures:
        print("\nfailures:")
        for r in report.failures:
            print(f"  [{r.check}] {r.message}")
    counts = report.counts()
    verdict = "OK" if report.ok else "FAILED"
    print(
        f"\n{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped in {report.seconds:.1f}s"
    )
    return EXIT_OK if report.ok else EXIT_FAILURE


def _grouped_skips(report: Any) -> list[str]:
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


# -- bench -----------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    import ir_core
    from ir_core.bench import bench_op, default_shape, table_rows, untimed_lines
    from ir_core.platform import current_platform

    ir_core.load_plugins()
    try:
        op = ir_core.get_op(args.op)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    dtype_name = _DTYPES.get(args.dtype.lower())
    if dtype_name is None:
        raise UsageError(f"--dtype must be one of {', '.join(sorted(_DTYPES))}, got {args.dtype!r}")
    if args.device:
        try:
            device = torch.device(args.device)
        except RuntimeError as exc:
            raise UsageError(f"--device: {exc}") from None
    else:
        device = torch.device(_platform_device(current_platform()))
    if not _device_usable(device):
        raise UsageError(f"--device {device}: no such device on this machine")
    n, h = _parse_shape(args.shape) if args.shape else default_shape(device.type)
    if args.min_time <= 0:
        raise UsageError("--min-time must be > 0")
    progress = _progress(args)
    progress.note(f"ir-core bench {op.name}: shape {n},{h} {dtype_name} on {device}")
    rows = bench_op(
        op,
        num_tokens=n,
        hidden_size=h,
        dtype=getattr(torch, dtype_name),
        device=str(device),
        min_time=args.min_time,
        progress=progress,
    )
    failed = any(r.status == "failed" or r.matches_native is False for r in rows)
    if args.json:
        _print_json(
            {
                "op": op.name,
                "shape": [n, h],
                "dtype": dtype_name,
                "device": str(device),
                "impls": [r.to_dict() for r in rows],
            }
        )
    else:
        import textwrap

        header, body = table_rows(rows)
        print(f"{op.name}  shape {n},{h}  {dtype_name}  on {device}\n")
        print(_table(body, header) if body else "no impl could be timed")
        untimed = untimed_lines(rows)
        if untimed:
            print("\nnot timed:")
            for line in untimed:
                print(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    "))
        print(
            "\nmedian of repeated calls; GB/s counts each argument read once and each output "
            "written once"
        )
    return EXIT_FAILURE if failed else EXIT_OK


def _platform_device(platform: str) -> str:
    """The torch device type a platform's kernels run on."""
    return {"cuda": "cuda", "rocm": "cuda", "xpu": "xpu", "cpu": "cpu"}.get(platform, platform)


# -- doctor ----------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from ir_core import doctor

    if args.budget is None:
        args.budget = doctor.DEFAULT_BUDGET_S
    elif args.budget < 0:
        raise UsageError("--budget must be >= 0")
    progress = _progress(args)
    report = doctor.collect(
        quick_check=not args.no_check,
        blocks=not args.no_blocks,
        blocks_path=args.blocks,
        budget_s=args.budget,
        progress=progress,
    )
    if args.json:
        _print_json(report)
    else:
        print(doctor.render(report))
    return EXIT_OK if report["ok"] else EXIT_FAILURE


# -- new-provider ----------------------------------------------------------------------------


def cmd_new_provider(args: argparse.Namespace) -> int:
    from ir_core.kit.scaffold import ScaffoldError, names_for, scaffold

    try:
        root = scaffold(args.name, args.output)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    names = names_for(args.name)
    print(
        f"created {root}/ ({names['dist']}, provider {names['name']!r}, import {names['module']})"
    )
    print("next:")
    print(f"  pip install -e '{root}[test]'")
    print(f"  pytest {root}/tests    # runs the conformance kit on {names['name']}")
    print(f"  ir-core check --provider {names['name']}")
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ir-core",
        description="Inspect ir-core ops, providers and dispatch decisions; check, benchmark "
        "and diagnose them; scaffold a provider.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage error",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list-providers", help="providers and plugins, with status and reasons")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-load",
        action="store_true",
        help="list installed entry points without executing plugin code",
    )
    p.set_defaults(func=cmd_list_providers)

    p = sub.add_parser("list-ops", help="ops, their schemas, impls and priorities")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list_ops)

    p = sub.add_parser("explain", help="which impl an op would run, and why the others would not")
    p.add_argument("op", help="op name, e.g. rms_norm")
    p.add_argument("--device", default="cpu", help="device to dispatch for (default: cpu)")
    p.add_argument("--dtype", default="bfloat16", help="activation dtype (default: bfloat16)")
    p.add_argument("--shape", default="4,4096", help="N,H: tokens and hidden size (default 4,4096)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "check",
        help="conformance of every available impl against native (the kit, as a table)",
        description="Run the conformance kit (numerics vs native, input mutation, supports_args "
        "on FakeTensors and symbolic shapes, torch.library.opcheck, torch.compile lowering) "
        "on providers. Exit 1 when any check fails.",
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
        "--quick", action="store_true", help="fast subset: 3 samples, no opcheck/compile"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="time every impl of an op side by side")
    p.add_argument("op", help="op name, e.g. rms_norm")
    p.add_argument(
        "--shape",
        default=None,
        help="N,H: tokens and hidden size (default 256,4096 on cpu, 4096,4096 on cuda)",
    )
    p.add_argument("--dtype", default="bfloat16", help="activation dtype (default: bfloat16)")
    p.add_argument("--device", default=None, help="device (default: the platform's)")
    p.add_argument(
        "--min-time", type=float, default=0.2, help="seconds to time each impl (default 0.2)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "doctor",
        help="the whole picture of this machine: platform, plugins, dispatch, quick check",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-check", action="store_true", help="skip the quick conformance check")
    p.add_argument(
        "--no-blocks", action="store_true", help="skip the decoder blocks (eager vs compiled)"
    )
    p.add_argument(
        "--blocks",
        default=None,
        metavar="PATH",
        help="path of decoder_blocks.py (default: examples/decoder_blocks.py, found from the "
        "working directory or the ir-core source tree)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no decoder-block compile after this many seconds (default 30)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("new-provider", help="scaffold a provider package that passes the kit")
    p.add_argument("name", help="provider name, a lowercase identifier (e.g. myvendor)")
    p.add_argument("--output", default=".", metavar="DIR", help="where to create ir-provider-NAME/")
    p.set_defaults(func=cmd_new_provider)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    except Exception as exc:  # failures the user should see in one line, not a traceback
        from ir_core import PluginLoadError, PriorityError

        if isinstance(exc, (PluginLoadError, PriorityError)):
            print(f"ir-core: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        raise
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
