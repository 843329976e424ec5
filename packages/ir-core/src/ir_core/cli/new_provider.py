"""``ir-core new-provider NAME``: a provider package that passes the conformance kit as made."""

from __future__ import annotations

import argparse
from typing import Any

from ir_core.kit.scaffold import ScaffoldError, names_for, scaffold

from .args import EXIT_OK, UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("new-provider", help="scaffold a provider package that passes the kit")
    p.add_argument("name", help="provider name, a lowercase identifier (e.g. myvendor)")
    p.add_argument("--output", default=".", metavar="DIR", help="where to create ir-provider-NAME/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    print(f"  cd {root} && tox -e torch2.13    # the same on one torch release (tox.ini)")
    return EXIT_OK
