"""The ``triton`` provider: the op-signature impls around :mod:`ir_provider_cuda.triton_kernels`.

Triton runs on NVIDIA and AMD GPUs (torch's ``"cuda"`` device type covers ROCm) and, with
``TRITON_INTERPRET=1``, on CPU tensors through Triton's interpreter, which is how CI runs these
very kernels without a GPU. The kernel module is imported on the first call, not with the
plugin, so a broken Triton makes this provider unavailable rather than the plugin quarantined.
"""

from __future__ import annotations

import os

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, row_layout, same_shape

PROVIDER = "triton"

#: Dtypes the kernels load and store; arithmetic is fp32 whatever the mix.
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: The kernels (which import Triton), imported on the first call.
KERNELS = kit.LazyVendor(PROVIDER, lambda: kit.import_module("ir_provider_cuda.triton_kernels"))


def interpret_requested() -> bool:
    """True when ``TRITON_INTERPRET`` asks Triton to interpret kernels on the CPU."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def device_types() -> tuple[str, ...]:
    """``("cuda",)``, plus ``"cpu"`` when ``TRITON_INTERPRET=1`` (read when this is called,
    i.e. at registration)."""
    return ("cuda", "cpu") if interpret_requested() else ("cuda",)


def available() -> tuple[bool, str]:
    """Triton must import, and there must be a GPU or the interpreter must be on."""
    try:
        import triton  # noqa: F401
    except Exception as exc:  # ImportError, or a Triton whose native parts fail to load
        return False, f"triton is not importable ({type(exc).__name__}: {exc})"
    if torch.cuda.is_available() or interpret_requested():
        return True, ""
    return False, "no CUDA/ROCm device (set TRITON_INTERPRET=1 to run the kernels on CPU)"


# --------------------------------------------------------------------------------------------
# supports_args: dtypes, ranks and strides only (FakeTensor-safe)
# --------------------------------------------------------------------------------------------


def _rows_ok(t: torch.Tensor) -> bool:
    return t.dtype in SUPPORTED_DTYPES and has_unit_last_stride(t) and row_layout(t) is not None


def _weight_ok(weight: torch.Tensor | None) -> bool:
    return weight is None or (weight.dtype in SUPPORTED_DTYPES and weight.dim() == 1)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp32/fp16/bf16 ``x`` and weight in any mix, unit stride along H, rows that collapse to
    two stride levels (every 2-D and 3-D tensor); any H, any weight_bias and variance_size."""
    return bool(_rows_ok(x) and _weight_ok(weight))


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports`, for ``x`` and ``residual`` of the same shape (their
    dtypes and row strides may differ)."""
    return bool(
        _rows_ok(x) and _rows_ok(residual) and same_shape(x, residual) and _weight_ok(weight)
    )


def dual_rms_norm_supports(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> bool:
    """As :func:`rms_norm_supports` for each of ``a`` and ``b``, both on the same device."""
    return bool(
        _rows_ok(a)
        and _rows_ok(b)
        and _weight_ok(a_weight)
        and _weight_ok(b_weight)
        and a.device == b.device
    )


# --------------------------------------------------------------------------------------------
# Impls (the ops' exact signatures)
# --------------------------------------------------------------------------------------------


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMS norm of ``x`` over its last dim, in one Triton launch.

    ``x``: (..., H), fp32/fp16/bf16, unit stride along H; rows may be strided (the row strides
    go to the kernel, nothing is copied). ``weight``: (H,) of any of those dtypes, or None.
    Returns a new contiguous tensor of x's shape and dtype:
    ``x * rsqrt(mean(x[..., :variance_size]^2) + epsilon) * (weight + weight_bias)``, computed
    in fp32 and rounded once. ``x`` and ``weight`` are not modified.
    """
    out = kit.empty_output(x)
    KERNELS.require().launch_rms_norm(
        x, None, weight, out, None, epsilon, weight_bias, variance_size
    )
    return out


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual add and RMS norm in one Triton launch, out of place.

    ``x``, ``residual``: (..., H) of the same shape, unit stride along H, any row strides,
    fp32/fp16/bf16 (dtypes may differ). ``weight``: (H,) or None. Returns new contiguous
    ``(out, residual_out)``: ``s = x.float() + residual.float()``, ``residual_out =
    s.to(residual.dtype)``, ``out`` = the norm of the fp32 ``s`` in x's dtype.
    Neither ``x`` nor ``residual`` is modified.
    """
    out = kit.empty_output(x)
    residual_out = kit.empty_output(residual)
    KERNELS.require().launch_rms_norm(
        x, residual, weight, out, residual_out, epsilon, weight_bias, variance_size
    )
    return out, residual_out


def dual_rms_norm(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent RMS norms (MLA's q and kv latents) in ONE Triton launch.

    ``a``: (..., Ha), ``b``: (..., Hb), unit stride along the last dim, any row strides (e.g.
    the two halves of a split), fp32/fp16/bf16. Weights (Ha,) and (Hb,). Returns new contiguous
    ``(a_out, b_out)`` in the inputs' dtypes; the inputs are not modified.
    """
    a_out = kit.empty_output(a)
    b_out = kit.empty_output(b)
    KERNELS.require().launch_dual_rms_norm(
        a, a_weight, a_out, a_epsilon, b, b_weight, b_out, b_epsilon
    )
    return a_out, b_out
