"""Which platform this process runs on: it decides the plugins' default priorities.

``IR_CORE_PLATFORM`` overrides; else the first plugin whose ``detect_platform`` hook answers
(an out-of-tree device such as ``npu``); else torch tells ``rocm``, ``cuda``, ``xpu`` or ``cpu``.
"""

from __future__ import annotations

import os

import torch

ENV_PLATFORM = "IR_CORE_PLATFORM"

_detected: tuple[str, str] | None = None


def detect_from_torch() -> str:
    """The built-in platforms, from what this torch build and machine have."""
    if torch.cuda.is_available():
        return "rocm" if getattr(torch.version, "hip", None) else "cuda"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    return "cpu"


def detect() -> tuple[str, str]:
    """``(platform, how it was decided)``; hooks and torch are asked once per plugin set."""
    global _detected
    override = os.environ.get(ENV_PLATFORM, "").strip()
    if override:
        return override, ENV_PLATFORM
    from . import discovery

    discovery.load_plugins()  # first: loading forgets what was detected before
    if _detected is None:
        _detected = detect_from_torch(), "torch"
        for plugin, answer in discovery.call_hooks("detect_platform"):
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
