"""What the conformance kit checks for a provider: every op it implements, on every device type
it declares that this machine has, in every dtype it claims, on each of the op's samples.

A *target* is one impl on one device type in one dtype. It is *claimed* when ``supports_args``
accepts at least one of the op's samples in that dtype; an impl that declines them all does not
claim the dtype (dispatch will never pick it there), which is reported, not failed. Samples a
claimed target declines are reported as skipped for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..op import NATIVE, Impl, Op, Sample
from ..platform import DTYPE_NAMES, device_usable, devices_here, dtype_name, parse_dtypes
from ..plugins import absence_reason
from ..registry import registry
from .errors import ProviderUnusable

__all__ = [
    "DTYPES",
    "DTYPE_NAMES",
    "Case",
    "Target",
    "TargetPlan",
    "describe",
    "dtype_name",
    "parse_dtypes",
    "plan",
    "plan_target",
    "runnable_providers",
]

#: The dtypes every impl is tried in (the default tolerances of docs/contract.md cover exactly
#: these).
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Target:
    """One impl of one op on one device type in one dtype."""

    op: str
    provider: str
    device: str
    dtype: torch.dtype

    @property
    def id(self) -> str:
        return f"{self.op}-{self.provider}-{self.device}-{dtype_name(self.dtype)}"

    def to_dict(self) -> dict[str, str]:
        return {
            "op": self.op,
            "provider": self.provider,
            "device": self.device,
            "dtype": dtype_name(self.dtype),
        }


@dataclass
class Case:
    """One sample of a target, and whether the impl's ``supports_args`` accepted it."""

    target: Target
    index: int
    sample: Sample
    claimed: bool
    #: Why supports_args declined (or raised), when it did.
    declined: str = ""

    @property
    def label(self) -> str:
        return self.sample.label or f"sample {self.index}"

    @property
    def id(self) -> str:
        return f"{self.target.id}-{self.label.replace(' ', '_')}"


@dataclass
class TargetPlan:
    """A target and its cases; ``skip`` says why nothing runs (unavailable, no device, not
    claimed), and is empty when the target is checked."""

    target: Target
    op: Op
    impl: Impl
    cases: list[Case] = field(default_factory=list)
    skip: str = ""

    @property
    def claimed_cases(self) -> list[Case]:
        return [c for c in self.cases if c.claimed]


def _claim(impl: Impl, op: Op, sample: Sample) -> tuple[bool, str]:
    # a predicate that raises declines here; the supports_args check reports it as a failure
    declined = impl.declines(op.bind(sample.args, sample.kwargs))
    return (True, "") if declined is None else (False, declined)


def plan_target(target: Target, op: Op, impl: Impl) -> TargetPlan:
    """Make the target's samples and ask ``supports_args`` about each."""
    result = TargetPlan(target, op, impl)
    samples = op.sample_inputs(target.dtype, target.device)
    if not samples:
        result.skip = f"op {op.name} declares no sample inputs in this dtype"
        return result
    for index, sample in enumerate(samples):
        claimed, why = _claim(impl, op, sample)
        result.cases.append(Case(target, index, sample, claimed, why))
    if not result.claimed_cases:
        result.skip = (
            f"not claimed: supports_args declined all {len(samples)} "
            f"{dtype_name(target.dtype)} samples on {target.device}"
        )
    return result


def plan(
    provider: str,
    *,
    ops: Sequence[str] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    devices: Sequence[str] | None = None,
) -> list[TargetPlan]:
    """Every target of ``provider`` (optionally only these ops, dtypes and device types).

    Raises :class:`ProviderUnusable` (``"quarantined: <reason>"``) when its plugin is
    quarantined, KeyError naming the known providers when nobody registered ``provider``.
    """
    registry.ensure_loaded()
    if provider not in registry.providers():
        reason = absence_reason(provider)
        if reason is not None:
            raise ProviderUnusable(f"provider {provider}: {reason}")
        raise KeyError(
            f"unknown provider {provider!r}; known providers: {', '.join(registry.providers())}"
        )
    wanted_ops = set(ops) if ops else None
    if wanted_ops is not None:
        known = {op.name for op in registry.ops()}
        unknown = sorted(wanted_ops - known)
        if unknown:
            raise KeyError(f"unknown op {unknown[0]!r}; known ops: {', '.join(sorted(known))}")
    plans: list[TargetPlan] = []
    for op in sorted(registry.ops(), key=lambda o: o.name):
        impl = op.impls.get(provider)
        if impl is None or (wanted_ops is not None and op.name not in wanted_ops):
            continue
        declared = devices_here() if impl.device_types is None else sorted(impl.device_types)
        if devices:
            declared = [d for d in declared if d in devices]
        available, reason = impl.status()
        for device in declared:
            for dtype in dtypes or DTYPES:
                target = Target(op.name, provider, device, dtype)
                if not available:
                    plans.append(TargetPlan(target, op, impl, skip=f"unavailable: {reason}"))
                elif not device_usable(device):
                    plans.append(
                        TargetPlan(target, op, impl, skip=f"no {device} device on this machine")
                    )
                else:
                    plans.append(plan_target(target, op, impl))
    return plans


def runnable_providers() -> list[str]:
    """Providers with at least one available impl on a device type this machine has."""
    registry.ensure_loaded()
    found = []
    for provider in registry.providers():
        for op in registry.ops():
            impl = op.impls.get(provider)
            if impl is None or not impl.status()[0]:
                continue
            if provider == NATIVE or any(device_usable(d) for d in impl.device_types or ()):
                found.append(provider)
                break
    return found


def describe(value: Any) -> str:
    """A short description of an argument for messages: ``bfloat16[3, 64] stride (120, 1)``."""
    if isinstance(value, torch.Tensor):
        return f"{dtype_name(value.dtype)}{list(value.shape)} stride {tuple(value.stride())}"
    return repr(value)
