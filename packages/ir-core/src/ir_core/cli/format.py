"""How every ``ir-core`` command prints: tables, wrapped lines, JSON.

Pure functions that return text, apart from :func:`print_json`; the commands decide what goes
to stdout (the report) and stderr (progress, one-line errors).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

#: Where long lines are wrapped.
WIDTH = 100


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Left-aligned columns under ``header`` and a rule, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def wrapped(text: str, *, indent: str, width: int = WIDTH) -> list[str]:
    """``text`` wrapped to ``width``, its continuation lines two spaces deeper than ``indent``."""
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  "
    ) or [indent]


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (what ``--json`` prints)."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
