"""``ir-core list-providers``: providers and plugins, with their status and reasons."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import ir_core
from ir_core import plugins
from ir_core.platform import detect

from .args import EXIT_FAILURE, EXIT_OK
from .format import Notes, print_json, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list-providers", help="providers and plugins, with status and reasons")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-load",
        action="store_true",
        help="list installed entry points without executing plugin code",
    )
    p.set_defaults(func=run)


def provider_rows() -> list[dict[str, Any]]:
    """One row per provider: where it comes from, its status, and the ops it implements."""
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


def run(args: argparse.Namespace) -> int:
    if args.no_load:
        return _entry_points(args)
    try:
        records = plugins.records()
    except ir_core.PluginLoadError as exc:
        print(f"ir-core: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    platform, source = detect()
    providers = provider_rows()
    if args.json:
        print_json(
            {
                "platform": platform,
                "platform_source": source,
                "providers": providers,
                "plugins": [r.to_dict() for r in records],
            }
        )
        return EXIT_OK
    print(f"platform: {platform} (from {source})\n")
    notes = Notes()
    print(
        table(
            [
                (
                    r["provider"],
                    r["plugin"],
                    "available" if r["available"] else f"unavailable {notes.ref(r['reason'])}",
                    ", ".join(r["device_types"]),
                    ", ".join(r["ops"]),
                )
                for r in providers
            ],
            ("provider", "plugin", "status", "devices", "ops"),
        )
    )
    print()
    if records:
        print(
            table(
                [
                    (
                        r.name,
                        f"{r.distribution or '-'} {r.version or ''}".strip(),
                        r.status,
                        f"{r.load_seconds:.2f}s" if r.status in ("loaded", "quarantined") else "",
                        _why(r, notes),
                    )
                    for r in records
                ],
                ("plugin", "distribution", "status", "load", "reason / description"),
            )
        )
    else:
        print("no plugins installed (entry-point group ir_core.plugins)")
    if notes:
        print()
        print("\n".join(notes.render()))
    return EXIT_OK


def _why(record: plugins.PluginRecord, notes: Notes) -> str:
    """The plugin's clashes or the reason it is not loaded (as notes), else its description."""
    problems = [*record.clashes, *([record.reason] if record.reason else [])]
    if problems:
        return " ".join(notes.ref(p) for p in problems)
    return record.description


def _entry_points(args: argparse.Namespace) -> int:
    """``--no-load``: what is installed, without executing any plugin code."""
    records = plugins.list_entry_points()
    if args.json:
        print_json({"plugins": [r.to_dict() for r in records]})
        return EXIT_OK
    print(
        table(
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
