"""The registry of ops and their implementations, and the checks made when things register.

Everything is validated here, once, so that the dispatch hot path trusts what it finds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from . import library
from .op import NATIVE, Compare, Impl, Op, Sample, resolved_signature


class RegistrationError(TypeError):
    """An op or impl could not be registered; the message names the op, provider and argument."""


class Registry:
    """Holds every op and impl of the process; passed to the ``register_*`` hooks."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        #: The plugin whose hook is running, so registrations can be attributed and rolled back.
        self._plugin: str | None = None
        self._on_change: list[Callable[[], None]] = []

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
        from .dispatch import make_dispatcher

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
        )
        op.dispatcher = make_dispatcher(op)
        op.torch_op = library.define(op)
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
    ) -> Impl:
        """Register ``fn`` as ``provider``'s kernel for ``op``.

        ``fn`` must have the op's exact signature (names, annotations, defaults);
        ``supports_args`` the op's parameter names and defaults. See
        :func:`ir_core.hookspecs.register_impls`.
        """
        target = self.get_op(op) if isinstance(op, str) else op
        where = f"{provider} impl of {target.name}"
        if not provider.isidentifier():
            raise RegistrationError(f"{where}: provider name must be an identifier")
        if provider == NATIVE:
            raise RegistrationError(f"{where}: 'native' is the op's own semantics")
        if provider in target.impls:
            owner = target.impls[provider].plugin
            raise RegistrationError(f"{where}: already registered by plugin {owner}")
        if isinstance(device_types, str):
            raise RegistrationError(f"{where}: device_types must be a collection, not a string")
        devices = frozenset(device_types)
        if not devices:
            raise RegistrationError(f"{where}: device_types is empty")
        check_signature(target, fn, what=f"{where}: {_qualname(fn)}", check_types=True)
        if supports_args is not None:
            check_signature(
                target, supports_args, what=f"{where}: supports_args", check_types=False
            )
        if not (isinstance(available, bool) or callable(available)):
            raise RegistrationError(f"{where}: available must be a bool or a callable")
        impl = Impl(
            target.name,
            provider,
            fn,
            device_types=devices,
            supports_args=supports_args,
            available=available,
            plugin=self._plugin,
        )
        target.impls[provider] = impl
        self._changed()
        return impl

    def impl(
        self,
        op: str | Op,
        provider: str,
        *,
        device_types: Iterable[str],
        supports_args: Callable[..., bool] | None = None,
        available: bool | Callable[[], tuple[bool, str]] = True,
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

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ops or impls change (dispatch caches listen)."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()


def _qualname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def check_signature(op: Op, fn: Callable[..., Any], *, what: str, check_types: bool) -> None:
    """Raise RegistrationError unless ``fn``'s parameters are the op's.

    Names, order, kinds and defaults must match; with ``check_types`` the annotations must
    match too (after resolving string annotations), and so must the return annotation.
    """
    if not callable(fn):
        raise RegistrationError(f"{what} is not callable")
    try:
        sig, hints = resolved_signature(fn)
    except (TypeError, ValueError) as exc:
        raise RegistrationError(f"{what}: {exc}") from None
    expected = list(op.signature.parameters.values())
    actual = list(sig.parameters.values())
    if [p.name for p in actual] != [p.name for p in expected]:
        raise RegistrationError(
            f"{what}: parameters ({', '.join(p.name for p in actual)}) differ from the op's "
            f"({', '.join(p.name for p in expected)})"
        )
    for want, got in zip(expected, actual):
        if (
            got.kind
            not in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.POSITIONAL_ONLY,
            )
            and got.kind != want.kind
        ):
            raise RegistrationError(f"{what}: parameter '{got.name}' is {got.kind.description}")
        if got.default is not want.default and got.default != want.default:
            raise RegistrationError(
                f"{what}: parameter '{got.name}' defaults to {got.default!r}, "
                f"the op's to {want.default!r}"
            )
    for want, got in zip(expected, actual) if check_types else ():
        if hints.get(got.name) != op.hints[want.name]:
            have = hints.get(got.name)
            raise RegistrationError(
                f"{what}: parameter '{got.name}' "
                + (f"is annotated {_type_name(have)}" if have is not None else "has no annotation")
                + f", the op's is {_type_name(op.hints[want.name])}"
            )
    if check_types and hints.get("return") != op.hints["return"]:
        raise RegistrationError(
            f"{what}: returns {_type_name(hints.get('return'))}, "
            f"the op returns {_type_name(op.hints['return'])}"
        )


def _type_name(annotation: Any) -> str:
    if annotation is None:
        return "nothing"
    return getattr(annotation, "__name__", None) or repr(annotation).replace("typing.", "")
