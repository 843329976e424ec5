"""The plugin layer: finding plugins, loading them, and quarantining the broken ones.

Entry points of the group ``ir_core.plugins`` are read once per process. Loading happens on
first dispatch, first ``list-providers`` or an explicit :func:`load_plugins`, once, completely
and in this order: import each plugin, check ``ir_plugin_info``, every plugin's
``register_ops``, every plugin's ``register_impls``, then the hooks whose answers ir_core keeps
(``detect_platform``, ``platform_priority`` for the platform, and the load steps of the layers
above: the compile layer's ``register_fusion_passes``). Asking those at load, not when a
dispatch or a compile first needs them, is what makes ``ir-core list-providers`` and strict
mode say what dispatch will do.

The host's promises (docs/provider-api.md, "What the host guarantees"), and where each is kept:

- every call into plugin code goes through :func:`_run`, which turns any exception but
  ``KeyboardInterrupt`` (``SystemExit`` included) into a quarantine of that plugin alone: its
  registrations are rolled back, the reason and traceback kept for ``list-providers``;
- every hook's answer is checked once, where it is received: ``ir_plugin_info`` in
  :func:`_admit`, ``platform_priority`` in :func:`_priority_table` (merged by
  :func:`_merge_priorities`), ``detect_platform`` in :func:`_platform_name` (kept for
  :func:`_platform_claims`). Garbage quarantines the plugin; it never reaches the hot path;
- distribution metadata is read with every field optional (:func:`_dist_fields`);
- the loading state machine is :func:`load_plugins` (with :func:`register_plugin` and
  :func:`unregister_plugin`): under one lock, so a thread that asks while another loads waits
  for the whole load; in strict mode a failed load fails every later call too;
- two plugins registering one provider for one op are a *clash* (``Registry.clashes``): neither
  impl is used, both records say so and how to resolve it; two distributions declaring one
  entry-point name: the first found on ``sys.path`` loads, the second is quarantined.

This layer sits above the state it feeds: importing it installs :func:`load_plugins` as the
process registry's ``ensure_loaded`` hook and pushes the hooks' answers down, the
``platform_priority`` defaults and why a provider has no impl (:func:`absence_reason`) to
:mod:`ir_core.priority` and the ``detect_platform`` claims to :mod:`ir_core.platform`, which
never import this module.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import importlib_metadata
import pluggy

from . import config, hookspecs, platform, priority
from .hookspecs import API_VERSION
from .op import NATIVE
from .registry import registry

ENTRY_POINT_GROUP = "ir_core.plugins"
ENV_ALLOW = config.ENV_ALLOW
ENV_DENY = config.ENV_DENY
ENV_STRICT = config.ENV_STRICT

#: A plugin whose import and hooks take longer than this (seconds) is warned about at load.
SLOW_LOAD_S = 2.0

logger = logging.getLogger("ir_core")


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
    #: Seconds spent importing the plugin and running its hooks.
    load_seconds: float = 0.0
    #: What this plugin shares with another one (a provider for the same op, its entry-point
    #: name), with how to resolve it.
    clashes: list[str] = field(default_factory=list)
    #: The providers it had registered when it was quarantined (rolled back since): priorities
    #: naming them are skipped with the quarantine's reason, not refused as unknown.
    rolled_back: list[str] = field(default_factory=list, repr=False)

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
            "clashes": self.clashes,
            "load_seconds": round(self.load_seconds, 3),
            "traceback": self.traceback,
        }


class _Failure(Exception):
    """Why a plugin is quarantined (raised by :func:`_run` and by the answer checks)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_UNLOADED, _LOADING, _LOADED = "unloaded", "loading", "loaded"
_lock = threading.RLock()
_state = _UNLOADED
#: Strict mode's verdict on the load of the installed plugins: raised again by every later call.
_failure: str | None = None
_entry_points: list[importlib_metadata.EntryPoint] | None = None
#: Every plugin seen, in load order, by the name pluggy and the registry know it by.
_records: dict[str, PluginRecord] = {}
#: The ``detect_platform`` answers, ``(plugin, platform)`` in load order, checked.
_claims: list[tuple[str, str]] = []
_plugin_priorities: dict[str, dict[str, tuple[str, ...]]] = {}
_load_steps: list[Callable[[], Any]] = []

manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
manager.add_hookspecs(hookspecs)


def strict() -> bool:
    """Strict mode: ``IR_CORE_STRICT_PLUGINS``, else the config file's ``strict``."""
    return bool(config.lookup("strict").value)


def entry_points() -> list[importlib_metadata.EntryPoint]:
    """The group's entry points, read once per process (reading them costs milliseconds), by
    name; entry points of one name stay in ``sys.path`` order."""
    global _entry_points
    if _entry_points is None:
        _entry_points = sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
        )
    return _entry_points


def on_load(step: Callable[[], Any]) -> None:
    """Run ``step()`` at the end of every load, inside it (its quarantines count for strict
    mode and ``list-providers``): the compile layer fills its fusion passes there."""
    _load_steps.append(step)


# -- what is installed, without running plugin code ------------------------------------------


def _skip_reason(name: str) -> str | None:
    """Why plugin ``name`` is not loaded: the allow-list (``IR_CORE_PLUGINS``, else the config
    file's ``plugins``) leaves it out, or the deny-list (``IR_CORE_DISABLE_PLUGINS``, else
    ``disable-plugins``) names it."""
    allow, deny = config.lookup("plugins"), config.lookup("disable-plugins")
    if allow.value is not None and name not in allow.value:
        return f"not in {allow.origin}"
    if deny.value is not None and name in deny.value:
        return f"in {deny.origin}"
    return None


def _dist_fields(ep: importlib_metadata.EntryPoint) -> tuple[str | None, str | None, str]:
    """``(name, version, summary)`` of the entry point's distribution. Every core-metadata field
    may be missing (or the METADATA file unreadable): importlib_metadata then raises KeyError."""
    try:
        dist = ep.dist
        if dist is None:
            return None, None, ""
        meta = dist.metadata
        name, version, summary = (meta.get(key) for key in ("Name", "Version", "Summary"))
    except Exception:
        return None, None, ""
    return name or None, version or None, str(summary or "")


def _installed() -> list[tuple[str, PluginRecord, importlib_metadata.EntryPoint]]:
    """``(key, record, entry point)`` of each installed plugin, disabled ones and entry-point
    names declared twice marked: the first found on ``sys.path`` keeps the name, the other is
    quarantined (its key is the name and its distribution: it is never loaded)."""
    found: list[tuple[str, PluginRecord, importlib_metadata.EntryPoint]] = []
    first: dict[str, PluginRecord] = {}
    for ep in entry_points():
        dist, version, summary = _dist_fields(ep)
        record = PluginRecord(
            name=ep.name,
            status="not loaded",
            distribution=dist,
            version=version,
            value=ep.value,
            description=summary.strip(),
        )
        key = ep.name
        owner = first.get(ep.name)
        skip = _skip_reason(ep.name)
        if skip:
            record.status, record.reason = "disabled", skip
        elif owner is not None:
            key = f"{ep.name} ({dist or ep.value})"
            record.status = "quarantined"
            record.reason = (
                f"entry point name {ep.name!r} is also declared by {_dist_label(owner)}, "
                f"found first on sys.path, which keeps it; uninstall one of the two "
                f"distributions (this one is {_dist_label(record)})"
            )
            owner.clashes.append(
                f"entry point name {ep.name!r} is also declared by {_dist_label(record)} "
                "(quarantined); uninstall one of the two distributions"
            )
        first.setdefault(ep.name, record)
        found.append((key, record, ep))
    return found


def _dist_label(record: PluginRecord) -> str:
    label = f"{record.distribution or 'an unnamed distribution'} {record.version or ''}"
    return f"{label.strip()} ({record.value})"


def list_entry_points() -> list[PluginRecord]:
    """Installed plugins without executing any of their code (``--no-load``)."""
    return [record for _, record, _ in _installed()]


# -- the loading state machine ---------------------------------------------------------------


def load_plugins() -> None:
    """Load every installed plugin, once and completely; later calls return at once.

    Thread-safe: a thread that asks while another one loads waits for the whole load, so every
    thread sees the loaded registry (a hook that dispatches an op while its plugin loads, on
    the loading thread, sees the registry as loaded so far). With ``IR_CORE_STRICT_PLUGINS=1``
    (read when the load runs) a load in which any plugin failed raises
    :class:`PluginLoadError`, and so does every later call: the process never goes on with
    part of its plugins. The config file is read first, before any plugin code runs: a bad
    one raises :class:`ir_core.config.ConfigError` and nothing is loaded.
    """
    global _state, _failure
    if _state is _LOADED and _failure is None:
        return
    with _lock:
        if _state is _LOADING:  # only the loading thread gets here (a hook dispatching an op)
            return
        if _state is _UNLOADED:
            config.config_file()  # a bad config file fails here, before any plugin code runs
            strict_mode = strict()
            _state = _LOADING
            try:
                _load_installed()
            except BaseException:  # KeyboardInterrupt: undo it all, the next call starts over
                for key in list(_records):
                    _forget(key)
                _changed()
                _state = _UNLOADED
                raise
            _state = _LOADED
            if strict_mode:
                _failure = _strict_message(list(_records.values()))
        if _failure is not None:
            raise PluginLoadError(_failure)


def _load_installed() -> None:
    loaded: list[PluginRecord] = []
    for key, record, ep in _installed():
        _records[key] = record
        if record.status != "not loaded":  # disabled, or a second use of an entry-point name
            continue
        try:
            plugin = _run(record, "import failed:", ep.load)
        except _Failure as exc:
            _quarantine(record, exc.reason)
            continue
        if _admit(record, plugin):
            loaded.append(record)
    _register(loaded)
    _evaluate()
    _changed()
    for record in loaded:
        if record.load_seconds > SLOW_LOAD_S:
            logger.warning(
                "ir_core: plugin %s took %.1f s to load (import and hooks); %s=%s skips it",
                record.name,
                record.load_seconds,
                ENV_DENY,
                record.name,
            )


def register_plugin(plugin: object, name: str | None = None) -> PluginRecord:
    """Register a plugin object directly (tests, engines that embed a provider).

    The same checks and quarantine apply as for an installed plugin; under
    ``IR_CORE_STRICT_PLUGINS=1`` a plugin that fails raises :class:`PluginLoadError`.
    """
    load_plugins()
    with _lock:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in _records and _records[name].status == "loaded":
            raise ValueError(f"a plugin named {name!r} is already loaded")
        record = PluginRecord(name=name, status="not loaded", value=_short(plugin))
        _records[name] = record
        if _admit(record, plugin):
            _register([record])
            _evaluate()
        _changed()
        message = _strict_message([record])
        if message and strict():
            raise PluginLoadError(message)
        return record


def unregister_plugin(name: str) -> None:
    """Remove a plugin and everything it registered."""
    with _lock:
        _forget(name)
        _note_clashes()
        _changed()


def _forget(key: str) -> None:
    if manager.get_plugin(key) is not None:
        manager.unregister(name=key)
    registry.remove_plugin(key)
    _records.pop(key, None)


# -- calling plugin code ---------------------------------------------------------------------


def _run(record: PluginRecord, failed: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Run plugin code, timed into the record. Any exception but ``KeyboardInterrupt`` --
    ``SystemExit`` too: a hook must not end the engine's process -- becomes a :class:`_Failure`
    whose reason starts with ``failed`` (``"register_impls raised"``)."""
    start = time.perf_counter()
    try:
        return fn(**kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _Failure(f"{failed} {type(exc).__name__}: {exc}") from exc
    finally:
        record.load_seconds += time.perf_counter() - start


def _call_one(record: PluginRecord, hook: str, kwargs: dict[str, Any]) -> Any:
    """Call ``hook`` of one plugin only, so a failure is attributed to that plugin."""
    for impl in getattr(manager.hook, hook).get_hookimpls():
        if impl.plugin_name == record.name:
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            return _run(record, f"{hook} raised", impl.function, **args)
    return None


def _admit(record: PluginRecord, plugin: object) -> bool:
    """Register with pluggy and check ``ir_plugin_info``; quarantine on any problem."""
    try:
        # pluggy rejects unknown hooks (a typo or another API version) and bad signatures
        _run(record, "invalid hooks:", _register_hooks, name=record.name, plugin=plugin)
        info = _plugin_info(_call_one(record, "ir_plugin_info", {}))
    except _Failure as exc:
        _quarantine(record, exc.reason)
        return False
    record.display_name = info.get("name") or record.name
    record.description = info.get("description") or record.description
    return True


def _register_hooks(name: str, plugin: object) -> None:
    manager.register(plugin, name=name)
    manager.check_pending()


def _plugin_info(answer: Any) -> dict[str, Any]:
    """``ir_plugin_info``'s answer, checked: ``None``, or a dict whose ``name`` and
    ``description`` are str and whose ``api_version`` is this ir_core's (an int)."""
    if answer is None:
        return {}
    if not isinstance(answer, dict):
        raise _Failure(f"ir_plugin_info returned {type(answer).__name__}, not a dict")
    for key, kind, what in (
        ("name", str, "a str"),
        ("description", str, "a str"),
        ("api_version", int, "an int"),
    ):
        value = answer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise _Failure(f"ir_plugin_info: {key} must be {what}, got {_short(value)}")
    version = answer.get("api_version", API_VERSION)
    if version != API_VERSION:
        raise _Failure(
            f"built for ir_core api_version {version}, this ir_core speaks {API_VERSION}"
        )
    return answer


def _register(records: list[PluginRecord]) -> None:
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
                    _call_one(record, hook, {"registry": registry})
            except _Failure as exc:
                _quarantine(record, exc.reason)
    for record in records:
        if record.status != "quarantined":
            record.status = "loaded"
    _note_clashes()


def _evaluate() -> None:
    """Ask the hooks whose answers ir_core keeps, checking each answer: ``detect_platform``,
    ``platform_priority`` for the platform, and the load steps (fusion passes).

    A quarantine rolls back that plugin's impls and may change the platform or what another
    answer was checked against: ask again until a round quarantines nobody.
    """
    global _claims
    while True:
        failed = len(quarantined_names())
        _claims = [(r.name, a) for r, a in _ask("detect_platform", _platform_name) if a]
        _changed()
        plugin_priorities()
        for step in _load_steps:
            step()
        if len(quarantined_names()) == failed:
            break
    _note_clashes()


def _ask(
    hook: str, check: Callable[[Any], Any] | None = None, **kwargs: Any
) -> list[tuple[PluginRecord, Any]]:
    """``(record, answer)`` of each loaded plugin's ``hook``, in load order, each answer passed
    through ``check`` (which raises :class:`_Failure`); a plugin that fails is quarantined."""
    answers, failed = [], []
    for record in list(_records.values()):
        if record.status != "loaded":
            continue
        try:
            answer = _call_one(record, hook, kwargs)
            if check is not None:
                answer = check(answer)
        except _Failure as exc:
            _quarantine(record, exc.reason)
            failed.append(record)
            continue
        if answer is not None:
            answers.append((record, answer))
    if failed:
        _changed()
        message = _strict_message(failed)
        if message and strict() and _state is _LOADED:  # a hook asked after the load
            raise PluginLoadError(message)
    return answers


def call_hooks(hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call ``hook`` of every loaded plugin; one that raises is quarantined, the rest go on."""
    load_plugins()
    return [(record.name, answer) for record, answer in _ask(hook, **kwargs)]


def _quarantine(record: PluginRecord, reason: str) -> None:
    record.status, record.reason = "quarantined", reason
    record.traceback = traceback.format_exc()
    record.rolled_back = registry.provided_by(record.name)
    record.providers = []
    if manager.get_plugin(record.name) is not None:
        manager.unregister(name=record.name)
    registry.remove_plugin(record.name)


def _strict_message(records: list[PluginRecord]) -> str | None:
    """What strict mode raises for these records: every quarantine and every clash."""
    lines = [
        f"plugin {r.name} failed to load ({ENV_STRICT}=1): {r.reason}"
        for r in records
        if r.status == "quarantined"
    ]
    lines += [f"plugin {r.name} clashes ({ENV_STRICT}=1): {c}" for r in records for c in r.clashes]
    return "\n".join(lines) or None


def _note_clashes() -> None:
    """Write each provider clash on the records of all the plugins in it, with the fix."""
    by_name = {r.name: r for r in _records.values() if r.status == "loaded"}
    for record in by_name.values():
        record.clashes = [c for c in record.clashes if c.startswith("entry point name")]
        record.providers = registry.provided_by(record.name)
    for (op, provider), plugins in registry.clashes().items():
        for name in plugins:
            if name in by_name:
                by_name[name].clashes.append(_clash_text(op, provider, plugins))


def _clash_text(op: str, provider: str, plugins: list[str]) -> str:
    return (
        f"provider {provider} of op {op} is registered by plugins {' and '.join(plugins)}: "
        "neither impl is used until one is left (uninstall or disable one: "
        + " or ".join(f"{ENV_DENY}={name}" for name in plugins)
        + "); its vendor should rename the provider"
    )


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a hostile __repr__: describe it without running it again
        text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- what the records say --------------------------------------------------------------------


def records() -> list[PluginRecord]:
    """Every plugin seen, loaded or not, after loading them."""
    load_plugins()
    return list(_records.values())


def quarantined_names() -> list[str]:
    return [r.name for r in _records.values() if r.status == "quarantined"]


def absence_reason(provider: str, op: str | None = None) -> str | None:
    """Why ``provider`` has no impl (of ``op``, or of any op): ``"quarantined: ..."`` when a
    quarantined plugin registered it (or is named like it), ``"clash: ..."`` when several
    plugins did; None when nobody knows the name."""
    for (clash_op, clash_provider), plugins in registry.clashes().items():
        if clash_provider == provider and op in (None, clash_op):
            return f"clash: {_clash_text(clash_op, provider, plugins)}"
    for record in _records.values():
        if record.status == "quarantined" and provider in (*record.rolled_back, record.name):
            return f"quarantined: plugin {record.name}: {record.reason}"
    return None


# -- the answers ir_core keeps ---------------------------------------------------------------


def _platform_name(answer: Any) -> str | None:
    """``detect_platform``'s answer, checked: a platform name or None."""
    if answer is None or answer == "":
        return None
    if not isinstance(answer, str) or not answer.strip():
        raise _Failure(f"detect_platform returned {_short(answer)}, not a platform name (str)")
    return answer.strip()


def _platform_claims() -> list[tuple[str, str]]:
    """The ``detect_platform`` answers of the loaded plugins, ``(plugin, platform)`` in load
    order (asked and checked at load)."""
    return [
        (name, answer)
        for name, answer in _claims
        if name in _records and _records[name].status == "loaded"
    ]


def plugin_priorities() -> dict[str, tuple[str, ...]]:
    """The ``platform_priority`` answers of all plugins for this platform, merged (asked at
    load for the platform then; again when the platform changes)."""
    name = platform.current_platform()
    if name not in _plugin_priorities:
        answers = _ask("platform_priority", _priority_table, platform=name)
        _plugin_priorities[name] = _merge_priorities(answers)
    return _plugin_priorities[name]


def _priority_table(answer: Any) -> dict[str, tuple[str, ...]] | None:
    """``platform_priority``'s answer, checked: None, or a dict of op name -> list of provider
    names that some plugin registered (a typo is refused, not carried to dispatch).

    Entries for ops not registered here are dropped (a table may name the fused ops of an
    optional plugin); ``native`` is dropped (it always comes last).
    """
    if answer is None:
        return None
    if not isinstance(answer, Mapping):
        raise _Failure(
            f"platform_priority returned {_short(answer)}, not a dict of op name -> list of "
            "provider names"
        )
    known = set(registry.providers())
    known |= {p for r in _records.values() if r.status == "quarantined" for p in r.rolled_back}
    table: dict[str, tuple[str, ...]] = {}
    for op, providers in answer.items():
        if not isinstance(op, str):
            raise _Failure(f"platform_priority: op name {_short(op)} is not a str")
        if not isinstance(providers, (list, tuple)) or not all(
            isinstance(p, str) for p in providers
        ):
            raise _Failure(
                f"platform_priority: the order for {op} must be a list of provider names, "
                f"got {_short(providers)}"
            )
        unknown = [p for p in providers if p not in known]
        if unknown:
            raise _Failure(
                f"platform_priority names provider {unknown[0]!r} for {op}, which no plugin "
                f"registered; known providers: {', '.join(sorted(known))}"
            )
        if op in registry:
            table[op] = tuple(p for p in dict.fromkeys(providers) if p != NATIVE)
    return table


def _merge_priorities(
    answers: list[tuple[PluginRecord, dict[str, tuple[str, ...]]]],
) -> dict[str, tuple[str, ...]]:
    """The checked ``platform_priority`` answers, in plugin order, as one order per op."""
    merged: dict[str, tuple[str, ...]] = {}
    for _, table in answers:
        for op, providers in table.items():
            merged[op] = tuple(dict.fromkeys((*merged.get(op, ()), *providers)))
    return merged


def _changed() -> None:
    _plugin_priorities.clear()
    platform.forget()
    priority.changed()


registry.set_loader(load_plugins)
priority.set_plugin_defaults(plugin_priorities, absence_reason)
platform.set_claims_source(_platform_claims)
