"""An fp64 reference of the fp8 quant ops, from the contract's formulas (docs/fp8-quant.md).

Row by row in Python floats, so no torch reduction, division or fp8 conversion is shared with the
code under test: values are computed in fp64 and rounded once onto the fp8 grid by
:func:`fp8_round` (round to nearest, ties to even), which builds the grid from the format's
parameters (3 mantissa bits, smallest normal ``2^-6`` for e4m3fn and ``2^-7`` for e4m3fnuz).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: (largest finite value, exponent of the smallest normal) of each format, from the OCP FP8
#: specification and AMD's FNUZ variant (bias 8, no negative zero, no infinities).
FORMATS = {
    torch.float8_e4m3fn: (448.0, -6),
    torch.float8_e4m3fnuz: (240.0, -7),
}
MANTISSA_BITS = 3


def fp8_round(value: float, dtype: torch.dtype) -> float:
    """``value`` (already within +-fmax) rounded to the nearest value of the fp8 grid, ties to
    even (Python's ``round``)."""
    fmax, min_exponent = FORMATS[dtype]
    if value == 0.0:
        return 0.0
    exponent = max(math.frexp(abs(value))[1] - 1, min_exponent)
    step = 2.0 ** (exponent - MANTISSA_BITS)
    return math.copysign(min(round(abs(value) / step) * step, fmax), value)


def quantize(values: Sequence[float], scale: float, dtype: torch.dtype) -> list[float]:
    fmax = FORMATS[dtype][0]
    return [fp8_round(min(max(v / scale, -fmax), fmax), dtype) for v in values]


def rows(t: torch.Tensor) -> list[list[float]]:
    return t.double().reshape(-1, t.shape[-1]).tolist()


def rms_norm_row(
    row: Sequence[float], weight: torch.Tensor | None, epsilon: float, weight_bias: float
) -> list[float]:
    w = [1.0] * len(row) if weight is None else [v + weight_bias for v in weight.double().tolist()]
    inv = 1.0 / math.sqrt(sum(v * v for v in row) / len(row) + epsilon)
    return [v * inv * wi for v, wi in zip(row, w)]


def silu_and_mul_row(row: Sequence[float]) -> list[float]:
    d = len(row) // 2
    return [a / (1.0 + math.exp(-a)) * b for a, b in zip(row[:d], row[d:])]


def dynamic_scale(amax: float, scale_ub: float | None, dtype: torch.dtype) -> float:
    fmax = FORMATS[dtype][0]
    if scale_ub is not None:
        amax = min(amax, scale_ub)
    return max(amax / fmax, 1.0 / (fmax * 512.0))


def group_scale(amax: float, dtype: torch.dtype, ue8m0: bool) -> float:
    scale = max(amax, 1e-10) / FORMATS[dtype][0]
    if ue8m0:  # the smallest power of two not below scale
        mantissa, exponent = math.frexp(scale)
        scale = 2.0 ** (exponent - 1 if mantissa == 0.5 else exponent)
    return scale


def codes(values: list[list[float]], shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """On-grid fp64 values as an fp8 tensor (the conversion is exact)."""
    return torch.tensor(values, dtype=torch.float64).reshape(tuple(shape)).to(dtype)


def scales(values: list, shape: Sequence[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(tuple(shape)).to(torch.float32)


# -- one reference per op ----------------------------------------------------------------------


def static(
    values: list[list[float]], out_shape: Sequence[int], scale: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    s = float(scale.double().reshape(()))
    return codes([quantize(r, s, dtype) for r in values], out_shape, dtype)


def per_token(
    values: list[list[float]],
    out_shape: Sequence[int],
    scale_ub: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    ub = None if scale_ub is None else float(scale_ub.double().reshape(()))
    found = [dynamic_scale(max((abs(v) for v in r), default=0.0), ub, dtype) for r in values]
    q = [quantize(r, s, dtype) for r, s in zip(values, found)]
    return codes(q, out_shape, dtype), scales(found, (*out_shape[:-1], 1))


def per_tensor(
    values: list[list[float]], out_shape: Sequence[int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    s = dynamic_scale(max((abs(v) for r in values for v in r), default=0.0), None, dtype)
    return codes([quantize(r, s, dtype) for r in values], out_shape, dtype), scales([s], (1,))


def per_group(
    values: list[list[float]],
    out_shape: Sequence[int],
    group_size: int,
    column_major: bool,
    ue8m0: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    q, found = [], []
    for r in values:
        row_q, row_s = [], []
        for start in range(0, len(r), group_size):
            group = r[start : start + group_size]
            s = group_scale(max(abs(v) for v in group), dtype, ue8m0)
            row_q += quantize(group, s, dtype)
            row_s.append(s)
        q.append(row_q)
        found.append(row_s)
    scale = scales(found, (*out_shape[:-1], out_shape[-1] // group_size))
    if column_major:  # the contract's layout: the group index outermost in memory
        scale = scale.movedim(-1, 0).contiguous().movedim(0, -1)
    return codes(q, out_shape, dtype), scale
