"""Which platform this process runs on, which devices it can use, and the dtypes users name.

The platform decides the plugins' default priorities. ``IR_CORE_PLATFORM`` overrides, else the
config file's ``platform``; else the first plugin whose ``detect_platform`` hook answers (an
out-of-tree device such as ``npu``); else torch tells ``rocm``, ``cuda``, ``xpu`` or ``cpu``.
The hooks' answers reach this module through :func:`set_claims_source`, which the plugin layer
calls: this module never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import torch

from . import config
from .registry import registry

ENV_PLATFORM = config.ENV_PLATFORM

#: The dtype names the command line and the conformance kit accept.
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

#: The torch device type each built-in platform's kernels run on (ROCm is torch's "cuda").
PLATFORM_DEVICES = {"cuda": "cuda", "rocm": "cuda", "xpu": "xpu", "cpu": "cpu"}

_detected: tuple[str, str] | None = None
_claims: Callable[[], Iterable[tuple[str, Any]]] = tuple
_usable: dict[str, bool] = {}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def parse_dtypes(names: Iterable[str]) -> tuple[torch.dtype, ...]:
    """``["bf16", "float32"]`` -> dtypes; a ValueError lists the accepted names."""
    result = []
    for name in names:
        dtype = DTYPE_NAMES.get(name.strip().lower())
        if dtype is None:
            raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPE_NAMES)}")
        result.append(dtype)
    return tuple(dict.fromkeys(result))


# -- the platform ------------------------------------------------------------------------------


def set_claims_source(claims: Callable[[], Iterable[tuple[str, Any]]]) -> None:
    """Install what asks the plugins' ``detect_platform`` hooks: ``claims()`` yields
    ``(plugin, answer)`` in plugin order (the plugin layer calls this once)."""
    global _claims
    _claims = claims
    forget()


def detect_from_torch() -> str:
    """The built-in platforms, from what this torch build and machine have."""
    if torch.cuda.is_available():
        return "rocm" if getattr(torch.version, "hip", None) else "cuda"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    return "cpu"


def detect() -> tuple[str, str]:
    """``(platform, how it was decided)``: ``IR_CORE_PLATFORM``, ``file PATH:LINE`` (the config
    file), a hook or ``torch``; hooks and torch are asked once per plugin set."""
    global _detected
    override = os.environ.get(ENV_PLATFORM, "").strip()
    if override:
        return override, ENV_PLATFORM
    chosen = config.lookup("platform")
    if chosen.value:
        return chosen.value, chosen.source
    registry.ensure_loaded()  # first: loading forgets what was detected before
    if _detected is None:
        _detected = detect_from_torch(), "torch"
        for plugin, answer in _claims():
            if answer:
                _detected = str(answer), f"detect_platform hook of plugin {plugin}"
                break
    return _detected


def current_platform() -> str:
    """The platform whose defaults apply."""
    return detect()[0]


def forget() -> None:
    """Detect again next time (plugins changed)."""
    global _detected
    _detected = None


# -- devices -----------------------------------------------------------------------------------


def platform_device(platform: str) -> str:
    """The torch device type a platform's kernels run on (an unknown platform names its own)."""
    return PLATFORM_DEVICES.get(platform, platform)


def device_usable(device: str | torch.device) -> bool:
    """True when tensors can be made on ``device`` (a type such as ``"cuda"`` or a device such
    as ``"cuda:1"``) in this process; asked once per device."""
    key = str(device)
    if key not in _usable:
        if key == "cpu":
            _usable[key] = True
        elif key == "cuda":
            _usable[key] = torch.cuda.is_available()
        else:
            try:
                torch.empty(1, device=device)
                _usable[key] = True
            except Exception:  # an unknown or absent device (type)
                _usable[key] = False
    return _usable[key]


def devices_here() -> list[str]:
    """Device types present on this machine, cpu first (what the native impl runs on)."""
    return ["cpu", *(d for d in ("cuda", "xpu") if device_usable(d))]
