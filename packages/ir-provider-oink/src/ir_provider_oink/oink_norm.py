"""The ``oink`` provider: KernelAgent-Oink's CuTeDSL RMS norm kernels for NVIDIA Blackwell.

Entry points, read in ``meta-pytorch/KernelAgent`` (``oink/src/kernelagent_oink/blackwell/``,
commit a3001c70):

- ``torch.ops.oink.rmsnorm(x, weight, eps) -> Tensor`` (registered when
  ``kernelagent_oink.blackwell.oink_custom_ops`` is imported; its vLLM plugin entry point does
  that under ``VLLM_USE_OINK_RMSNORM=1``, this provider imports the module itself): functional,
  x a 2-D (M, N) view; calls ``rmsnorm_forward``.
- ``kernelagent_oink.blackwell.rmsnorm.fused_add_rmsnorm_forward(x, residual, weight, eps) ->
  (y, z)``: out of place, ``(RMSNorm(x + residual), x + residual)``, the sum in fp32 and
  normalised unrounded (the op's semantics); it views x and residual as (M, N) and calls
  ``rmsnorm_forward`` with the residual. Used instead of the in-place
  ``torch.ops.oink.fused_add_rms_norm``, which would need two copies to stay functional.

Both run Oink's CuTeDSL kernel only when ``_can_use_ptr_path(x, weight, bias, residual)``
holds, and otherwise **silently** return its PyTorch reference (correct, and slow). So
``supports_args`` admits exactly what that predicate accepts, alignment aside (below):

- x (and residual) fp16/bf16/fp32 of one dtype, viewable as (M, N) with unit stride along N
  and a row stride that is a multiple of 256 bits (16 elements for 16-bit, 8 for fp32); the
  residual's row stride equal to x's;
- a contiguous weight of x's dtype, or an fp32 weight with fp16/bf16 x ("Quack-style").

Oink also wants 16-byte aligned x, residual and weight pointers (32 bytes for an fp32 weight).
``supports_args`` does not read alignment: ir-core caches its answer per shape and strides, not
per storage offset (a predicate must not depend on what the key omits), so the answer for the
first tensor of a shape would stand for every later one. Alignment is guarded when the kernel is
called instead: a tensor whose data pointer is misaligned (an odd storage offset, or memory from
another library) is copied into a fresh buffer with the same strides, so the kernel still runs,
never the fallback.

On GPUs older than SM100 the rmsnorm op itself returns the reference without trying the
kernel, and the fused-add function would reach a kernel built for sm_10x: the provider is
available only on compute capability 10.0 or newer.
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
#: Oink's Python entry points, among them the out-of-place fused add.
FUSED_ADD_MODULE = "kernelagent_oink.blackwell.rmsnorm"
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


def load_fused_add(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[Callable[..., Any] | None, str]:
    """``kernelagent_oink.blackwell.rmsnorm.fused_add_rmsnorm_forward``, or the reason not."""
    problems = environment_problems()
    if problems:
        return None, "; ".join(problems)
    module, reason = kit.import_module(FUSED_ADD_MODULE, import_module)
    if reason:
        return None, reason
    fn = getattr(module, "fused_add_rmsnorm_forward", None)
    if not callable(fn):
        return None, f"{FUSED_ADD_MODULE} has no fused_add_rmsnorm_forward"
    return fn, ""


#: Oink's out-of-place fused add, imported once on first use.
FUSED_ADD: kit.LazyVendor[Callable[..., Any]] = kit.LazyVendor(PROVIDER, load_fused_add)
available_fused_add_rms_norm = FUSED_ADD.available


# --------------------------------------------------------------------------------------------
# supports_args: what Oink's _can_use_ptr_path accepts, from metadata
# --------------------------------------------------------------------------------------------


def _rows_view(x: torch.Tensor) -> torch.Tensor | None:
    """x as a 2-D (N, H) view without a copy, or None when its layout does not allow one.

    Only metadata is touched (``view`` never reads data), so this works on FakeTensors.
    """
    try:
        return x.view(-1, x.shape[-1])
    except RuntimeError:
        return None


def _weight_ok(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    """A contiguous (H,) weight of x's dtype, or fp32 with 16-bit x."""
    if weight is None or weight.dim() != 1 or not kit.has_unit_last_stride(weight):
        return False
    return weight.dtype == x.dtype or (
        weight.dtype == torch.float32 and x.dtype in (torch.float16, torch.bfloat16)
    )


def _rows_ok(rows: torch.Tensor | None, vector: int) -> bool:
    return bool(
        rows is not None
        and kit.known(rows.stride(1) == 1)
        and kit.known(rows.stride(0) % vector == 0)
    )


def _options_ok(x: torch.Tensor, weight_bias: float, variance_size: int | None) -> bool:
    return weight_bias == 0.0 and (variance_size is None or kit.known(variance_size == x.shape[-1]))


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp16/bf16/fp32 x that views as (N, H) without a copy, with unit stride along H, a row
    stride that is a multiple of 16 (16-bit) or 8 (fp32) elements; a contiguous (H,) weight of
    x's dtype or fp32 with 16-bit x (alignment is seen to when the kernel is called);
    no ``weight_bias`` (Oink has no Gemma variant) and no ``variance_size < H``."""
    vector = vector_elements(x.dtype)
    return bool(
        vector is not None
        and _weight_ok(x, weight)
        and _options_ok(x, weight_bias, variance_size)
        and _rows_ok(_rows_view(x), vector)
    )


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports`, with a residual of x's shape and dtype that also views as
    (N, H), with x's row stride."""
    vector = vector_elements(x.dtype)
    if vector is None or residual.dtype != x.dtype or not kit.same_shape(residual, x):
        return False
    rows, residual_rows = _rows_view(x), _rows_view(residual)
    return bool(
        _weight_ok(x, weight)
        and _options_ok(x, weight_bias, variance_size)
        and _rows_ok(rows, vector)
        and _rows_ok(residual_rows, vector)
        and kit.known(residual_rows.stride(0) == rows.stride(0))
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: ``ops`` is ``torch.ops.oink``, ``fused_add`` Oink's function, or recorders.
# --------------------------------------------------------------------------------------------


def _pointer_aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when its data pointer has the alignment Oink's pointer path needs, else a
    fresh copy with the same strides (whose storage the allocator aligns)."""
    alignment = 32 if t.dim() == 1 and t.dtype == torch.float32 else 16
    if t.data_ptr() % alignment == 0:
        return t
    copy = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    return copy.copy_(t)


def _rows_for_oink(x: torch.Tensor) -> torch.Tensor:
    rows = _rows_view(x)
    assert rows is not None, "supports_args admits only row-viewable tensors"
    return _pointer_aligned(rows)


def call_rms_norm(ops: Any, x: torch.Tensor, weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``ops.rmsnorm(x2d, weight, epsilon)`` on x viewed (not copied) as (N, H).

    Returns Oink's new tensor, viewed back to x's shape (with x's row stride, which Oink keeps);
    x is only read.
    """
    if x.numel() == 0:
        return kit.empty_output(x)
    return ops.rmsnorm(_rows_for_oink(x), _pointer_aligned(weight), epsilon).view(x.shape)


def call_fused_add_rms_norm(
    fused_add: Callable[..., Any],
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fused_add(x2d, residual2d, weight, epsilon) -> (y, z)``: Oink allocates both outputs
    (with x's and residual's row strides); nothing is copied and no input is written."""
    if x.numel() == 0:
        return kit.empty_output(x), kit.empty_output(residual)
    y, z = fused_add(_rows_for_oink(x), _rows_for_oink(residual), _pointer_aligned(weight), epsilon)
    return y.view(x.shape), z.view(residual.shape)


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
    """``(norm(x + residual), x + residual)`` by Oink's out-of-place fused add; see
    :func:`call_fused_add_rms_norm`."""
    assert weight is not None
    return call_fused_add_rms_norm(FUSED_ADD.require(), x, residual, weight, epsilon)
