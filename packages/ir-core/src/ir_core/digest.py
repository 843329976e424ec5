"""One digest of source code, for every cache key that must change when code does.

``ir_core.priority_hash()`` digests each selectable impl, the fusion registry each pass, the
Inductor pass ir_core's own compile modules, and ir-fusions its rules' modules: all with
:func:`source_digest`.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path


def _source_bytes(part: object) -> bytes:
    if isinstance(part, Path):
        return part.name.encode() + part.read_bytes()
    if isinstance(part, str):
        return part.encode()
    try:
        return inspect.getsource(part).encode()  # type: ignore[arg-type]
    except (OSError, TypeError):  # a builtin, a C extension, code made with exec
        module = getattr(part, "__module__", "")
        name = getattr(part, "__qualname__", None) or type(part).__qualname__
        return f"{module}.{name}".encode()


def source_digest(*parts: object) -> str:
    """The sha256 (hex) over ``parts``: a module, class or function by its source text (or, where
    it has none, its qualified name), a ``Path`` by its name and bytes, a ``str`` as it is."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_source_bytes(part))
    return digest.hexdigest()
