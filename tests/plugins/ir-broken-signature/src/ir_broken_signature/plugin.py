"""Registers an rms_norm impl whose parameters differ from the op's (``eps`` for ``epsilon``)."""

import torch

import ir_core


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    return x


@ir_core.hookimpl
def register_impls(registry):
    registry.register_impl("rms_norm", "broken_signature", rms_norm, device_types=("cpu",))
