"""What the commands share besides printing: exit codes, usage errors, argument parsing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

import ir_core
from ir_core.platform import DTYPE_NAMES
from ir_core.progress import Progress

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input detected after argparse (exit code 2)."""


def parse_op(name: str) -> ir_core.Op:
    """The op called ``name``, plugins loaded (their fused ops count); unknown: a usage error."""
    ir_core.load_plugins()
    try:
        return ir_core.get_op(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def parse_shape(text: str) -> tuple[int, int]:
    """``"N,H"`` -> ``(N, H)`` with N >= 0 and H >= 1."""
    try:
        n, h = (int(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"--shape expects N,H (two integers), got {text!r}") from None
    if n < 0 or h < 1:
        raise UsageError(f"--shape needs N >= 0 and H >= 1, got {text!r}")
    return n, h


def parse_dtype(text: str) -> torch.dtype:
    """``--dtype`` (``bf16``, ``float32``, ...) -> the dtype."""
    dtype = DTYPE_NAMES.get(text.lower())
    if dtype is None:
        names = ", ".join(sorted(DTYPE_NAMES))
        raise UsageError(f"--dtype must be one of {names}, got {text!r}")
    return dtype


def parse_device(text: str) -> torch.device:
    try:
        return torch.device(text)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from None


def split(values: Sequence[str] | None) -> list[str]:
    """An option given several times and/or comma-separated, as one list."""
    return [v.strip() for given in values or [] for v in given.split(",") if v.strip()]


def progress(args: argparse.Namespace) -> Progress:
    """Progress on stderr, unless ``-q``."""
    return Progress(enabled=not getattr(args, "quiet", False))
