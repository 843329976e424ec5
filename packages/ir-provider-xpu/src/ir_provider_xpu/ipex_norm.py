"""The ``ipex`` provider: Intel Extension for PyTorch's RMS norm kernels, on XPU and CPU.

Wrapped functions (``intel_extension_for_pytorch.llm.functional``, IPEX 2.x):

- ``rms_norm(hidden_states, weight, eps) -> Tensor``: out of place.
- ``add_rms_norm(residual, x, weight, bias, eps, add_back=False) -> Tensor``: the norm of
  ``x + residual``; with ``add_back=True`` it also stores the sum into ``residual`` (in place).
  Note the order: residual first. On CPU it runs ``torch.ops.torch_ipex.add_rmsnorm``, on XPU
  ``torch.ops.torch_ipex.add_rms_norm`` (XPU builds only).

Why ``add_back=False`` plus one ``torch.add`` for ``residual_out``: with ``add_back=True`` IPEX
writes the sum into ``residual`` -- our op is functional, so that would need a copy of residual
first, which costs the same memory traffic as the separate add -- and, measured on CPU with IPEX
2.8, it then normalises the sum *rounded to the residual's dtype*, not the fp32 sum of the op's
semantics (a different precision order for bf16/fp16). With ``add_back=False`` the output
equalled native bit for bit in fp32, bf16 and fp16 on CPU, and ``torch.add`` of two tensors of
one dtype rounds the fp32 sum once, exactly as ``residual_out`` is defined.

IPEX X.Y is built for torch X.Y only and, imported next to another torch, crashes with an
AttributeError at import time. So the two versions are compared from the installed
distributions' metadata *before* importing, and a mismatch reads e.g. "IPEX 2.8.0 needs torch
2.8.*, found 2.13.0+cpu". IPEX itself is archived upstream (development stopped after 2.8);
this provider serves machines that already have it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ir_core import kit

PROVIDER = "ipex"
DISTRIBUTION = "intel-extension-for-pytorch"
INSTALL_HINT = (
    "pip install 'ir-provider-xpu[ipex]' with the IPEX release of your torch: IPEX X.Y needs "
    "torch X.Y.*"
)
#: Dtypes IPEX's rms_norm/add_rms_norm run in (x, residual and weight alike).
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def version_mismatch(ipex_version: str, torch_version: str) -> str | None:
    """Why this IPEX cannot be imported next to this torch, or None when they pair up.

    IPEX X.Y.* (``2.8.0``, ``2.8.10+xpu``) pairs with torch X.Y.* and nothing else.
    """
    wanted = _major_minor(ipex_version)
    if _major_minor(torch_version) == wanted:
        return None
    return f"IPEX {ipex_version} needs torch {wanted}.*, found {torch_version}"


def installed_versions() -> tuple[str | None, str]:
    """``(IPEX version or None, torch version)`` from distribution metadata, importing nothing."""
    try:
        ipex_version: str | None = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        ipex_version = None
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # a source build without metadata
        torch_version = torch.__version__
    return ipex_version, torch_version


@dataclass(frozen=True)
class IpexApi:
    """The loaded IPEX: its version, ``ipex.llm.functional``, and whether it can run on XPU."""

    version: str
    functional: Any
    #: This IPEX build has XPU kernels and torch sees an Intel GPU.
    xpu: bool


def load_from(
    ipex_version: str | None,
    torch_version: str,
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[IpexApi | None, str]:
    """Check the versions, then import IPEX; ``(api, "")`` or ``(None, reason)``, never raises."""
    if ipex_version is None:
        return None, f"intel-extension-for-pytorch is not installed ({INSTALL_HINT})"
    mismatch = version_mismatch(ipex_version, torch_version)
    if mismatch is not None:
        return None, mismatch
    # IPEX's import can fail in many ways; each one is a reason
    _, reason = kit.import_module("intel_extension_for_pytorch", import_module)
    if reason:
        return None, reason
    functional, reason = kit.import_module(
        "intel_extension_for_pytorch.llm.functional", import_module
    )
    if reason:
        return None, reason
    xpu_module = getattr(torch, "xpu", None)
    xpu = bool(
        xpu_module is not None
        and xpu_module.is_available()
        and hasattr(torch.ops.torch_ipex, "add_rms_norm")
    )
    return IpexApi(ipex_version, functional, xpu), ""


#: IPEX for this process, decided once (versions first, then the import).
IPEX: kit.LazyVendor[IpexApi] = kit.LazyVendor(PROVIDER, lambda: load_from(*installed_versions()))
#: ``(api, "")`` or ``(None, reason)``; :func:`loaded_api` never imports (for supports_args).
load = IPEX.load
loaded_api = IPEX.loaded


def available_with(*functions: str) -> tuple[bool, str]:
    """IPEX loaded and ``ipex.llm.functional`` has ``functions`` (IPEX 2.4 added add_rms_norm,
    silu_mul and gelu_mul; 2.3 had only rms_norm and rotary_embedding)."""
    api, reason = load()
    if api is None:
        return False, reason
    missing = [n for n in functions if not callable(getattr(api.functional, n, None))]
    if missing:
        return False, f"IPEX {api.version} has no ipex.llm.functional.{' or .'.join(missing)}"
    return True, ""


def available_rms_norm() -> tuple[bool, str]:
    return available_with("rms_norm")


def available_fused_add_rms_norm() -> tuple[bool, str]:
    return available_with("add_rms_norm")


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def supported(
    api: IpexApi | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """What IPEX computes exactly as the op does; everything else is left to native.

    fp32/bf16/fp16 x with a (H,) unit-stride weight of the same dtype. Declined: ``weight=None``
    (IPEX needs a tensor), ``weight_bias != 0`` (no Gemma variant), ``variance_size < H`` (IPEX
    always reduces over all of H), a weight of another dtype (IPEX's kernels take one dtype),
    and XPU tensors unless this IPEX build has XPU kernels and an XPU is present.
    """
    device = x.device.type
    return bool(
        (device == "cpu" or (device == "xpu" and api is not None and api.xpu))
        and x.dtype in SUPPORTED_DTYPES
        and kit.is_weight_for(x, weight)
        and weight_bias == 0.0
        and (variance_size is None or variance_size == x.shape[-1])
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``functional`` is ``ipex.llm.functional`` or a test's recorder.
# --------------------------------------------------------------------------------------------


def _layout_for(x: torch.Tensor) -> torch.Tensor:
    """x itself on CPU (IPEX's CPU kernels take any layout: checked on IPEX 2.8); a contiguous
    tensor on XPU, whose kernels were not verified on strided inputs."""
    return x if x.device.type == "cpu" else x.contiguous()


def call_rms_norm(
    functional: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """``functional.rms_norm(x, weight, epsilon)``: a new tensor of x's shape and dtype."""
    if x.numel() == 0:
        return kit.empty_output(x)
    return functional.rms_norm(_layout_for(x), weight, epsilon)


def call_fused_add_rms_norm(
    functional: Any, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``functional.add_rms_norm(residual, x, weight, None, epsilon, False)`` for ``out`` and
    ``torch.add(x, residual)`` for ``residual_out`` (see the module docstring for why not
    ``add_back``). Neither writes into x or residual."""
    if x.numel() == 0:
        return kit.empty_output(x), kit.empty_output(residual)
    x_in, residual_in = _layout_for(x), _layout_for(residual)
    out = functional.add_rms_norm(residual_in, x_in, weight, None, epsilon, False)
    return out, torch.add(x, residual)


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
    """RMSNorm of x (..., H) by IPEX on CPU or XPU; see :func:`call_rms_norm`. Functional."""
    assert weight is not None
    return call_rms_norm(IPEX.require().functional, x, weight, epsilon)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    return supported(loaded_api(), x, weight, weight_bias, variance_size)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(x + residual), x + residual)`` by IPEX; see :func:`call_fused_add_rms_norm`."""
    assert weight is not None
    return call_fused_add_rms_norm(IPEX.require().functional, x, residual, weight, epsilon)


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`supported`, with residual of x's shape and dtype."""
    return bool(
        residual.dtype == x.dtype
        and tuple(residual.shape) == tuple(x.shape)
        and supported(loaded_api(), x, weight, weight_bias, variance_size)
    )
