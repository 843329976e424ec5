"""How every ``ir-core`` command prints: tables, wrapped lines, notes, JSON.

Pure functions that return text, apart from :func:`print_json`; the commands decide what goes
to stdout (the report) and stderr (progress, one-line errors).

Text output fits the terminal: :func:`terminal_width` is its width (``COLUMNS`` when set),
100 columns when stdout is not a terminal, so a report piped to a file or a CI log reads the
same everywhere. A table wider than that wraps its widest cells; a reason too long for a cell goes
below the table as a numbered :class:`Notes` entry, one entry however many rows share it.
``--json`` is never wrapped.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

#: The width when stdout is not a terminal and ``COLUMNS`` is not set.
DEFAULT_WIDTH = 100
#: Narrower than this, wrapping does more harm than good: the lines just overflow.
MIN_WIDTH = 40
#: The narrowest a wrapped table column gets.
MIN_COLUMN = 8


def terminal_width() -> int:
    """The width text output wraps to: ``COLUMNS``, else the terminal's, else 100."""
    columns = shutil.get_terminal_size(fallback=(DEFAULT_WIDTH, 24)).columns
    return max(columns, MIN_WIDTH)


def _wrap_cell(text: str, column: int) -> list[str]:
    """One cell's lines: wrapped at spaces, a word longer than the column broken."""
    return textwrap.wrap(text, width=column, break_on_hyphens=False) or [""]


def _column_widths(natural: list[int], words: list[int], available: int) -> list[int]:
    """Each column's width: the natural ones when they fit, else the widest ones capped at the
    largest width that makes the table fit. A column keeps its longest word whole (``words``)
    while that still fits; past that, words break too. Never below :data:`MIN_COLUMN`."""
    if sum(natural) <= available:
        return natural
    for floor in (words, [0] * len(natural)):
        cap = max(natural)
        while cap > MIN_COLUMN:
            widths = [min(w, max(cap, f)) for w, f in zip(natural, floor)]
            if sum(widths) <= available:
                return widths
            cap -= 1
    return [min(w, MIN_COLUMN) for w in natural]


def table(
    rows: Sequence[Sequence[Any]], header: Sequence[str], *, max_width: int | None = None
) -> str:
    """Left-aligned columns under ``header`` and a rule, two spaces apart, at most
    ``max_width`` (default :func:`terminal_width`) wide: cells of the widest columns wrap onto
    more lines when the table would be wider."""
    limit = terminal_width() if max_width is None else max_width
    cells = [[str(c) for c in r] for r in [header, *rows]]
    natural = [max(len(r[i]) for r in cells) for i in range(len(header))]
    words = [
        max(len(word) for r in cells for word in r[i].split() or [""]) for i in range(len(header))
    ]
    widths = _column_widths(natural, words, limit - 2 * (len(header) - 1))

    def lines_of(row: list[str]) -> list[str]:
        wrapped_cells = [_wrap_cell(c, w) if len(c) > w else [c] for c, w in zip(row, widths)]
        height = max(len(c) for c in wrapped_cells)
        return [
            "  ".join(
                (c[i] if i < len(c) else "").ljust(w) for c, w in zip(wrapped_cells, widths)
            ).rstrip()
            for i in range(height)
        ]

    lines = lines_of(cells[0])
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines += lines_of(row)
    return "\n".join(lines)


def wrapped(text: str, *, indent: str, width: int | None = None) -> list[str]:
    """``text`` wrapped to ``width`` (default :func:`terminal_width`), its continuation lines two
    spaces deeper than ``indent``."""
    limit = terminal_width() if width is None else width
    return textwrap.wrap(
        text,
        width=limit,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
    ) or [indent]


def fit(text: str) -> list[str]:
    """Each line of ``text`` wrapped to :func:`terminal_width`, its continuation lines indented two
    spaces deeper than the line itself (for text ir_core formats, such as an explanation)."""
    lines: list[str] = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        lines += wrapped(body, indent=line[: len(line) - len(body)]) if body else [line]
    return lines


class Notes:
    """Numbered notes below a table: a cell says ``[1]``, the note says why, once.

    :meth:`ref` gives the same number to the same text, so a reason shared by nine rows is
    printed once and referenced nine times.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def ref(self, text: str) -> str:
        """``"[n]"`` for ``text``, numbering it on first use."""
        number = self._numbers.setdefault(text, len(self._numbers) + 1)
        return f"[{number}]"

    def __bool__(self) -> bool:
        return bool(self._numbers)

    def render(self) -> list[str]:
        """``[n] text`` per note, wrapped, continuation lines under the text."""
        lines: list[str] = []
        for text, number in self._numbers.items():
            mark = f"[{number}] "
            lines += textwrap.wrap(
                text,
                width=terminal_width(),
                initial_indent=mark,
                subsequent_indent=" " * len(mark),
                break_on_hyphens=False,
            )
        return lines


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (what ``--json`` prints)."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
