"""Which release of a vendor package is installed, and whether the wrappers were checked
against it: read from the package metadata, without importing the package."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import Any

from torch.torch_version import TorchVersion

from ir_core import kit


def installed(distribution: str) -> TorchVersion | None:
    """The installed release of ``distribution`` (None when it is not installed)."""
    try:
        return TorchVersion(importlib.metadata.version(distribution))
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def package_problems(
    module: str,
    distribution: str,
    minimum: tuple[int, ...],
    below: tuple[int, ...],
    extra: str,
) -> list[str]:
    """Why ``distribution`` (imported as ``module``) cannot be used: not installed, or a release
    outside ``minimum`` ... ``below`` (not trusted: its Python layer was not checked). Empty when
    it can."""
    hint = f"(pip install 'ir-provider-cuda[{extra}]')"
    if kit.module_missing(module):
        return [f"{distribution} not installed {hint}"]
    found = installed(distribution)
    if found is not None and (found < minimum or found >= below):
        return [
            f"{distribution} {found} is outside the checked releases >= {_release(minimum)}, "
            f"< {_release(below)} {hint}"
        ]
    return []


def availability(problems: Sequence[str], vendor: kit.LazyVendor[Any]) -> tuple[bool, str]:
    """The ``available`` answer: ``(False, problems joined)`` when the machine lacks anything
    (asked on every call), else whether ``vendor`` imports (decided once)."""
    if problems:
        return False, "; ".join(problems)
    return vendor.available()
