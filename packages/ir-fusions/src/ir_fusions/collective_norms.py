"""Fused ops declared by ir-fusions: an all-reduce followed by an RMSNorm.

Each op's native function *is* its semantics, as for every ir-core op: a sum all-reduce through
torch's functional collectives (``_c10d_functional.all_reduce`` + ``wait_tensor``, the process
group passed by name as torch passes it), then ir-core's own norm op on the reduced tensor, so
the fused graph computes exactly what the unfused one did. Kernels (FlashInfer's allreduce
fusion) register as impls of these ops and are checked against that.

Signatures are the norm's with ``group_name`` inserted before ``weight``::

    all_reduce_rms_norm(x, group_name, weight, epsilon, weight_bias=0.0, variance_size=None)
        -> (out, reduced)
    all_reduce_fused_add_rms_norm(x, residual, group_name, weight, epsilon, weight_bias=0.0,
                                  variance_size=None) -> (out, residual_out)

``all_reduce_rms_norm`` also returns the reduced tensor: in a decoder's first layer it is the
residual stream (``h = all_reduce(o); y = norm(h)``, and ``h`` is added back later), and a fused
kernel writes it anyway (FlashInfer's pattern is all-reduce + residual add + norm; with a zero
residual its ``residual_out`` *is* the reduced tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

import ir_core
from ir_core import Sample

__all__ = [
    "ALL_REDUCE_FUSED_ADD_RMS_NORM",
    "ALL_REDUCE_RMS_NORM",
    "TOLERANCES",
    "all_reduce_fused_add_rms_norm",
    "all_reduce_rms_norm",
    "register_ops",
]

ALL_REDUCE_RMS_NORM = "all_reduce_rms_norm"
ALL_REDUCE_FUSED_ADD_RMS_NORM = "all_reduce_fused_add_rms_norm"

# ir-core's own norms: the fused ops normalize exactly as the unfused graph did.
_rms_norm = ir_core.registry.get_op("rms_norm").native
_fused_add_rms_norm = ir_core.registry.get_op("fused_add_rms_norm").native

#: (atol, rtol) per output dtype. Wider than ir-core's defaults for 16-bit types because a kernel
#: may sum the ranks' contributions in another order and precision than native does: FlashInfer
#: accumulates in fp32 and rounds once, NCCL rounds every partial sum to the input dtype. At
#: world size 2 both round exactly once and agree; each further rank can add a half-ulp of the
#: partial sum (about 1e-3 for fp16, 8e-3 for bf16 at magnitude 2), which these atols cover for
#: up to 4 ranks with contributions of magnitude <= 1 (the sample inputs are scaled that way).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-5, 1.3e-6),
    torch.float16: (4e-3, 1e-3),
    torch.bfloat16: (3e-2, 1.6e-2),
}


def _all_reduce_sum(x: torch.Tensor, group_name: str) -> torch.Tensor:
    """A new tensor: the sum of ``x`` over the ranks of ``group_name`` (``x`` is unchanged)."""
    ops = torch.ops._c10d_functional
    return ops.wait_tensor(ops.all_reduce(x, "sum", group_name))


def all_reduce_rms_norm(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``x`` over the ranks of the process group ``group_name``, then RMSNorm it.

    Returns ``(out, reduced)``: ``reduced`` is the all-reduced ``x`` (its dtype, rounded as the
    collective rounds it), ``out`` is ``ir_core.ops.rms_norm(reduced, weight, epsilon,
    weight_bias, variance_size)``. ``group_name`` is a ``torch.distributed`` group's
    ``group_name``, as torch's functional collectives take it. Collective: every rank of the
    group must call it with tensors of the same shape and dtype.
    """
    reduced = _all_reduce_sum(x, group_name)
    return _rms_norm(reduced, weight, epsilon, weight_bias, variance_size), reduced


def all_reduce_fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``x`` over the ranks of ``group_name``, add ``residual``, RMSNorm the sum.

    Returns ``ir_core.ops.fused_add_rms_norm(all_reduce(x), residual, weight, epsilon,
    weight_bias, variance_size)``, i.e. ``(out, residual_out)``: the sum is taken in fp32,
    ``residual_out`` is it in ``residual``'s dtype, ``out`` its norm in ``x``'s dtype.
    Collective, as :func:`all_reduce_rms_norm`.
    """
    reduced = _all_reduce_sum(x, group_name)
    return _fused_add_rms_norm(reduced, residual, weight, epsilon, weight_bias, variance_size)


# -- validation ------------------------------------------------------------------------------


def _as_this_op(check: Callable[..., None], op: str, *args: Any) -> None:
    """Run the unfused norm's validation, naming this op in its message.

    The fused op accepts exactly what the unfused ops accept; reusing their validation keeps
    the two from drifting apart.
    """
    try:
        check(*args)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for base in ("fused_add_rms_norm", "rms_norm"):
            message = message.replace(f"ir_core.ops.{base}:", f"ir_core.ops.{op}:")
        raise type(exc)(message) from None


def _check_group_name(op: str, group_name: Any) -> None:
    if not isinstance(group_name, str) or not group_name:
        raise TypeError(
            f"ir_core.ops.{op}: argument 'group_name' must be a process group's name (a "
            f"non-empty str, torch.distributed's ProcessGroup.group_name), got {group_name!r}"
        )


def validate_all_reduce_rms_norm(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> None:
    _check_group_name(ALL_REDUCE_RMS_NORM, group_name)
    base = ir_core.registry.get_op("rms_norm")
    _as_this_op(
        base.validate, ALL_REDUCE_RMS_NORM, (x, weight, epsilon, weight_bias, variance_size)
    )


def validate_all_reduce_fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> None:
    _check_group_name(ALL_REDUCE_FUSED_ADD_RMS_NORM, group_name)
    base = ir_core.registry.get_op("fused_add_rms_norm")
    _as_this_op(
        base.validate,
        ALL_REDUCE_FUSED_ADD_RMS_NORM,
        (x, residual, weight, epsilon, weight_bias, variance_size),
    )


# -- sample inputs ---------------------------------------------------------------------------

_EPS = 1e-6


def _world() -> tuple[str, int, int] | None:
    """(group name, rank, world size) of the default process group, or None without one."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist.group.WORLD.group_name, dist.get_rank(), dist.get_world_size()


def _norm_cases(
    dtype: torch.dtype, device: torch.device, g: torch.Generator, scale: float
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None, dict[str, Any]]]:
    def act(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g).mul_(scale).to(dtype=dtype, device=device)

    def weight(h: int, wdtype: torch.dtype = dtype) -> torch.Tensor:
        return (torch.randn(h, generator=g) * 0.5 + 1.0).to(dtype=wdtype, device=device)

    yield "2d h=64", act(3, 64), weight(64), {}
    yield "2d h=1024", act(2, 1024), weight(1024), {}
    yield "odd h=127", act(3, 127), weight(127), {}
    yield "3d", act(2, 3, 64), weight(64), {}
    yield "zero tokens", act(0, 64), weight(64), {}
    yield "weight None", act(3, 64), None, {}
    yield "weight_bias=1.0", act(3, 64), weight(64) - 1.0, {"weight_bias": 1.0}
    if dtype != torch.float32:
        yield (
            "fp32 weight, weight_bias=1.0",
            act(3, 64),
            weight(64, torch.float32) - 1.0,
            {"weight_bias": 1.0},
        )
    yield "variance_size=48", act(3, 64), weight(64), {"variance_size": 48}


def all_reduce_rms_norm_samples(dtype: torch.dtype, device: torch.device) -> Iterator[Sample]:
    """Cases over the default process group; none without one (an all-reduce needs ranks).

    Each rank draws its own inputs, scaled by 1/world size so the sums stay of magnitude ~1.
    """
    world = _world()
    if world is None:
        return
    name, rank, size = world
    g = torch.Generator().manual_seed(100 + rank)
    for label, x, w, options in _norm_cases(dtype, device, g, 2.0 / size):
        yield Sample((x, name, w, _EPS), dict(options), label)


def all_reduce_fused_add_rms_norm_samples(
    dtype: torch.dtype, device: torch.device
) -> Iterator[Sample]:
    """As :func:`all_reduce_rms_norm_samples`, with a residual (the same on every rank)."""
    world = _world()
    if world is None:
        return
    name, rank, size = world
    g = torch.Generator().manual_seed(200 + rank)
    shared = torch.Generator().manual_seed(300)
    for label, x, w, options in _norm_cases(dtype, device, g, 2.0 / size):
        residual = torch.randn(tuple(x.shape), generator=shared).to(dtype=dtype, device=device)
        yield Sample((x, residual, name, w, _EPS), dict(options), label)


def _group_name_or_default() -> str:
    world = _world()
    # torch names the default group "0"; explain() only reads the name, it never reduces.
    return world[0] if world is not None else "0"


def all_reduce_rms_norm_example(n: int, h: int, dtype: torch.dtype, device: torch.device) -> Sample:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, h, generator=g).to(dtype=dtype, device=device)
    w = torch.randn(h, generator=g).to(dtype=dtype, device=device)
    return Sample((x, _group_name_or_default(), w, _EPS))


def all_reduce_fused_add_rms_norm_example(
    n: int, h: int, dtype: torch.dtype, device: torch.device
) -> Sample:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, h, generator=g).to(dtype=dtype, device=device)
    r = torch.randn(n, h, generator=g).to(dtype=dtype, device=device)
    w = torch.randn(h, generator=g).to(dtype=dtype, device=device)
    return Sample((x, r, _group_name_or_default(), w, _EPS))


def register_ops(registry: ir_core.Registry) -> None:
    """Declare the fused ops (``register_ops`` hook)."""
    registry.register_op(
        all_reduce_rms_norm,
        tolerances=TOLERANCES,
        validate=validate_all_reduce_rms_norm,
        sample_inputs=all_reduce_rms_norm_samples,
        example_inputs=all_reduce_rms_norm_example,
    )
    registry.register_op(
        all_reduce_fused_add_rms_norm,
        tolerances=TOLERANCES,
        validate=validate_all_reduce_fused_add_rms_norm,
        sample_inputs=all_reduce_fused_add_rms_norm_samples,
        example_inputs=all_reduce_fused_add_rms_norm_example,
    )
