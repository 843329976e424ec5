"""``patch(model)`` / ``unpatch(model)``: swap a model's RMSNorm modules for IR ones and back."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from torch import nn

from .forms import Form, Identified, epsilon_of, identify
from .norm import IRRMSNorm


@dataclass(frozen=True)
class Patched:
    """One module replaced: where, its class, and the form it was found to compute."""

    path: str
    cls: str
    form: Form
    epsilon: float


@dataclass(frozen=True)
class LeftAlone:
    """One norm module not replaced, and why."""

    path: str
    cls: str
    reason: str


@dataclass
class PatchReport:
    """What :func:`patch` did: every RMSNorm-named module, replaced or left alone."""

    patched: list[Patched] = field(default_factory=list)
    left_alone: list[LeftAlone] = field(default_factory=list)

    def classes(self) -> dict[str, str]:
        """``{class name: form name, or the reason it was left alone}``, one entry per class."""
        found = {p.cls: p.form.name for p in self.patched}
        found.update((a.cls, a.reason) for a in self.left_alone)
        return found

    def __str__(self) -> str:
        lines = [f"ir_core patch: {len(self.patched)} norm modules replaced"]
        by_class = Counter((p.cls, p.form) for p in self.patched)
        for (cls, form), n in sorted(by_class.items(), key=lambda kv: kv[0][0]):
            lines.append(f"  {cls} x{n}: {form.name} ({form.value})")
        reasons = Counter((a.cls, a.reason) for a in self.left_alone)
        for (cls, reason), n in sorted(reasons.items()):
            lines.append(f"  left alone: {cls} x{n}: {reason}")
        return "\n".join(lines)


def is_rms_norm(module: nn.Module) -> bool:
    """Named like one (``...RMSNorm``, ``...RmsNorm``, ``...RMSNormGated``): the modules the
    report accounts for. What each computes is then found by :func:`~.forms.identify`."""
    return "rmsnorm" in type(module).__name__.lower() and not isinstance(module, IRRMSNorm)


def patch(model: nn.Module) -> PatchReport:
    """Replace each RMSNorm module of ``model`` whose computation is known by an IR one.

    Walks the module tree in ``named_modules`` order; every module named like an RMSNorm is
    identified by what it computes (:mod:`.forms`) and, when that is one of the known forms,
    replaced in its parent by an :class:`~.norm.IRRMSNorm` sharing its weight. Classes are
    identified once per call. Returns the report: what was replaced, with which form, and
    what was left alone and why. A module already patched is skipped; :func:`unpatch`
    restores the originals.
    """
    report = PatchReport()
    verdicts: dict[type, Identified | str] = {}
    replacements: dict[int, IRRMSNorm] = {}  # a module shared under two names, replaced once
    for path, child in list(model.named_modules(remove_duplicate=False)):
        if not is_rms_norm(child):
            continue
        kind = type(child)
        if kind not in verdicts:
            verdicts[kind] = identify(child)
        verdict = verdicts[kind]
        if not isinstance(verdict, Identified):
            report.left_alone.append(LeftAlone(path, kind.__name__, verdict))
            continue
        epsilon = epsilon_of(child)  # the class's form, this instance's epsilon
        assert isinstance(epsilon, float)  # identify() read it from the class's first instance
        if id(child) not in replacements:
            replacements[id(child)] = IRRMSNorm(child, verdict.form, epsilon)
        parent, _, name = path.rpartition(".")
        setattr(model.get_submodule(parent), name, replacements[id(child)])
        report.patched.append(Patched(path, kind.__name__, verdict.form, epsilon))
    return report


def unpatch(model: nn.Module) -> int:
    """Put back every module :func:`patch` replaced; returns how many."""
    restored = 0
    for _, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, IRRMSNorm):
                setattr(parent, name, child.replaced)
                restored += 1
    return restored
