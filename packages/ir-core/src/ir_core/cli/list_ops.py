"""``ir-core list-ops``: ops, their schemas, impls and priorities."""

from __future__ import annotations

import argparse
from typing import Any

import ir_core
from ir_core.priority import resolve

from .args import EXIT_OK
from .format import print_json, table, wrapped


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list-ops", help="ops, their schemas, impls and priorities")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ir_core.load_plugins()
    ops = [
        {
            "op": op.name,
            "schema": str(op.torch_op._schema) if op.torch_op is not None else "",
            "declared_by": op.plugin or "ir_core",
            "providers": list(op.impls),
            "capabilities": {
                name: sorted(impl.capabilities)
                for name, impl in op.impls.items()
                if impl.capabilities
            },
            "priority": list(resolve(op.name)),
        }
        for op in sorted(ir_core.registry.ops(), key=lambda o: o.name)
    ]
    if args.json:
        print_json({"ops": ops})
        return EXIT_OK
    print(
        table(
            [
                (o["op"], o["declared_by"], ", ".join(o["providers"]), ", ".join(o["priority"]))
                for o in ops
            ],
            ("op", "declared by", "impls", "priority"),
        )
    )
    print()
    for o in ops:
        print("\n".join(wrapped(o["schema"], indent="  ")))
    return EXIT_OK
