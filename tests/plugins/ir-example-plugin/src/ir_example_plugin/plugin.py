"""An installed provider, ``example``: a real (if simple) rms_norm kernel for CPU.

It computes RMSNorm with ``torch.linalg.vector_norm`` instead of a mean of squares, so it is a
different implementation of the same semantics, and it only accepts 2-D contiguous inputs with
a weight, so tests can watch ``supports_args`` decline.
"""

from __future__ import annotations

import math

import torch

import ir_core

CALLS = {"rms_norm": 0}


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    CALLS["rms_norm"] += 1
    xf = x.float()
    h = xf.shape[-1]
    rms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True) / math.sqrt(h)
    out = xf / torch.sqrt(rms * rms + epsilon) * (weight.float() + weight_bias)
    return out.to(x.dtype)


def supports(x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
    return x.dim() == 2 and x.is_contiguous() and weight is not None and variance_size is None


@ir_core.hookimpl
def ir_plugin_info():
    return {
        "name": "example",
        "api_version": ir_core.API_VERSION,
        "description": "example CPU provider used by ir-core's tests",
    }


@ir_core.hookimpl
def register_impls(registry):
    registry.register_impl(
        "rms_norm", "example", rms_norm, device_types=("cpu",), supports_args=supports
    )


@ir_core.hookimpl
def platform_priority(platform):
    if platform == "example-accelerator":
        return {"rms_norm": ["example"]}
    return None


@ir_core.hookimpl
def detect_platform():
    import os

    return "example-accelerator" if os.environ.get("IR_EXAMPLE_CLAIM_PLATFORM") == "1" else None
