"""The ``xpu_kernels`` provider's norms: vLLM's SYCL norm kernels for Intel GPUs
(vllm-xpu-kernels), and how the library is loaded.

``import vllm_xpu_kernels._C`` registers, among others (``csrc/torch_bindings.cpp`` and
``csrc/layernorm.cpp``, v0.1.12 .. v0.1.13.1):

- ``torch.ops._C.rms_norm(Tensor! result, Tensor input, Tensor? weight, float epsilon)``:
  writes the norm into ``result`` (contiguous, required); ``input`` needs a unit last stride.
- ``torch.ops._C.fused_add_rms_norm(Tensor! input, Tensor! residual, Tensor? weight, float
  epsilon)``: IN PLACE, ``residual += input`` then ``input = norm(residual)``.

``weight`` is ``Tensor?`` from v0.1.12 (``Tensor`` before): ``weight=None`` is served where the
registered schema says so. Both take fp32, fp16 or bf16 with the weight in the same dtype. Our
ops are functional, so ``rms_norm`` gets an output allocated here, and ``fused_add_rms_norm``
gets contiguous copies of x and residual that become the two outputs.

Precision, read from the kernels: the normalised value is rounded to the element type before
the weight multiply, and the fused kernel normalises the sum *rounded* to the element type
(vLLM's CUDA semantics). Each rounding is at most half an ulp: one extra rounding keeps fp16
``rms_norm`` within its 1e-3 tolerance and bf16 within 1.6e-2, but the two of fp16
``fused_add_rms_norm`` can exceed 1e-3, so that case is left to other providers.

Which torch a release needs: the wheels on PyPI declare no dependencies at all, so pip never
checks it; each git tag pins one ``torch == X.Y.Z+xpu`` in its ``pyproject.toml`` build
requirements (:data:`TORCH_OF_RELEASE`). The pairing is checked from the installed
distributions' metadata before anything is imported, as for IPEX.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ir_core import kit

PROVIDER = "xpu_kernels"
DISTRIBUTION = "vllm-xpu-kernels"
INSTALL_HINT = "pip install 'ir-provider-xpu[xpu-kernels]' with the release built for your torch"
RMS_NORM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: fp16 excluded: two roundings to fp16 inside the fused kernel (see the module docstring).
FUSED_ADD_DTYPES = (torch.float32, torch.bfloat16)
_OPS = ("rms_norm", "fused_add_rms_norm")

#: Release line (major, minor, micro) -> the torch X.Y it is built for, from each git tag's
#: ``pyproject.toml`` (v0.1.12 .. v0.1.13.1, and main at 4543b580, pin ``torch == 2.13.0+xpu``).
#: Lines not listed (0.1.14 on) are not checked here: their pins were not published in the
#: repository read; a build for another torch then fails at import, which is the reason shown.
TORCH_OF_RELEASE = {(0, 1, 12): "2.13", (0, 1, 13): "2.13"}


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("+")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def torch_mismatch(kernels_version: str, torch_version: str) -> str | None:
    """Why this vllm-xpu-kernels release cannot run on this torch, or None when it can (or
    when the release's torch is not known here)."""
    wanted = TORCH_OF_RELEASE.get(_release(kernels_version)[:3])
    if wanted is None or _major_minor(torch_version) == wanted:
        return None
    return (
        f"vllm-xpu-kernels {kernels_version} is built for torch {wanted}.*, found {torch_version}"
    )


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_problems(
    versions: Callable[[str], str | None] = _installed,
) -> list[str]:
    """Why vllm-xpu-kernels cannot run here, without importing it (empty when it can try)."""
    problems = []
    if kit.module_missing("vllm_xpu_kernels"):
        problems.append(f"vllm-xpu-kernels is not installed ({INSTALL_HINT})")
    else:
        kernels_version = versions(DISTRIBUTION)
        torch_version = versions("torch") or torch.__version__
        mismatch = torch_mismatch(kernels_version, torch_version) if kernels_version else None
        if mismatch:
            problems.append(mismatch)
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        problems.append("no Intel GPU (torch.xpu.is_available() is False)")
    return problems


@dataclass(frozen=True)
class XpuKernels:
    """The loaded kernels: ``torch.ops._C`` (or a test's recorder) and what its schemas say."""

    ops: Any
    #: ``rms_norm`` and ``fused_add_rms_norm`` take ``Tensor? weight`` (v0.1.12 on).
    optional_weight: bool

    def has(self, name: str) -> bool:
        return hasattr(self.ops, name)


def weight_is_optional(ops: Any, name: str) -> bool:
    """The registered schema of ``ops.<name>`` types its ``weight`` argument ``Tensor?``."""
    schema = getattr(getattr(getattr(ops, name, None), "default", None), "_schema", None)
    if schema is None:
        return False
    return any(a.name == "weight" and str(a.type) == "Optional[Tensor]" for a in schema.arguments)


def probe(ops: Any) -> XpuKernels:
    return XpuKernels(
        ops, all(weight_is_optional(ops, name) for name in ("rms_norm", "fused_add_rms_norm"))
    )


def import_ops(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[XpuKernels | None, str]:
    """Import ``vllm_xpu_kernels._C`` and probe ``torch.ops._C``; any exception is a reason."""
    _, reason = kit.import_module("vllm_xpu_kernels._C", import_module)
    if reason:  # built for another torch, missing SYCL runtime, ...
        return None, reason
    ops = torch.ops._C
    missing = [name for name in _OPS if not hasattr(ops, name)]
    if missing:
        return None, f"vllm_xpu_kernels registered no torch.ops._C.{', '.join(missing)}"
    return probe(ops), ""


#: The kernels, loaded on first use, once.
KERNELS: kit.LazyVendor[XpuKernels] = kit.LazyVendor(
    PROVIDER, import_ops, problems=environment_problems
)
#: ``(kernels, "")`` when the kernels are usable here, else ``(None, reason)``.
load = KERNELS.load
available = KERNELS.available


def available_with(*names: str) -> tuple[bool, str]:
    """The kernels loaded, with ``torch.ops._C.<name>`` registered for each of ``names``."""
    kernels, reason = load()
    if kernels is None:
        return False, reason
    missing = [n for n in names if not kernels.has(n)]
    if missing:
        return False, f"vllm_xpu_kernels registered no torch.ops._C.{', '.join(missing)}"
    return True, ""


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def _weight_ok(kernels: XpuKernels | None, x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    if weight is None:
        return kernels is not None and kernels.optional_weight
    return kit.is_weight_for(x, weight)


def _options_ok(x: torch.Tensor, weight_bias: float, variance_size: int | None) -> bool:
    return weight_bias == 0.0 and (variance_size is None or kit.known(variance_size == x.shape[-1]))


def rms_norm_supported(
    kernels: XpuKernels | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """fp32/fp16/bf16 x and a contiguous (H,) weight of its dtype, or ``weight=None`` where the
    schema takes it (v0.1.12+); no ``weight_bias`` and no ``variance_size < H`` (the kernels
    have neither). Any layout: the wrapper copies to rows."""
    return bool(
        x.dtype in RMS_NORM_DTYPES
        and _weight_ok(kernels, x, weight)
        and _options_ok(x, weight_bias, variance_size)
    )


def fused_add_rms_norm_supported(
    kernels: XpuKernels | None,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """As :func:`rms_norm_supported` but fp32/bf16 only, residual of x's shape and dtype."""
    return bool(
        x.dtype in FUSED_ADD_DTYPES
        and residual.dtype == x.dtype
        and kit.same_shape(residual, x)
        and _weight_ok(kernels, x, weight)
        and _options_ok(x, weight_bias, variance_size)
    )


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    return rms_norm_supported(KERNELS.loaded(), x, weight, weight_bias, variance_size)


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    return fused_add_rms_norm_supported(
        KERNELS.loaded(), x, residual, weight, weight_bias, variance_size
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``ops`` is ``torch.ops._C`` or a test's recorder.
# --------------------------------------------------------------------------------------------


def call_rms_norm(
    ops: Any, x: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> torch.Tensor:
    """``ops.rms_norm(out, x2d, weight, epsilon)`` into a new contiguous ``out`` of x's shape."""
    out = kit.empty_output(x)
    if x.numel() == 0:
        return out
    hidden = x.shape[-1]
    ops.rms_norm(out.view(-1, hidden), x.reshape(-1, hidden).contiguous(), weight, epsilon)
    return out


def call_fused_add_rms_norm(
    ops: Any, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ops.fused_add_rms_norm(out, residual_out, weight, epsilon)`` on owned copies of x and
    residual: the kernel turns them into the norm and the sum. x and residual stay untouched."""
    out, residual_out = kit.in_place_outputs(ops.fused_add_rms_norm, (x, residual), weight, epsilon)
    return out, residual_out


# --------------------------------------------------------------------------------------------
# Impls
# --------------------------------------------------------------------------------------------


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMSNorm of x (..., H) on an Intel GPU; see :func:`call_rms_norm`. Functional."""
    return call_rms_norm(KERNELS.require().ops, x, weight, epsilon)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(x + residual), x + residual)`` on an Intel GPU; see
    :func:`call_fused_add_rms_norm`. Functional."""
    return call_fused_add_rms_norm(KERNELS.require().ops, x, residual, weight, epsilon)
