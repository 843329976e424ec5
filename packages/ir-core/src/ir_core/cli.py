"""The ``ir-core`` command line: what is installed, what will run, and why.

Exit codes: 0 ok, 1 a failure (a strict plugin load failed, a check failed), 2 usage error.
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


# -- entry point -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ir-core",
        description="Inspect ir-core ops, providers and dispatch decisions.",
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
