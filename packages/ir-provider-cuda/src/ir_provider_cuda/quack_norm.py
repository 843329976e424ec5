"""The ``quack`` provider: quack-kernels' CuTe-DSL RMSNorm (Dao-AILab), out of place.

Wrapped function: ``quack.rmsnorm.rmsnorm_fwd(x, weight=None, bias=None, residual=None,
out_dtype=None, residual_dtype=None, eps=1e-6, store_rstd=False, weight_offset=0.0) -> (out,
residual_out, rstd)``, the non-autograd forward behind ``quack.rmsnorm.rmsnorm`` (which adds an
autograd Function, reshaping and rstd bookkeeping an inference op does not need). Read in the
0.6.5 wheel and the v0.6.2-v0.6.4 tags:

- out of place: ``out`` (x's dtype) and, with a residual, ``residual_out`` (the residual's
  dtype) are new tensors, so neither op needs a copy;
- ``x = x.f32 (+ residual.f32)``, ``residual_out`` = that sum rounded, ``y = x * rsqrt(mean(x^2)
  + eps) * (w.f32 + weight_offset)`` rounded once: the fp32-once contract, the fused add
  normalizing the fp32 sum (not the rounded one). ``weight_offset`` (Gemma's ``1 + w``, any
  value) exists from quack-kernels 0.6.2: the lowest release this provider accepts;
- x, residual and weight each fp16, bf16 or fp32 (an fp32 weight with bf16 x is its own
  compiled kernel); ``x`` 2-D with a unit last stride;
- every tensor is compiled with strides divisible by ``div = gcd(H, 16 bytes / element size of
  each tensor)`` elements and a start aligned to ``div`` elements (checked by the TVM-FFI entry:
  a ValueError, not a fault); fp16/bf16 with an odd H fails to compile (its copies would be 16
  bits wide): declined;
- no partial variance (``variance_size``): declined.

quack needs an NVIDIA GPU of the Hopper (sm_90), Blackwell (sm_100/103) or RTX 50 (sm_120)
class (its README). It also imports Triton (for its autotuner) without declaring it; this
wheel depends on Triton anyway.
"""

from __future__ import annotations

import math

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, known, row_layout, same_shape

from .vendor_layout import aligned
from .vendor_release import availability, package_problems

PROVIDER = "quack"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: Releases checked: >= 0.6.2 (weight_offset), < 0.7 (the extra's bound too).
MIN_VERSION = (0, 6, 2)
BELOW_VERSION = (0, 7)
#: GPU generations quack supports (compute capability majors): sm_90, sm_100/103, sm_120.
ARCH_MAJORS = (9, 10, 12)
_VECTOR_BYTES = 16


def environment_problems() -> list[str]:
    """What this machine lacks for quack, found without importing it."""
    problems = package_problems("quack", "quack-kernels", MIN_VERSION, BELOW_VERSION, "quack")
    gpu = kit.nvidia_gpu_problems("quack-kernels", (9, 0))
    if not gpu and torch.cuda.get_device_capability()[0] not in ARCH_MAJORS:
        major, minor = torch.cuda.get_device_capability()
        gpu = [f"CUDA device sm_{major}{minor}: quack-kernels supports sm_90, sm_100/103, sm_120"]
    return problems + gpu


#: ``quack.rmsnorm``, imported the first time the provider is found usable (no ``problems``
#: here: its Python layer imports and compiles without a GPU, which the vendors session uses).
LIBRARY = kit.LazyVendor(PROVIDER, lambda: kit.import_module("quack.rmsnorm"))


def available() -> tuple[bool, str]:
    """quack-kernels (>= 0.6.2, < 0.7) importable, on an sm_90/sm_100/sm_120-class GPU."""
    return availability(environment_problems(), LIBRARY)


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def divisibility(hidden: int, *tensors: torch.Tensor | None) -> int:
    """quack's ``div``: the elements every stride and start must be a multiple of."""
    return math.gcd(hidden, *(_VECTOR_BYTES // t.element_size() for t in tensors if t is not None))


def _tensors_ok(x: torch.Tensor, weight: torch.Tensor | None, *rows: torch.Tensor) -> bool:
    """Dtypes, the odd-H rule and every tensor's layout, for x, its weight and other rows."""
    tensors = (x, *rows) if weight is None else (x, weight, *rows)
    if any(t.dtype not in SUPPORTED_DTYPES for t in tensors):
        return False
    if weight is not None and not (weight.dim() == 1 and has_unit_last_stride(weight)):
        return False
    hidden = x.shape[-1]
    if isinstance(hidden, int):
        if hidden % 2 and any(t.element_size() == 2 for t in tensors):
            return False  # a 16-bit copy of an odd row cannot be vectorized: fails to compile
        div = divisibility(hidden, *tensors)
    else:  # a symbolic H: ask for the widest div the dtypes allow, so it is known exactly
        div = min(_VECTOR_BYTES // t.element_size() for t in tensors)
        if not known(hidden % div == 0):
            return False
    for t in (x, *rows):
        layout = row_layout(t)
        if not has_unit_last_stride(t) or layout is None or not layout.single_level:
            return False
        if layout.levels and not known(layout.stride_inner % div == 0):
            return False
    return True


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """fp16/bf16/fp32 x and weight (any mix, or no weight), any weight_bias, no variance_size
    (or H), even H unless every tensor is fp32, rows of one stride level divisible by ``div``."""
    return bool(
        (variance_size is None or known(variance_size == x.shape[-1])) and _tensors_ok(x, weight)
    )


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """As :func:`rms_norm_supports`, with a residual of x's shape (any of the three dtypes)."""
    return bool(
        (variance_size is None or known(variance_size == x.shape[-1]))
        and same_shape(residual, x)
        and _tensors_ok(x, weight, residual)
    )


# --------------------------------------------------------------------------------------------
# Impls
# --------------------------------------------------------------------------------------------


def _rows(t: torch.Tensor, div: int) -> torch.Tensor:
    """(N, H) view of ``t`` (one stride level, checked), copied if its start is misaligned."""
    layout = row_layout(t)
    assert layout is not None and layout.single_level
    rows = t.as_strided((layout.n_rows, t.shape[-1]), (layout.stride_inner, 1))
    return aligned(rows, div * t.element_size())


def _call(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    div = divisibility(x.shape[-1], x, weight, residual)
    out, residual_out, _ = LIBRARY.require().rmsnorm_fwd(
        _rows(x, div),
        None if weight is None else aligned(weight, div * weight.element_size()),
        residual=None if residual is None else _rows(residual, div),
        eps=epsilon,
        weight_offset=float(weight_bias) if weight is not None else 0.0,
    )
    return out.view(x.shape), None if residual is None else residual_out.view(x.shape)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """quack ``rmsnorm_fwd``: a new tensor of x's shape and dtype; the inputs are not written."""
    if x.numel() == 0:
        return kit.empty_output(x)
    return _call(x, None, weight, epsilon, weight_bias)[0]


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """quack ``rmsnorm_fwd`` with a residual: new ``(out, residual_out)``, out of place."""
    if x.numel() == 0:
        return kit.empty_output(x), kit.empty_output(residual)
    out, residual_out = _call(x, residual, weight, epsilon, weight_bias)
    assert residual_out is not None
    return out, residual_out
