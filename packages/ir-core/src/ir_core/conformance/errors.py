"""The verdicts a conformance check gives besides passing (kept apart so that every module of
the kit can raise them without importing the checks)."""

from __future__ import annotations


class CheckFailed(AssertionError):
    """The impl broke the contract; the message says how."""


class CheckSkipped(Exception):
    """The check does not apply here; the message says why."""
