"""The ``oink`` provider: KernelAgent-Oink's CuTeDSL RMS norm kernels for NVIDIA Blackwell.

kernelagent-oink (``meta-pytorch/KernelAgent``, ``oink/``) registers two torch custom ops when
``kernelagent_oink.blackwell.oink_custom_ops`` is imported (its vLLM plugin entry point does
that under ``VLLM_USE_OINK_RMSNORM=1``; this provider imports the module itself when needed):

- ``torch.ops.oink.rmsnorm(x, weight, eps) -> Tensor``: functional. ``x`` must be a 2-D (M, N)
  view with unit stride along N; its row stride may exceed N (padded rows) and is preserved in
  the output on the fast path.
- ``torch.ops.oink.fused_add_rms_norm(x, residual, weight, eps) -> None``: IN PLACE,
  ``residual = x + residual`` then ``x = rmsnorm(residual)``; x and residual of one shape and
  dtype.

Both take fp16, bf16 or fp32 with a weight of the same dtype. On GPUs older than SM100 Oink
silently falls back to a PyTorch reference, so the provider is available only on compute
capability 10.0 or newer, where the CuTeDSL kernels run. Oink's pointer path vectorises rows in
256-bit chunks, so the row stride must be a multiple of 16 (16-bit types) or 8 (fp32) elements:
the rule vLLM applies before calling it, which ``supports_args`` applies here.

Our ops are functional: ``fused_add_rms_norm`` gets contiguous copies of x and residual, which
Oink then turns into the two outputs. That costs a read and a write of both tensors on top of
the kernel, which is why this plugin only puts ``oink`` first for ``rms_norm``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import torch

from ir_core import kit

PROVIDER = "oink"
MIN_CAPABILITY = (10, 0)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: Importing this module registers ``torch.ops.oink.*``.
REGISTERING_MODULE = "kernelagent_oink.blackwell.oink_custom_ops"
INSTALL_HINT = "not on the package index: pip install -e ./oink from a KernelAgent checkout"


def vector_elements(dtype: torch.dtype) -> int | None:
    """Elements per 256-bit vector of Oink's pointer path: the row stride must be a multiple."""
    if dtype in (torch.float16, torch.bfloat16):
        return 16
    if dtype == torch.float32:
        return 8
    return None


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------


def capability_problem(index: int, name: str, capability: tuple[int, int]) -> str | None:
    """Why CUDA device ``index`` cannot run Oink's CuTeDSL kernels, or None when it can."""
    if tuple(capability) >= MIN_CAPABILITY:
        return None
    major, minor = capability
    return (
        f"SM100 missing: cuda:{index} ({name}) has compute capability {major}.{minor} "
        f"(sm_{major}{minor}); Oink's CuTeDSL kernels need {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} "
        "or newer (Blackwell)"
    )


@functools.lru_cache(maxsize=1)
def environment_problems() -> tuple[str, ...]:
    """Everything missing for Oink on this machine, found without importing Oink."""
    problems = []
    if kit.module_missing("kernelagent_oink") and not hasattr(torch.ops.oink, "rmsnorm"):
        problems.append(f"kernelagent-oink is not installed ({INSTALL_HINT})")
    if getattr(torch.version, "hip", None) is not None:
        problems.append("ROCm build of torch: Oink's kernels are for NVIDIA Blackwell GPUs")
    elif not torch.cuda.is_available():
        problems.append("no CUDA device (torch.cuda.is_available() is False)")
    else:
        index = torch.cuda.current_device()
        problem = capability_problem(
            index, torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index)
        )
        if problem is not None:
            problems.append(problem)
    missing = [m for m in ("cutlass", "cuda.bindings") if kit.module_missing(m)]
    if missing:
        problems.append(
            f"CuTeDSL stack missing: {', '.join(missing)} (pip install 'ir-provider-oink[cutedsl]')"
        )
    return tuple(problems)


def register_ops(
    ops: Any, op_name: str, import_module: Callable[[str], Any] = importlib.import_module
) -> str | None:
    """Make sure ``ops.<op_name>`` (``torch.ops.oink``) exists; None, or why it does not.

    Imports kernelagent-oink's op module when the op is not registered yet; any exception there
    is a reason, never raised.
    """
    if hasattr(ops, op_name):
        return None
    _, reason = kit.import_module(REGISTERING_MODULE, import_module)
    if reason:
        return reason
    if not hasattr(ops, op_name):
        return f"kernelagent-oink registered no torch.ops.oink.{op_name}"
    return None


def _available(op_name: str) -> tuple[bool, str]:
    problems = environment_problems()
    if problems:
        return False, "; ".join(problems)
    problem = register_ops(torch.ops.oink, op_name)
    return (False, problem) if problem else (True, "")


def available_rms_norm() -> tuple[bool, str]:
    return _available("rmsnorm")


def available_fused_add_rms_norm() -> tuple[bool, str]:
    return _available("fused_add_rms_norm")


# --------------------------------------------------------------------------------------------
# supports_args: Oink's stride rules
# --------------------------------------------------------------------------------------------


def _rows_view(x: torch.Tensor) -> torch.Tensor | None:
    """x as a 2-D (N, H) view without a copy, or None when its layout does not allow one.

    Only metadata is touched (``view`` never reads data), so this works on FakeTensors.
    """
    try:
        return x.view(-1, x.shape[-1])
    except RuntimeError:
        return None


def _options_ok(x: torch.Tensor, weight_bias: float, variance_size: int | None) -> bool:
    return weight_bias == 0.0 and (variance_size is None or variance_size == x.shape[-1])


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp16/bf16/fp32 x that views as (N, H) without a copy, with unit stride along H and a
    row stride that is a multiple of 16 (16-bit) or 8 (fp32) elements; a contiguous (H,) weight
    of x's dtype; no ``weight_bias`` (Oink has no Gemma variant) and no ``variance_size < H``."""
    vector = vector_elements(x.dtype)
    if vector is None or not kit.is_weight_for(x, weight):
        return False
    if not _options_ok(x, weight_bias, variance_size):
        return False
    rows = _rows_view(x)
    return bool(
        rows is not None
        and (rows.shape[1] == 1 or rows.stride(1) == 1)
        and rows.stride(0) % vector == 0
    )


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports` for dtypes and options, residual of x's shape and dtype.

    x and residual are copied into contiguous (N, H) outputs that Oink updates in place, so
    their own layout is free, and the copies' row stride H must be a multiple of the vector.
    """
    vector = vector_elements(x.dtype)
    return bool(
        vector is not None
        and residual.dtype == x.dtype
        and tuple(residual.shape) == tuple(x.shape)
        and kit.is_weight_for(x, weight)
        and _options_ok(x, weight_bias, variance_size)
        and x.shape[-1] % vector == 0
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``ops`` is ``torch.ops.oink`` or a test's recorder.
# --------------------------------------------------------------------------------------------


def call_rms_norm(ops: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``ops.rmsnorm(x2d, weight, epsilon)`` on x viewed (not copied) as (N, H).

    Returns Oink's new tensor, viewed back to x's shape (with x's row stride when Oink keeps
    it); x is only read.
    """
    if x.numel() == 0:
        return kit.empty_output(x)
    rows = _rows_view(x)
    assert rows is not None, "supports_args admits only row-viewable x"
    return ops.rmsnorm(rows, weight, epsilon).view(x.shape)


def call_fused_add_rms_norm(
    ops: Any, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ops.fused_add_rms_norm(out, residual_out, weight, epsilon)`` on contiguous copies of
    x and residual owned here; Oink turns them into the norm and the sum in place."""
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
    """RMSNorm of x (..., H) by Oink on Blackwell; see :func:`call_rms_norm`. Functional."""
    assert weight is not None
    return call_rms_norm(torch.ops.oink, x, weight, epsilon)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(x + residual), x + residual)`` by Oink, on owned copies; see
    :func:`call_fused_add_rms_norm`."""
    assert weight is not None
    return call_fused_add_rms_norm(torch.ops.oink, x, residual, weight, epsilon)
