"""Progress reporting for long CLI commands (``check``, ``bench``, ``doctor``).

On a terminal a one-line bar is redrawn on stderr; anywhere else (CI logs, pipes) the bar would
be noise, so only the milestone lines a command chooses to ``note`` are printed, one per line.
stdout is left to the command's report, so ``--json`` output stays parseable.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


class Progress:
    """A bar on a TTY, plain lines elsewhere, nothing when ``enabled`` is False."""

    def __init__(
        self, total: int = 0, *, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.done = 0
        self._started = time.perf_counter()
        self._drawn = False

    def add_total(self, n: int) -> None:
        self.total += n

    def step(self, what: str = "", n: int = 1) -> None:
        """``n`` more units done; ``what`` is the unit just started or finished."""
        self.done += n
        if self.tty:
            self._draw(what)

    def note(self, line: str) -> None:
        """A milestone worth a line of its own (printed above the bar on a TTY)."""
        if not self.enabled:
            return
        if self.tty:
            self._clear()
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self._clear()

    def _draw(self, what: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        total = max(self.total, self.done, 1)
        elapsed = time.perf_counter() - self._started
        head = f"{self.done}/{total} {elapsed:5.1f}s "
        bar_width = 24
        filled = int(bar_width * self.done / total)
        bar = "[" + "#" * filled + "-" * (bar_width - filled) + "] "
        text = (bar + head + what)[: width - 1]
        self.stream.write("\r" + text.ljust(width - 1))
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + " " * (width - 1) + "\r")
            self.stream.flush()
            self._drawn = False
