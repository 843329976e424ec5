"""What an RMSNorm module of a Hugging Face model computes, found by running it.

transformers has some two hundred RMSNorm classes (one per model family, most of them
generated copies), computing a handful of different things that matter for numerics:

- ``LLAMA``: ``weight * normed.to(input_dtype)``: the normalized input is rounded to the input's
  dtype, then multiplied by the weight in the weight's dtype and rounded again (the result has
  the promoted dtype of the two). Llama, Qwen2/3, Mistral, DeepSeek-V3 and most others.
- ``ONCE``: ``(normed * weight).to(input_dtype)`` with the product in fp32: one rounding. OLMo2,
  Moshi, Helium, NemotronH.
- ``GEMMA``: ``(normed * (1 + weight.float())).to(input_dtype)``: one rounding of ``1 + w``.
  Gemma, Gemma2/3, RecurrentGemma, Qwen3-Next.
- ``UNWEIGHTED``: ``normed.to(input_dtype)``, no weight.

``normed`` is always ``x.float() * rsqrt(mean(x.float() ** 2) + eps)``.

Why by running it: a class name says which model family a norm belongs to, not what it computes
(Gemma's norm changed its rounding between releases under one name, and new families arrive
every month as copies under new names), and the forward's source differs in spelling between
classes that compute the same thing. So :func:`identify` reads only the module's *structure*
from its attributes (one weight of shape ``(H,)`` or none, one epsilon attribute, a forward of
one argument) and then runs a copy of the module on probe inputs: bf16 activations with a bf16
weight (where the one- and two-rounding forms differ in most elements) and with an fp32 weight
(which decides the output dtype), including rows small enough that epsilon matters. A form is
taken only if the module reproduces it *bitwise* on every probe; a module that matches none
(a gated norm, a hub kernel with other rounding, ``pow(-0.5)`` instead of ``rsqrt``) is left
alone, with the reason.
"""

from __future__ import annotations

import copy
import enum
import inspect
from dataclasses import dataclass

import torch
from torch import nn

#: Attribute names the epsilon is found under, in transformers' norm classes.
EPS_ATTRIBUTES = ("variance_epsilon", "eps", "epsilon")

#: Width of the probe input for a module without a weight.
_UNWEIGHTED_WIDTH = 64


class Form(enum.Enum):
    """What an RMSNorm computes after normalizing (see the module docstring)."""

    LLAMA = "weight * normed.to(dtype): rounded twice"
    ONCE = "normed * weight in fp32: rounded once"
    GEMMA = "normed * (1 + weight) in fp32: rounded once"
    UNWEIGHTED = "normed, no weight: rounded once"

    @property
    def weight_bias(self) -> float:
        """The ``weight_bias`` of ``ir_core.ops.rms_norm`` that computes this form."""
        return 1.0 if self is Form.GEMMA else 0.0


@dataclass(frozen=True)
class Identified:
    """A module found to compute ``form`` with ``epsilon``."""

    form: Form
    epsilon: float


def _normed(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + epsilon)


def reference(
    form: Form, x: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> torch.Tensor:
    """What a module of ``form`` returns for ``x`` (the forms written out, for the probes)."""
    normed = _normed(x, epsilon)
    if form is Form.UNWEIGHTED:
        return normed.to(x.dtype)
    if weight is None:
        raise ValueError(f"the {form.name} form needs a weight")
    if form is Form.LLAMA:
        return weight * normed.to(x.dtype)
    bias = form.weight_bias
    return (normed * (weight.float() + bias if bias else weight.float())).to(x.dtype)


def epsilon_of(module: nn.Module) -> float | str:
    """The module's epsilon attribute (one of :data:`EPS_ATTRIBUTES`), or why there is none.

    Read per instance: instances of one class differ (DeepSeek-V3's latent norms keep the
    default 1e-6 while its layer norms take the config's).
    """
    found = {
        name: value
        for name in EPS_ATTRIBUTES
        if isinstance(value := getattr(module, name, None), float)
    }
    if len(set(found.values())) != 1:
        names = ", ".join(EPS_ATTRIBUTES)
        return f"no single float epsilon attribute (looked for {names}; found {found or 'none'})"
    return next(iter(found.values()))


def _structure(module: nn.Module) -> str | None:
    """Why ``module`` cannot be an RMSNorm of one input and one ``(H,)`` weight, or None."""
    weight = getattr(module, "weight", None)
    if weight is not None and not (isinstance(weight, torch.Tensor) and weight.dim() == 1):
        return f"its weight is not one vector (got {type(weight).__name__})"
    others = [n for n, _ in module.named_parameters() if n != "weight"]
    others += [n for n, _ in module.named_buffers() if n != "weight"]
    if others:
        return f"it has tensors besides its weight: {', '.join(others)}"
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return "its forward has no readable signature"
    if len(parameters) != 1 or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return (
            "its forward takes more than the input (" + ", ".join(p.name for p in parameters) + ")"
        )
    return None


def _probe_input(width: int, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(6, width, generator=g) * 3
    x[1] *= 1e-4  # mean(x**2) ~ 1e-7: the epsilon decides this row
    x[2] *= 1e3
    return x.to(torch.bfloat16)


def _forms_reproduced(module: nn.Module, epsilon: float) -> list[Form]:
    weighted = getattr(module, "weight", None) is not None
    width = module.weight.shape[0] if weighted else _UNWEIGHTED_WIDTH
    g = torch.Generator().manual_seed(width)
    # a module with a weight may still ignore it (FalconMamba's dummy buffer): random weights
    # tell every weighted form from the unweighted one
    candidates = list(Form) if weighted else [Form.UNWEIGHTED]
    for weight_dtype in (torch.bfloat16, torch.float32):
        probe = copy.deepcopy(module)
        weight = None
        if weighted:
            weight = (torch.randn(width, generator=g) * 0.5).to(weight_dtype)
            is_buffer = "weight" in probe._buffers
            probe.weight = weight if is_buffer else nn.Parameter(weight, requires_grad=False)
        x = _probe_input(width, g)
        with torch.no_grad():
            got = probe(x)
        candidates = [
            f
            for f in candidates
            if isinstance(got, torch.Tensor)
            and (want := reference(f, x, weight, epsilon)).dtype == got.dtype
            and torch.equal(got, want)
        ]
        if not weighted:
            break  # the weight dtype cannot matter
    return candidates


def identify(module: nn.Module) -> Identified | str:
    """The form ``module`` computes, or why it is none of them (see the module docstring)."""
    reason = _structure(module)
    epsilon = epsilon_of(module)
    if reason is None and isinstance(epsilon, str):
        reason = epsilon
    if reason is not None:
        return reason
    try:
        forms = _forms_reproduced(module, epsilon)
    except Exception as error:  # a forward that cannot run on a CPU probe
        return f"its forward failed on a CPU probe: {type(error).__name__}: {error}"
    if len(forms) != 1:
        return "its output reproduces none of the known forms bitwise: " + ", ".join(
            f.name for f in Form
        )
    return Identified(forms[0], epsilon)
