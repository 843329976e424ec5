"""Test kernels shared by ir-core's tests: imported by test modules (this folder is on
``sys.path`` under pytest's default import mode)."""

from __future__ import annotations

import torch

import ir_core

NATIVE = ir_core.get_op("rms_norm").native


def scaled_rms_norm(marker: float):
    """An rms_norm kernel whose output is native's times ``marker``: the output says who ran."""

    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return NATIVE(x, weight, epsilon, weight_bias, variance_size) * marker

    return rms_norm
