"""The registry of ops and their implementations: the one owner of the process's op state.

Everything is validated here, once (see :mod:`ir_core.signature`), so that the dispatch hot
path trusts what it finds. The process-wide :data:`registry` lives here too, with the events the
layers above listen to: ``on_change`` (dispatch caches, priorities), ``on_new_op`` (the
composition root, :mod:`ir_core.ops`, binds each new op's dispatcher and torch op) and the
``ensure_loaded`` hook the plugin layer installs, so that anything below it can ask for the
plugins without importing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .op import NATIVE, NATIVE_CAPABILITIES, Compare, Impl, Op, Sample, capability_tags
from .signature import RegistrationError, check_signature, qualname

__all__ = ["RegistrationError", "Registry", "check_signature", "get_op", "registry"]


class Registry:
    """Holds every op and impl of the process; passed to the ``register_*`` hooks."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        #: The plugin whose hook is running, so registrations can be attributed and rolled back.
        self._plugin: str | None = None
        #: ``(op, provider)`` registered by several plugins: each one's impl, none of them used.
        self._clashes: dict[tuple[str, str], dict[str, Impl]] = {}
        self._on_change: list[Callable[[], None]] = []
        self._on_new_op: list[Callable[[Op], None]] = []
        self._loader: Callable[[], None] | None = None

    # -- ops ---------------------------------------------------------------------------------

    def register_op(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        tolerances: dict[torch.dtype, tuple[float, float]] | None = None,
        validate: Callable[..., None] | None = None,
        sample_inputs: Callable[[torch.dtype, torch.device], Iterable[Sample]] | None = None,
        example_inputs: Callable[..., Sample] | None = None,
        compare: Compare | None = None,
    ) -> Op:
        """Declare an op whose semantics is the typed native function ``fn``.

        The op becomes ``ir_core.ops.<name>`` (eager dispatch) and ``torch.ops.ir_core.<name>``
        (opaque in FX graphs), with ``fn`` registered as its ``native`` impl. ``compare``
        replaces the per-dtype tolerance check of outputs when they are judged otherwise (fp8
        codes by their dequantized values): see :class:`ir_core.op.Comparison`.
        """
        op_name = name or fn.__name__
        if not op_name.isidentifier():
            raise RegistrationError(f"op name {op_name!r} is not an identifier")
        if op_name in self._ops:
            raise RegistrationError(
                f"op {op_name} is already registered (by {self._ops[op_name].plugin or 'ir_core'})"
            )
        op = Op(
            op_name,
            fn,
            tolerances=tolerances,
            validate=validate,
            sample_inputs=sample_inputs,
            example_inputs=example_inputs,
            compare=compare,
            plugin=self._plugin,
        )
        op.impls[NATIVE] = Impl(
            op_name,
            NATIVE,
            fn,
            device_types=None,
            supports_args=None,
            available=True,
            plugin=self._plugin,
            capabilities=NATIVE_CAPABILITIES,
        )
        for bind in self._on_new_op:  # a failure here leaves the op unregistered
            bind(op)
        self._ops[op_name] = op
        self._changed()
        return op

    def get_op(self, name: str) -> Op:
        try:
            return self._ops[name]
        except KeyError:
            raise KeyError(
                f"unknown op {name!r}; known ops: {', '.join(sorted(self._ops))}"
            ) from None

    def ops(self) -> list[Op]:
        return list(self._ops.values())

    def __contains__(self, name: object) -> bool:
        """Whether an op called ``name`` is registered."""
        return name in self._ops

    def providers(self) -> list[str]:
        """Every provider name some impl was registered under, native first."""
        names = {p for op in self._ops.values() for p in op.impls}
        return [NATIVE, *sorted(names - {NATIVE})]

    # -- impls -------------------------------------------------------------------------------

    def register_impl(
        self,
        op: str | Op,
        provider: str,
        fn: Callable[..., Any],
        *,
        device_types: Iterable[str],
        supports_args: Callable[..., bool] | None = None,
        available: bool | Callable[[], tuple[bool, str]] = True,
        capabilities: Iterable[str] = (),
    ) -> Impl:
        """Register ``fn`` as ``provider``'s kernel for ``op``.

        ``fn`` must have the op's exact signature (names, annotations, defaults);
        ``supports_args`` the op's parameter names and defaults; ``capabilities`` are the tags
        the kernel promises (``batch_invariant``, ...). See
        :func:`ir_core.hookspecs.register_impls`.
        """
        target = self.get_op(op) if isinstance(op, str) else op
        where = f"{provider} impl of {target.name}"
        if not isinstance(provider, str) or not provider.isidentifier():
            raise RegistrationError(f"{where}: provider name must be an identifier")
        if provider == NATIVE:
            raise RegistrationError(f"{where}: 'native' is the op's own semantics")
        holders = self._holders(target, provider)
        if holders and (self._plugin is None or self._plugin in holders or None in holders):
            owners = ", ".join(sorted(str(h) for h in holders))
            raise RegistrationError(f"{where}: already registered by plugin {owners}")
        if isinstance(device_types, str):
            raise RegistrationError(f"{where}: device_types must be a collection, not a string")
        devices = frozenset(device_types)
        if not devices:
            raise RegistrationError(f"{where}: device_types is empty")
        check_signature(target, fn, what=f"{where}: {qualname(fn)}", check_types=True)
        if supports_args is not None:
            check_signature(
                target, supports_args, what=f"{where}: supports_args", check_types=False
            )
        if not (isinstance(available, bool) or callable(available)):
            raise RegistrationError(f"{where}: available must be a bool or a callable")
        try:
            tags = capability_tags(capabilities, what=where)
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
        impl = Impl(
            target.name,
            provider,
            fn,
            device_types=devices,
            supports_args=supports_args,
            available=available,
            plugin=self._plugin,
            capabilities=tags,
        )
        if holders:  # another plugin's provider of the same name: a clash, neither is used
            clash = self._clashes.setdefault((target.name, provider), dict(holders))
            clash[self._plugin] = impl  # type: ignore[index]  # not None: checked above
            target.impls.pop(provider, None)
        else:
            target.impls[provider] = impl
        self._changed()
        return impl

    def _holders(self, op: Op, provider: str) -> dict[str | None, Impl]:
        """Who registered ``provider`` for ``op`` so far: its owner, or every plugin of a clash."""
        clash = self._clashes.get((op.name, provider))
        if clash:
            return dict(clash)  # type: ignore[arg-type]
        impl = op.impls.get(provider)
        return {impl.plugin: impl} if impl is not None else {}

    def clashes(self) -> dict[tuple[str, str], list[str]]:
        """``{(op, provider): [plugins]}`` for every provider two or more plugins registered for
        the same op. The rule: a clash is never resolved by load order (a new wheel must not
        displace an established one), so none of the clashing impls is used until only one of
        the plugins is left (the others uninstalled, disabled or quarantined)."""
        return {key: sorted(holders) for key, holders in self._clashes.items()}

    def impl(
        self,
        op: str | Op,
        provider: str,
        *,
        device_types: Iterable[str],
        supports_args: Callable[..., bool] | None = None,
        available: bool | Callable[[], tuple[bool, str]] = True,
        capabilities: Iterable[str] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`register_impl`; returns the function unchanged."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register_impl(
                op,
                provider,
                fn,
                device_types=device_types,
                supports_args=supports_args,
                available=available,
                capabilities=capabilities,
            )
            return fn

        return decorate

    # -- plugin bookkeeping ------------------------------------------------------------------

    @contextmanager
    def attributed_to(self, plugin: str) -> Iterator[None]:
        """Attribute registrations made inside the block to ``plugin``."""
        previous, self._plugin = self._plugin, plugin
        try:
            yield
        finally:
            self._plugin = previous

    def remove_plugin(self, plugin: str) -> None:
        """Roll back everything ``plugin`` registered (it was quarantined).

        An op it declared disappears from the registry; its ``torch.ops.ir_core`` entry stays
        defined (torch.library cannot forget an op) but is no longer reachable from dispatch.
        """
        for name, op in list(self._ops.items()):
            if op.plugin == plugin:
                del self._ops[name]
                continue
            for provider, impl in list(op.impls.items()):
                if impl.plugin == plugin:
                    del op.impls[provider]
        for (op_name, provider), holders in list(self._clashes.items()):
            holders.pop(plugin, None)
            if len(holders) > 1:
                continue
            del self._clashes[(op_name, provider)]
            if holders and op_name in self._ops:  # one plugin left: its impl is used again
                self._ops[op_name].impls[provider] = next(iter(holders.values()))
        self._changed()

    def provided_by(self, plugin: str) -> list[str]:
        """The providers ``plugin`` registered impls for."""
        return sorted(
            {
                i.provider
                for op in self._ops.values()
                for i in op.impls.values()
                if i.plugin == plugin
            }
        )

    # -- events and the plugin hook -----------------------------------------------------------

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ops or impls change (dispatch caches listen)."""
        self._on_change.append(callback)

    def on_new_op(self, bind: Callable[[Op], None]) -> None:
        """Call ``bind(op)`` for every op registered from now on, before it is stored; an
        exception from ``bind`` fails the registration."""
        self._on_new_op.append(bind)

    def set_loader(self, loader: Callable[[], None]) -> None:
        """Install what :meth:`ensure_loaded` runs: the plugin layer's ``load_plugins``."""
        self._loader = loader

    def ensure_loaded(self) -> None:
        """Load the installed plugins unless that happened already (a no-op without a loader)."""
        if self._loader is not None:
            self._loader()

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()


#: The process-wide registry: the one passed to every plugin's hooks.
registry = Registry()


def get_op(name: str) -> Op:
    """The op called ``name`` (plugins loaded first, so fused ops are found too)."""
    if name not in registry:
        registry.ensure_loaded()
    return registry.get_op(name)
