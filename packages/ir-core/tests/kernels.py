"""Test kernels shared by ir-core's tests: imported by test modules (this folder is on
``sys.path`` under pytest's default import mode)."""

from __future__ import annotations

import torch

import ir_core

NATIVE = ir_core.get_op("rms_norm").native


def rms_norm_signature(body):
    """Give ``body(x, weight, epsilon, weight_bias, variance_size)`` the op's exact signature
    (registration compares names, annotations and defaults)."""

    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return body(x, weight, epsilon, weight_bias, variance_size)

    return rms_norm


def scaled_rms_norm(marker: float):
    """An rms_norm kernel whose output is native's times ``marker``: the output says who ran."""
    return rms_norm_signature(lambda *args: NATIVE(*args) * marker)
