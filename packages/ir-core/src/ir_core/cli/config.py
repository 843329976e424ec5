"""``ir-core config``: the effective settings and where each one came from.

Sources, strongest first: ``set_priority`` > ``configure`` > ``env NAME`` > ``file PATH:LINE``
(``[tool.ir-core]`` or ``$IR_CORE_CONFIG``) > ``plugin defaults`` > ``default``. A bad config
file is one line naming its path, key and line, and exit 1 (``main`` reports the
:class:`ir_core.ConfigError`).
"""

from __future__ import annotations

import argparse
from typing import Any

import ir_core
from ir_core.config import config_file, settings
from ir_core.platform import detect
from ir_core.priority import origin, resolve

from .args import EXIT_OK
from .format import print_json, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("config", help="the effective settings and where each came from")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _shown(value: Any) -> Any:
    """A setting's value as JSON holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _platform_source(how: str) -> str:
    """:func:`ir_core.platform.detect`'s answer in this command's source words."""
    if how == "torch":
        return "default (detected by torch)"
    if how.startswith("detect_platform hook"):
        return f"plugin defaults ({how})"
    return how


def collect() -> dict[str, Any]:
    """``{"file": path or None, "settings": [{"key", "value", "source"}, ...]}``."""
    ir_core.load_plugins()  # reads the config file first: a bad one raises here
    current = settings()
    rows: list[dict[str, Any]] = []
    for key, attribute in (
        ("plugins", "plugins"),
        ("disable-plugins", "disable_plugins"),
        ("strict", "strict"),
        ("fusions", "fusions"),
        ("reference", "reference"),
        ("require", "require"),
    ):
        value = getattr(current, attribute)
        rows.append({"key": key, "value": _shown(value), "source": current.sources[key]})
    name, how = detect()
    source = current.sources["platform"]
    rows.append(
        {
            "key": "platform",
            "value": name,
            "source": source if current.platform else _platform_source(how),
        }
    )
    for op in sorted(ir_core.registry.ops(), key=lambda o: o.name):
        rows.append(
            {
                "key": f"priority.{op.name}",
                "value": list(resolve(op.name)),
                "source": origin(op.name),
            }
        )
    return {"file": config_file().path, "settings": rows}


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    if value is None or value == "":
        return "(none)" if key == "disable-plugins" else "(all)"
    return str(value)


def run(args: argparse.Namespace) -> int:
    data = collect()
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"config file: {data['file'] or 'none (no [tool.ir-core] found, IR_CORE_CONFIG unset)'}")
    rows = [(r["key"], _text(r["key"], r["value"]), r["source"]) for r in data["settings"]]
    print(table(rows, ("setting", "value", "source")))
    return EXIT_OK
