"""The signature checks made when an impl registers: an impl must be callable exactly as its op.

Names, order, kinds and defaults of the parameters, and with ``check_types`` the annotations
and the return annotation. Checked once, at registration, so the hot path trusts what it finds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .op import Op, resolved_signature


class RegistrationError(TypeError):
    """An op or impl could not be registered; the message names the op, provider and argument."""


def qualname(fn: Callable[..., Any]) -> str:
    """How messages name a function: its qualified name, else its repr."""
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
