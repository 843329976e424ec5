"""One declarative config: the ``[tool.ir-core]`` table, and where each setting comes from.

Engines used to pass a handful of env vars; the same settings can live in one file instead:
``[tool.ir-core]`` in the project's ``pyproject.toml`` (the first one found from the working
directory upward), or the file named by ``IR_CORE_CONFIG`` (its top level holds the keys, or
its ``[tool.ir-core]`` table when it has a ``[tool]`` table, so another ``pyproject.toml`` may
be named). Precedence, strongest first (docs/contract.md, "Configuration"): ``set_priority`` >
``configure`` > env > config file > plugin defaults > the default.

The file is read once, on first use (the first plugin load reads it, before any plugin code
runs, so its allow/deny and strict apply to that load), and again when ``IR_CORE_CONFIG``
changes; :func:`reload` reads it again after the file was edited or the working directory
changed. A bad file raises :class:`ConfigError` naming the file, the key and the line, every
time it is used, until it is fixed and reloaded.

This module sits at the bottom of the layers: it parses and type-checks, nothing more. Names of
ops and providers are checked where the registry is known (:mod:`ir_core.priority`), fusion
pass names by the compile layer. ``require`` (capability names) is parsed and reported here;
:func:`settings` ``.require`` is what the selection rule reads.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

ENV_CONFIG = "IR_CORE_CONFIG"
ENV_REFERENCE = "IR_CORE_REFERENCE"
ENV_PRIORITY = "IR_CORE_OP_PRIORITY"
ENV_ALLOW = "IR_CORE_PLUGINS"
ENV_DENY = "IR_CORE_DISABLE_PLUGINS"
ENV_STRICT = "IR_CORE_STRICT_PLUGINS"
ENV_FUSIONS = "IR_CORE_FUSIONS"
ENV_PLATFORM = "IR_CORE_PLATFORM"

#: The table of a ``pyproject.toml`` that holds the settings.
TABLE = ("tool", "ir-core")

#: Every key the file may hold, with the env var that overrides it (``require`` has none).
ENV_OF: dict[str, str | None] = {
    "priority": ENV_PRIORITY,
    "plugins": ENV_ALLOW,
    "disable-plugins": ENV_DENY,
    "strict": ENV_STRICT,
    "fusions": ENV_FUSIONS,
    "platform": ENV_PLATFORM,
    "reference": ENV_REFERENCE,
    "require": None,
}

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A config file that cannot be used: its ``path``, the ``key`` and the ``line`` (1-based;
    0 when the file is not even TOML and tomllib's message gives the position). A bad value of
    a boolean env var is one too, its ``path`` ``"environment"``."""

    def __init__(self, path: str, key: str, line: int, problem: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
        self.path, self.key, self.line = path, key, line


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config file: its ``values`` by key, checked and normalized, and the line each
    key (and each op of ``priority``, as ``"priority.<op>"``) is on. ``path`` is None when no
    file holds settings."""

    path: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """``"PATH:LINE"`` of ``key``."""
        return f"{self.path}:{self.lines.get(key, 1)}"


@dataclass(frozen=True)
class Value:
    """A setting's effective value and where it came from: ``"configure"``, ``"env NAME"``,
    ``"file PATH:LINE"`` or ``"default"``."""

    value: Any
    source: str
    #: The setting's key (for :attr:`origin`).
    key: str = field(default="", compare=False)

    @property
    def origin(self) -> str:
        """The source as error messages name it: the env var alone, ``key in PATH:LINE``."""
        if self.source.startswith("file "):
            return f"{self.key} in {self.source.removeprefix('file ')}"
        return self.source.removeprefix("env ")


@dataclass(frozen=True)
class Settings:
    """The effective settings the config file covers, but ``priority`` (per op: see
    :func:`ir_core.priority.origin`), with ``sources`` saying where each came from."""

    plugins: tuple[str, ...] | None
    disable_plugins: tuple[str, ...] | None
    strict: bool
    fusions: str
    platform: str | None
    reference: bool
    #: Capability names every selected impl must have (not yet read by dispatch).
    require: tuple[str, ...]
    sources: dict[str, str]


# -- reading the file ------------------------------------------------------------------------

_cache: tuple[str, ConfigFile | ConfigError] | None = None
_configured: dict[str, Any] = {}
_listeners: list[Callable[[], None]] = []


def find_file() -> Path | None:
    """The file to read: ``$IR_CORE_CONFIG``, else the first ``pyproject.toml`` from the
    working directory upward (None when there is none)."""
    named = os.environ.get(ENV_CONFIG, "").strip()
    if named:
        return Path(named)
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def config_file() -> ConfigFile:
    """The parsed config file (an empty one when there is none); raises :class:`ConfigError`.

    Read once per value of ``IR_CORE_CONFIG``; :func:`reload` reads it again.
    """
    global _cache
    named = os.environ.get(ENV_CONFIG, "")
    if _cache is None or _cache[0] != named:
        fresh = _cache is not None
        try:
            result: ConfigFile | ConfigError = read(find_file(), explicit=bool(named.strip()))
        except ConfigError as exc:
            result = exc
        _cache = (named, result)
        if fresh:
            _notify()
    if isinstance(_cache[1], ConfigError):
        raise _cache[1]
    return _cache[1]


def reload() -> None:
    """Read the config file again on next use (after editing it, or changing directory)."""
    global _cache
    _cache = None
    _notify()


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever settings may have changed (a reload, ``configure``)."""
    _listeners.append(listener)


def _notify() -> None:
    for listener in _listeners:
        listener()


def read(path: Path | None, *, explicit: bool = False) -> ConfigFile:
    """Parse and check ``path``. A ``pyproject.toml`` without ``[tool.ir-core]`` holds no
    settings; a file named by ``IR_CORE_CONFIG`` (``explicit``) must exist."""
    if path is None:
        return ConfigFile()
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, "", 0, f"cannot read it ({ENV_CONFIG}): {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, "", 0, f"not valid TOML: {exc}") from None
    prefix: tuple[str, ...] = ()
    if "tool" in data or not explicit:
        table = data.get("tool", {}).get("ir-core") if isinstance(data.get("tool"), dict) else None
        if table is None:
            return ConfigFile()  # a pyproject.toml, or a named file, without settings
        prefix = TABLE
    else:
        table = data
    if not isinstance(table, dict):
        raise ConfigError(name, ".".join(TABLE), _line_of(text, TABLE), "must be a table")
    return _check(name, text, prefix, table)


def _check(path: str, text: str, prefix: tuple[str, ...], table: dict[str, Any]) -> ConfigFile:
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, raw in table.items():
        line = _line_of(text, (*prefix, key))
        if key not in ENV_OF:
            raise ConfigError(path, key, line, f"unknown key; known keys: {', '.join(ENV_OF)}")
        lines[key] = line
        if key == "priority":
            values[key] = _priority(path, text, prefix, raw, line, lines)
        else:
            values[key] = _CHECKS[key](path, key, line, raw)
    return ConfigFile(path, values, lines)


# -- checking each key -----------------------------------------------------------------------


def _names(path: str, key: str, line: int, raw: Any) -> tuple[str, ...]:
    """A list of names, or one ``"a,b"`` string of them."""
    if isinstance(raw, str):
        return tuple(n.strip() for n in raw.split(",") if n.strip())
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return tuple(n.strip() for n in raw if n.strip())
    raise ConfigError(path, key, line, f"must be a list of names (strings), got {_shown(raw)}")


def _bool(path: str, key: str, line: int, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(path, key, line, f"must be true or false, got {_shown(raw)}")
    return raw


def _fusions(path: str, key: str, line: int, raw: Any) -> str:
    """The ``IR_CORE_FUSIONS`` syntax, or a list of its entries."""
    if isinstance(raw, str):
        return raw.strip()
    return ",".join(_names(path, key, line, raw))


def _platform(path: str, key: str, line: int, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(path, key, line, f"must be a platform name, got {_shown(raw)}")
    return raw.strip()


_CHECKS: dict[str, Callable[[str, str, int, Any], Any]] = {
    "plugins": _names,
    "disable-plugins": _names,
    "strict": _bool,
    "fusions": _fusions,
    "platform": _platform,
    "reference": _bool,
    "require": _names,
}


def _priority(
    path: str, text: str, prefix: tuple[str, ...], raw: Any, line: int, lines: dict[str, int]
) -> dict[str, tuple[str, ...]]:
    """``op = ["a", "b"]`` or ``op = "a,b"`` for each op."""
    if not isinstance(raw, dict):
        raise ConfigError(
            path, "priority", line, f"must be a table of op = [providers], got {_shown(raw)}"
        )
    result: dict[str, tuple[str, ...]] = {}
    for op, providers in raw.items():
        key = f"priority.{op}"
        lines[key] = op_line = _line_of(text, (*prefix, "priority", op))
        result[op] = _names(path, key, op_line, providers)
    return result


def _shown(raw: Any) -> str:
    text = repr(raw)
    return f"{type(raw).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# -- finding a key's line --------------------------------------------------------------------
#
# tomllib keeps no positions, so a key's line is found in the text: a ``[table]`` header sets
# the path of the keys below it, a ``key =`` line adds its (maybe dotted, maybe quoted) key.
# The first line whose path is the key's wins; else the line of its nearest enclosing table
# (an inline table, a multi-line array: the line that opens it); else line 1.

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGN = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"([^"]*)"|'([^']*)'""")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(m.group(1) or m.group(2) or m.group(0) for m in _PART.finditer(dotted))


def _line_of(text: str, path: tuple[str, ...]) -> int:
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            found.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            found.setdefault((*table, *_parts(assign.group(1))), number)
    for end in range(len(path), 0, -1):
        if path[:end] in found:
            return found[path[:end]]
    return 1


# -- the effective settings ------------------------------------------------------------------


def _env_names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def env_bool(name: str, text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is a
    :class:`ConfigError` naming the variable (a typo must not silently mean "off")."""
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError("environment", name, 0, f"{text!r} is not 1/true/yes/on or 0/false/no/off")


_FROM_ENV: dict[str, Callable[[str, str], Any]] = {
    "plugins": lambda name, text: _env_names(text),
    "disable-plugins": lambda name, text: _env_names(text),
    "strict": env_bool,
    "fusions": lambda name, text: text.strip(),
    "platform": lambda name, text: text.strip(),
    "reference": env_bool,
}

_DEFAULTS: dict[str, Any] = {
    "plugins": None,
    "disable-plugins": None,
    "strict": False,
    "fusions": "",
    "platform": None,
    "reference": False,
    "require": (),
}


def lookup(key: str) -> Value:
    """``key``'s effective value: ``configure`` > env > config file > default (not for
    ``priority``, whose precedence is per op)."""
    if key not in _DEFAULTS:
        raise KeyError(f"no setting {key!r}; settings: {', '.join(_DEFAULTS)}")
    if key in _configured:
        return Value(_configured[key], "configure", key)
    env = ENV_OF[key]
    text = os.environ.get(env, "") if env else ""
    if text.strip():
        return Value(_FROM_ENV[key](env, text), f"env {env}", key)
    found = config_file()
    if key in found.values:
        return Value(found.values[key], f"file {found.where(key)}", key)
    return Value(_DEFAULTS[key], "default", key)


def set_configured(key: str, value: Any) -> None:
    """What ``ir_core.configure`` set for ``key`` (None: forget it, the env and file apply)."""
    if value is None:
        _configured.pop(key, None)
    else:
        _configured[key] = value
    _notify()


def reference() -> Value:
    """Reference mode: every op runs its ``native`` impl, eager and compiled."""
    return lookup("reference")


def settings() -> Settings:
    """The effective settings, each with its source; raises :class:`ConfigError`."""
    found = {key: lookup(key) for key in _DEFAULTS}
    return Settings(
        plugins=found["plugins"].value,
        disable_plugins=found["disable-plugins"].value,
        strict=found["strict"].value,
        fusions=found["fusions"].value,
        platform=found["platform"].value,
        reference=found["reference"].value,
        require=found["require"].value,
        sources={key: value.source for key, value in found.items()},
    )
