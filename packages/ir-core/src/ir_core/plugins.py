"""The plugin layer: finding plugins, loading them lazily, and quarantining the broken ones.

Entry points of the group ``ir_core.plugins`` are read once per process. Loading happens on
first dispatch, first ``list-providers`` or an explicit :func:`load_plugins`. Each plugin's
hooks are called one plugin at a time, so one that fails to import, raises in a hook, declares
another ``api_version`` or registers a mismatched impl is quarantined alone: its registrations
are rolled back and the reason and traceback are kept for ``ir-core list-providers``.

This layer sits above the state it feeds: importing it installs :func:`load_plugins` as the
process registry's ``ensure_loaded`` hook and pushes the hooks' answers down, the
``platform_priority`` defaults to :mod:`ir_core.priority` and the ``detect_platform`` claims to
:mod:`ir_core.platform`, which never import this module.

Where things live, for whoever changes them: the loading state machine is
:func:`load_plugins` (with :func:`register_plugin` and :func:`unregister_plugin`); every call
into plugin code goes through :func:`_call_one`; and each hook's answer is read where it is
received: ``ir_plugin_info`` in :func:`_admit`, ``platform_priority`` in
:func:`_merge_priorities`, ``detect_platform`` in :func:`_platform_claims`.
"""

from __future__ import annotations

import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import importlib_metadata
import pluggy

from . import hookspecs, platform, priority
from .hookspecs import API_VERSION
from .registry import registry

ENTRY_POINT_GROUP = "ir_core.plugins"
ENV_ALLOW = "IR_CORE_PLUGINS"
ENV_DENY = "IR_CORE_DISABLE_PLUGINS"
ENV_STRICT = "IR_CORE_STRICT_PLUGINS"


class PluginLoadError(RuntimeError):
    """Raised instead of quarantining when ``IR_CORE_STRICT_PLUGINS=1``."""


@dataclass
class PluginRecord:
    """What ``ir-core list-providers`` shows about one plugin."""

    name: str
    status: str  # "loaded", "quarantined", "disabled" or "not loaded"
    display_name: str = ""
    distribution: str | None = None
    version: str | None = None
    value: str | None = None
    description: str = ""
    reason: str = ""
    traceback: str = ""
    providers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name or self.name,
            "status": self.status,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.value,
            "description": self.description,
            "providers": self.providers,
            "reason": self.reason,
            "traceback": self.traceback,
        }


class _Quarantine(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_lock = threading.RLock()
_loaded = False
_entry_points: list[importlib_metadata.EntryPoint] | None = None
_records: dict[str, PluginRecord] = {}
_plugin_priorities: dict[str, dict[str, tuple[str, ...]]] = {}

manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
manager.add_hookspecs(hookspecs)


def _env_list(name: str) -> set[str] | None:
    text = os.environ.get(name, "").strip()
    return {n.strip() for n in text.split(",") if n.strip()} if text else None


def strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


def entry_points() -> list[importlib_metadata.EntryPoint]:
    """The group's entry points, read once per process (reading them costs milliseconds)."""
    global _entry_points
    if _entry_points is None:
        _entry_points = sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
        )
    return _entry_points


def _skip_reason(name: str) -> str | None:
    allow, deny = _env_list(ENV_ALLOW), _env_list(ENV_DENY)
    if allow is not None and name not in allow:
        return f"not in {ENV_ALLOW}"
    if deny is not None and name in deny:
        return f"in {ENV_DENY}"
    return None


def _record_for(ep: importlib_metadata.EntryPoint) -> PluginRecord:
    dist = ep.dist
    return PluginRecord(
        name=ep.name,
        status="not loaded",
        distribution=dist.name if dist else None,
        version=dist.version if dist else None,
        value=ep.value,
        description=(dist.metadata["Summary"] or "") if dist else "",
    )


def list_entry_points() -> list[PluginRecord]:
    """Installed plugins without executing any of their code (``--no-load``)."""
    records = []
    for ep in entry_points():
        record = _record_for(ep)
        skip = _skip_reason(ep.name)
        if skip:
            record.status, record.reason = "disabled", skip
        records.append(record)
    return records


def load_plugins() -> None:
    """Load every installed plugin once; later calls return at once."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True  # set first: hooks may dispatch ops, which must not re-enter loading
        loaded: list[tuple[str, object]] = []
        for ep in entry_points():
            record = _record_for(ep)
            _records[ep.name] = record
            skip = _skip_reason(ep.name)
            if skip:
                record.status, record.reason = "disabled", skip
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                _quarantine(record, f"import failed: {type(exc).__name__}: {exc}")
                continue
            if _admit(record, plugin):
                loaded.append((ep.name, plugin))
        _run_registration([_records[name] for name, _ in loaded])
        _changed()


def register_plugin(plugin: object, name: str | None = None) -> PluginRecord:
    """Register a plugin object directly (tests, engines that embed a provider).

    The same checks and quarantine apply as for an installed plugin.
    """
    load_plugins()
    with _lock:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in _records and _records[name].status == "loaded":
            raise ValueError(f"a plugin named {name!r} is already loaded")
        record = PluginRecord(name=name, status="not loaded", value=repr(plugin))
        _records[name] = record
        if _admit(record, plugin):
            _run_registration([record])
        _changed()
        return record


def unregister_plugin(name: str) -> None:
    """Remove a plugin and everything it registered."""
    with _lock:
        if manager.get_plugin(name) is not None:
            manager.unregister(name=name)
        registry.remove_plugin(name)
        _records.pop(name, None)
        _changed()


def _admit(record: PluginRecord, plugin: object) -> bool:
    """Register with pluggy and check ``ir_plugin_info``; quarantine on any problem."""
    try:
        manager.register(plugin, name=record.name)
        manager.check_pending()  # a hook name no spec knows is a typo or another API version
    except Exception as exc:  # pluggy rejects unknown hooks and bad hook signatures
        _quarantine(record, f"invalid hooks: {type(exc).__name__}: {exc}")
        return False
    try:
        info = _call_one(record.name, "ir_plugin_info", {}) or {}
        if not isinstance(info, dict):
            raise _Quarantine(f"ir_plugin_info returned {type(info).__name__}, not a dict")
        version = info.get("api_version", API_VERSION)
        if version != API_VERSION:
            raise _Quarantine(
                f"built for ir_core api_version {version}, this ir_core speaks {API_VERSION}"
            )
        record.display_name = str(info.get("name") or record.name)
        record.description = str(info.get("description") or record.description)
    except Exception as exc:
        _quarantine(record, _reason(exc, "ir_plugin_info"))
        return False
    return True


def _run_registration(records: list[PluginRecord]) -> None:
    """Every plugin's ``register_ops``, then every plugin's ``register_impls``.

    Ops first for all plugins, so that a provider can implement an op another plugin declares
    (ir-provider-cuda's kernels for ir-fusions' all-reduce norms) whatever their load order.
    """
    for hook in ("register_ops", "register_impls"):
        for record in records:
            if record.status == "quarantined":
                continue
            try:
                with registry.attributed_to(record.name):
                    _call_one(record.name, hook, {"registry": registry})
            except Exception as exc:
                _quarantine(record, _reason(exc, None))
    for record in records:
        if record.status != "quarantined":
            record.status = "loaded"
            record.providers = registry.provided_by(record.name)


def _reason(exc: BaseException, hook: str | None) -> str:
    if isinstance(exc, _Quarantine):
        return exc.reason
    return f"{hook or getattr(exc, 'hook', 'a hook')} raised {type(exc).__name__}: {exc}"


def _call_one(plugin_name: str, hook: str, kwargs: dict[str, Any]) -> Any:
    """Call ``hook`` of one plugin only, so a failure is attributed to that plugin."""
    for impl in getattr(manager.hook, hook).get_hookimpls():
        if impl.plugin_name == plugin_name:
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                return impl.function(**args)
            except Exception as exc:
                exc.hook = hook  # type: ignore[attr-defined]
                raise
    return None


def _quarantine(record: PluginRecord, reason: str) -> None:
    record.status, record.reason = "quarantined", reason
    record.traceback = traceback.format_exc()
    if manager.get_plugin(record.name) is not None:
        manager.unregister(name=record.name)
    registry.remove_plugin(record.name)
    if strict():
        raise PluginLoadError(f"plugin {record.name} failed to load ({ENV_STRICT}=1): {reason}")


def records() -> list[PluginRecord]:
    """Every plugin seen, loaded or not, after loading them."""
    load_plugins()
    return list(_records.values())


def quarantined_names() -> list[str]:
    return [r.name for r in _records.values() if r.status == "quarantined"]


def call_hooks(hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call ``hook`` of every loaded plugin; one that raises is quarantined, the rest go on."""
    load_plugins()
    results = []
    for impl in getattr(manager.hook, hook).get_hookimpls():
        record = _records.get(impl.plugin_name)
        try:
            result = _call_one(impl.plugin_name, hook, kwargs)
        except Exception as exc:
            if record is not None:
                _quarantine(record, _reason(exc, hook))
                _changed()
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


def plugin_priorities() -> dict[str, tuple[str, ...]]:
    """The ``platform_priority`` answers of all plugins for this platform, merged."""
    name = platform.current_platform()
    if name not in _plugin_priorities:
        answers = call_hooks("platform_priority", platform=name)
        _plugin_priorities[name] = _merge_priorities(answers)
    return _plugin_priorities[name]


def _merge_priorities(answers: list[tuple[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The ``platform_priority`` answers, in plugin order, as one order per op."""
    merged: dict[str, tuple[str, ...]] = {}
    for _, answer in answers:
        if not isinstance(answer, dict):
            continue
        for op, providers in answer.items():
            merged[op] = tuple(dict.fromkeys((*merged.get(op, ()), *providers)))
    return merged


def _platform_claims() -> list[tuple[str, Any]]:
    """The ``detect_platform`` answers, ``(plugin, answer)`` in plugin order."""
    return call_hooks("detect_platform")


def _changed() -> None:
    _plugin_priorities.clear()
    platform.forget()
    priority.changed()


registry.set_loader(load_plugins)
priority.set_plugin_defaults(plugin_priorities, quarantined_names)
platform.set_claims_source(_platform_claims)
