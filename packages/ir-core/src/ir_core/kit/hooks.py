"""The bodies every provider plugin's hooks share: its info, a table of impls, its priorities.

A provider's ``plugin.py`` stays a list of facts (which kernel implements which op on which
devices, which order per platform); these helpers turn the facts into the hook answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..hookspecs import API_VERSION

#: One row of a provider's impl table: ``(fn, supports_args)``, or
#: ``(fn, supports_args, available)`` when this op's availability differs from the provider's.
ImplRow = tuple[Any, ...]


def impls_of(module: Any, *ops: str) -> dict[str, ImplRow]:
    """The impl table of a provider module that follows the naming convention: for each op,
    the impl ``module.<op>``, its predicate ``module.<op>_supports`` (None when absent) and,
    when the module has one, the op's own availability check ``module.available_<op>``."""
    table: dict[str, ImplRow] = {}
    for op in ops:
        row = (getattr(module, op), getattr(module, f"{op}_supports", None))
        own = getattr(module, f"available_{op}", None)
        table[op] = (*row, own) if own is not None else row
    return table


def plugin_info(name: str, description: str) -> dict[str, Any]:
    """The ``ir_plugin_info`` answer: ``name``, this ir-core's ``api_version``, ``description``."""
    return {"name": name, "api_version": API_VERSION, "description": description}


def register_impls(
    registry: Any,
    provider: str,
    impls: Mapping[str, ImplRow],
    *,
    device_types: Iterable[str],
    available: bool | Callable[[], tuple[bool, str]] = True,
    capabilities: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """``registry.register_impl`` for each ``op: (fn, supports_args[, available])`` of ``impls``.

    ``device_types`` and ``available`` apply to every row; a row's third item overrides
    ``available`` for that op (a library release may lack one entry point). ``capabilities``
    maps an op of ``impls`` to the tags its kernel promises (``{"rms_norm":
    {"batch_invariant"}}``); an op it does not name promises none.
    """
    devices = tuple(device_types)
    tags = dict(capabilities or {})
    stray = sorted(set(tags) - set(impls))
    if stray:
        raise ValueError(f"{provider}: capabilities name ops without an impl: {', '.join(stray)}")
    for op, (fn, supports, *own) in impls.items():
        registry.register_impl(
            op,
            provider,
            fn,
            device_types=devices,
            supports_args=supports,
            available=own[0] if own else available,
            capabilities=tags.get(op, ()),
        )


def priorities_for(
    platform: str, by_platform: Mapping[str, Mapping[str, Sequence[str]]]
) -> dict[str, list[str]] | None:
    """The ``platform_priority`` answer: a fresh copy of ``by_platform[platform]``, or None when
    the plugin has no opinion on that platform."""
    orders = by_platform.get(platform)
    if orders is None:
        return None
    return {op: list(order) for op, order in orders.items()}
