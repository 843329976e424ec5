"""The ``ir-core`` command line: what is installed, what will run, and why; whether it is right
(``check``), how fast (``bench``), the whole picture (``doctor``), and a new provider's
skeleton (``new-provider``).

One module per command (``list_providers``, ``list_ops``, ``explain``, ``check``, ``bench``,
``doctor``, ``config``, ``new_provider``), each with ``add_parser(sub)`` and
``run(args) -> int``; what they share is in :mod:`.format` (tables, wrapping, JSON) and
:mod:`.args` (exit codes, usage errors, argument parsing). The package uses ir_core's public
API only, and nothing in ir_core imports it. A new command: a module here with those two
functions, and one entry in :data:`COMMANDS`.

Exit codes: 0 ok, 1 a failure (a strict plugin load failed, a check failed, a bad config
file), 2 usage error.
Progress goes to stderr (a bar on a terminal, plain lines elsewhere); reports go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import ir_core

from . import bench, check, config, doctor, explain, list_ops, list_providers, new_provider
from .args import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

#: Every command, in the order ``ir-core --help`` lists them.
COMMANDS = (list_providers, list_ops, explain, check, bench, doctor, config, new_provider)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ir-core",
        description="Inspect ir-core ops, providers and dispatch decisions; check, benchmark "
        "and diagnose them; scaffold a provider.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage error",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    except (ir_core.PluginLoadError, ir_core.PriorityError, ir_core.ConfigError) as exc:
        # failures the user should see in one line, not a traceback
        print(f"ir-core: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
