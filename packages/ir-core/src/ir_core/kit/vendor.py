"""Vendor libraries loaded lazily, once, with the reason when they cannot be.

A provider must not import its kernel library when its plugin loads: a missing or broken
library has to make the provider "unavailable: <reason>", not quarantine the whole plugin, and
the import may cost seconds (JIT builds, CUDA context). So each provider module holds one
:class:`LazyVendor`: its ``available`` check loads the library the first time ir-core considers
the provider, its ``supports_args`` reads what was loaded without loading anything
(:meth:`LazyVendor.loaded`), and its impls ask for the library or an error that says why
(:meth:`LazyVendor.require`). Decided once per process, whatever the thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class LazyVendor(Generic[T]):
    """One provider's vendor library (a module, a probed API object...), loaded on first use.

    ``load`` returns ``(library, "")`` or ``(None, reason)`` and should not raise: every way an
    import can fail is a reason (see :func:`import_module`). ``problems``, when given, is asked
    first and returns what this machine lacks (checked without importing anything); when it
    names anything, ``load`` is never called and the reason is those problems, joined by "; ".
    """

    __slots__ = ("_load", "_lock", "_problems", "_result", "provider")

    def __init__(
        self,
        provider: str,
        load: Callable[[], tuple[T | None, str]],
        *,
        problems: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.provider = provider
        self._load = load
        self._problems = problems
        self._lock = threading.Lock()
        self._result: tuple[T | None, str] | None = None

    def load(self) -> tuple[T | None, str]:
        """``(library, "")`` when it is usable here, else ``(None, reason)``; decided once."""
        if self._result is None:
            with self._lock:
                if self._result is None:
                    found = list(self._problems()) if self._problems is not None else []
                    self._result = (None, "; ".join(found)) if found else self._load()
        return self._result

    def loaded(self) -> T | None:
        """The library if :meth:`load` already ran and succeeded; never imports anything.

        For ``supports_args``: ir-core evaluates availability (which loads the library) before
        it asks a predicate, and a predicate must not import libraries.
        """
        result = self._result
        return result[0] if result is not None else None

    def available(self) -> tuple[bool, str]:
        """The ``available`` check of ``registry.register_impl``: ``(usable, reason)``."""
        library, reason = self.load()
        return library is not None, reason

    def require(self) -> T:
        """The library, for an impl; a RuntimeError naming the provider and the reason when it
        is unusable (ir-core never dispatches to an unavailable provider, so this is a direct
        call's error)."""
        library, reason = self.load()
        if library is None:
            raise RuntimeError(f"the {self.provider} provider is unavailable: {reason}")
        return library

    def __repr__(self) -> str:
        state = "not loaded" if self._result is None else (self._result[1] or "loaded")
        return f"<LazyVendor {self.provider}: {state}>"


def import_module(
    name: str, importer: Callable[[str], ModuleType] = importlib.import_module
) -> tuple[ModuleType | None, str]:
    """Import ``name``: ``(module, "")``, or ``(None, "import NAME failed (Type: message)")``.

    Every exception counts: vendor imports fail with RuntimeError (no ROCm), OSError (a missing
    shared library), AttributeError (built for another torch), not only ImportError.
    ``importer`` stands in for :func:`importlib.import_module` in tests.
    """
    try:
        return importer(name), ""
    except Exception as exc:
        return None, f"import {name} failed ({type(exc).__name__}: {exc})"


def module_missing(name: str) -> bool:
    """True when ``name`` cannot be found, without importing it (its parents may be imported)."""
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a missing parent package ("cuda" of "cuda.bindings")
        return True


def nvidia_gpu_problems(
    library: str, min_capability: tuple[int, int], *, needs: str | None = None
) -> list[str]:
    """Why this process has no NVIDIA GPU of ``min_capability`` for ``library`` (empty if it has).

    ``needs`` names what requires the capability in the message (default: ``library``).
    """
    if torch.version.hip is not None:
        return [f"ROCm build of torch: {library} supports NVIDIA GPUs only"]
    if not torch.cuda.is_available():
        return ["no CUDA device"]
    capability = torch.cuda.get_device_capability()
    if capability < min_capability:
        return [
            f"CUDA device has compute capability {capability[0]}.{capability[1]}; "
            f"{needs or library} needs {min_capability[0]}.{min_capability[1]} or newer"
        ]
    return []
