"""The verdicts a conformance check gives besides passing (kept apart so that every module of
the kit can raise them without importing the checks)."""

from __future__ import annotations


class CheckFailed(AssertionError):
    """The impl broke the contract; the message says how."""


class CheckSkipped(Exception):
    """The check does not apply here; the message says why."""


class ProviderUnusable(Exception):
    """The provider to check has no impl because its plugin is quarantined (or its impls clash
    with another plugin's): a failure, not a usage error; the message has the reason."""
