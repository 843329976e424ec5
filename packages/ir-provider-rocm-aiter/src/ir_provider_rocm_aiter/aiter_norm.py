"""The ``aiter`` provider's norms: AMD AITER's RMSNorm kernels behind ir-core's contract.

Which AITER function computes what, read in ROCm/aiter (``aiter/ops/rmsnorm.py``,
``aiter/ops/fused_qk_norm_rope_cache_quant.py``, ``aiter/ops/fused_qk_rmsnorm_group_quant.py``)
at tags v0.1.10 .. v0.1.20.post1; "HIP" is ``module_rmsnorm_quant`` (2-D fp16/bf16 rows of at
most :data:`~.aiter_api.HIP_MAX_HIDDEN`), see :mod:`.aiter_api` for what is CK and how a build
without CK shows:

Up to 0.1.17 ("CK generation"; ``module_rmsnorm`` is Composable Kernel's rmsnorm2d):
    * ``rms_norm(input, weight, epsilon, use_model_sensitive_rmsnorm=0) -> Tensor``: the CK
      kernel for *every* hidden size (its docstring: "CK version of rmsnorm"). The 8192 split
      is not here but in ``rmsnorm2d_fwd``, so ``rms_norm`` has no hidden-size limit and
      needs CK.
    * ``rmsnorm(out, input, weight, epsilon[, gemma_norm])`` (HIP): ``gemma_norm`` (scale by
      ``weight + 1``) from 0.1.17; the only Gemma plain norm of this generation.
    * ``rmsnorm2d_fwd_with_add(out, input, residual_in, residual_out, weight, epsilon, ...)``:
      a plain dispatcher, HIP ``add_rmsnorm`` for H <= 8192 and CK above. 0.1.17 inserts
      ``gemma_norm`` as the 7th parameter (before ``use_model_sensitive_rmsnorm``) and passes it
      to the HIP kernel only: above 8192 it is silently dropped.
From 0.1.18 ("opus generation"; ``module_rmsnorm`` is the opus kernels, no CK):
    * ``rms_norm`` and ``rmsnorm2d_fwd_with_add`` become ``@torch_compile_guard`` dispatchers:
      HIP for 2-D fp16/bf16 rows of H <= 8192, opus for the rest; Gemma for every H.
    * plain ``rms_norm_opus(out, input, weight, epsilon, model_sensitive=0, gemma_norm=False)``
      and ``rmsnorm2d_fwd_with_add_opus(out, input, residual_in, residual_out, weight,
      epsilon, use_model_sensitive_rmsnorm=0, gemma_norm=False)``: opus for everything. These
      serve Gemma here, and every norm when the HIP module cannot run (a build without CK).
Fused q/k RMSNorm (``dual_rms_norm``), module ``module_fused_qk_norm_rope_cache_quant_shuffle``
plus HIP for more than 16384 rows; 2-D q (M, N1) and k (M, N2), one fp16/bf16 dtype, N <= 8192:
    * 0.1.12-0.1.13: plain ``fused_qk_rmsnorm(q, q_weight, q_eps, k, k_weight, k_eps) ->
      (q_out, k_out)``, which allocates new outputs (it never writes q or k).
    * 0.1.14 on: plain ``fused_qk_rmsnorm(q_out_quantized=, q=, q_weight=, q_epsilon=, k_out=,
      k=, k_weight=, k_epsilon=, ...)`` writing into the outputs, called by keyword.

Every impl is functional: AITER writes only into outputs allocated here. The second positional
slot after ``epsilon`` changed meaning in 0.1.17, so ``gemma_norm`` is passed by keyword and
only when wanted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ir_core import kit

from .aiter_api import (
    AITER,
    DUAL_LEGACY,
    DUAL_UNIFIED,
    HIP_MAX_HIDDEN,
    MODULE_DUAL,
    MODULE_HIP_NORM,
    MODULE_NORM,
    PROVIDER,
    AiterApi,
    available_if,
    loaded_api,
    two_d,
)

__all__ = ["PROVIDER"]

#: AITER's norm kernels are instantiated for 16-bit floats (and take a weight of that dtype).
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)

#: A call: the AITER function's name and the modules it runs.
Route = tuple[str, tuple[str, ...]]


def _hip_or(api: AiterApi, hidden: int, wide: str) -> tuple[str, ...]:
    """The module an AITER dispatcher runs for rows of ``hidden``: HIP up to 8192, else ``wide``."""
    return (MODULE_HIP_NORM,) if hidden <= HIP_MAX_HIDDEN else (wide,)


def rms_norm_route(api: AiterApi, hidden: int, weight_bias: float) -> Route | None:
    """Which AITER function serves ``rms_norm`` of 2-D fp16/bf16 rows of ``hidden``, or None."""
    if api.opus:
        if weight_bias == 1.0:
            return "rms_norm_opus", (MODULE_NORM,)
        if api.runs(MODULE_HIP_NORM):
            return "rms_norm", _hip_or(api, hidden, MODULE_NORM)
        return "rms_norm_opus", (MODULE_NORM,)  # no HIP module: opus serves every row
    if weight_bias == 1.0:
        if api.gemma_rmsnorm and hidden <= HIP_MAX_HIDDEN:
            return "rmsnorm", (MODULE_HIP_NORM,)
        return None
    return "rms_norm", (MODULE_NORM,)  # CK, any hidden size


def fused_add_route(api: AiterApi, hidden: int, weight_bias: float) -> Route | None:
    """Which AITER function serves ``fused_add_rms_norm`` of rows of ``hidden``, or None."""
    if weight_bias == 1.0 and not api.gemma_fused_add:
        return None  # no gemma_norm before 0.1.17
    if api.opus:
        if api.runs(MODULE_HIP_NORM):
            return "rmsnorm2d_fwd_with_add", _hip_or(api, hidden, MODULE_NORM)
        return "rmsnorm2d_fwd_with_add_opus", (MODULE_NORM,)
    if weight_bias == 1.0 and hidden > HIP_MAX_HIDDEN:
        return None  # 0.1.17: the CK path above 8192 drops gemma_norm
    return "rmsnorm2d_fwd_with_add", _hip_or(api, hidden, MODULE_NORM)


def _usable(api: AiterApi | None, route: Route | None) -> bool:
    return (
        api is not None
        and route is not None
        and api.fn(route[0]) is not None
        and api.runs(*route[1])
    )


# --------------------------------------------------------------------------------------------
# Availability: an op is available when AITER's entry point for it exists and can run for
# some hidden size; supports_args then declines the sizes whose module cannot run.
# --------------------------------------------------------------------------------------------


def _some_route(
    api: AiterApi, route_of: Callable[[AiterApi, int, float], Route | None]
) -> str | None:
    routes = [route_of(api, hidden, 0.0) for hidden in (HIP_MAX_HIDDEN, HIP_MAX_HIDDEN + 1)]
    if any(_usable(api, route) for route in routes):
        return None
    name, modules = next(route for route in routes if route is not None)
    return api.problem(name, *modules)


def problem_rms_norm(api: AiterApi) -> str | None:
    return _some_route(api, rms_norm_route)


def problem_fused_add_rms_norm(api: AiterApi) -> str | None:
    return _some_route(api, fused_add_route)


def problem_dual_rms_norm(api: AiterApi) -> str | None:
    if not api.dual_form:
        return f"AITER {api.version} has no fused q/k RMSNorm (aiter.fused_qk_rmsnorm)"
    return api.problem("fused_qk_rmsnorm", MODULE_DUAL, MODULE_HIP_NORM)


def available_rms_norm() -> tuple[bool, str]:
    return available_if(problem_rms_norm)


def available_fused_add_rms_norm() -> tuple[bool, str]:
    return available_if(problem_fused_add_rms_norm)


def available_dual_rms_norm() -> tuple[bool, str]:
    return available_if(problem_dual_rms_norm)


# --------------------------------------------------------------------------------------------
# supports_args: pure functions of the probed capabilities and the arguments' metadata
# --------------------------------------------------------------------------------------------


def _plain(x: torch.Tensor, weight: torch.Tensor | None, variance_size: int | None) -> bool:
    return (
        x.dtype in SUPPORTED_DTYPES
        and kit.is_weight_for(x, weight)
        and (variance_size is None or kit.known(variance_size == x.shape[-1]))
    )


def rms_norm_supported(
    api: AiterApi | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """fp16/bf16 x and a (H,) weight of its dtype; ``weight_bias`` 0.0, or 1.0 where AITER has
    a Gemma norm for this H (see :func:`rms_norm_route`); no ``variance_size < H``; and the
    module that would run can run here. Any layout: the wrapper copies to 2-D rows."""
    if not _plain(x, weight, variance_size) or weight_bias not in (0.0, 1.0):
        return False
    return api is not None and _usable(api, rms_norm_route(api, x.shape[-1], weight_bias))


def fused_add_rms_norm_supported(
    api: AiterApi | None,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """As :func:`rms_norm_supported`, with residual of x's shape and dtype."""
    if not (
        _plain(x, weight, variance_size)
        and weight_bias in (0.0, 1.0)
        and residual.dtype == x.dtype
        and kit.same_shape(residual, x)
    ):
        return False
    return api is not None and _usable(api, fused_add_route(api, x.shape[-1], weight_bias))


def dual_rms_norm_supported(
    a: torch.Tensor, a_weight: torch.Tensor, b: torch.Tensor, b_weight: torch.Tensor
) -> bool:
    """One fp16/bf16 dtype for a, b and both weights; a and b with the same leading shape
    (the kernel walks M rows of both); each hidden size in 1..8192 (``"not support n"``)."""
    return bool(
        a.dtype in SUPPORTED_DTYPES
        and b.dtype == a.dtype
        and kit.is_weight_for(a, a_weight)
        and kit.is_weight_for(b, b_weight)
        and tuple(a.shape[:-1]) == tuple(b.shape[:-1])
        and 1 <= a.shape[-1] <= HIP_MAX_HIDDEN
        and 1 <= b.shape[-1] <= HIP_MAX_HIDDEN
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: what AITER receives for each op. Tested with a recorder in place of AITER.
# --------------------------------------------------------------------------------------------


def call_rms_norm(
    api: AiterApi, x: torch.Tensor, weight: torch.Tensor, epsilon: float, weight_bias: float
) -> torch.Tensor:
    """The function :func:`rms_norm_route` picks, on x as 2-D rows: ``rms_norm(x2d, weight,
    epsilon)``, ``rmsnorm(out, x2d, weight, epsilon, gemma_norm=True)`` or
    ``rms_norm_opus(out, x2d, weight, epsilon, gemma_norm=...)``. A new tensor of x's shape."""
    if x.numel() == 0:
        return kit.empty_output(x)
    route = rms_norm_route(api, x.shape[-1], weight_bias)
    assert route is not None, "supports_args admits only routed calls"
    name, _ = route
    fn = api.fn(name)
    x2d = two_d(x)
    if name == "rms_norm":
        out = fn(x2d, weight, epsilon)
    else:
        out = torch.empty_like(x2d)
        fn(out, x2d, weight, epsilon, gemma_norm=weight_bias == 1.0)
    return out.view(x.shape)


def call_fused_add_rms_norm(
    api: AiterApi,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    epsilon: float,
    weight_bias: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rmsnorm2d_fwd_with_add(out, x2d, residual2d, residual_out, weight, epsilon)`` (or its
    ``_opus`` twin), plus ``gemma_norm=True`` by keyword for ``weight_bias=1.0``.

    AITER writes only ``out`` and ``residual_out``, which are allocated here: x and residual
    are read, never written. Returns ``(out, residual_out)`` in the shapes of x and residual.
    """
    out, residual_out = kit.empty_output(x), kit.empty_output(residual)
    if x.numel() == 0:
        return out, residual_out
    hidden = x.shape[-1]
    route = fused_add_route(api, hidden, weight_bias)
    assert route is not None, "supports_args admits only routed calls"
    gemma = {"gemma_norm": True} if weight_bias == 1.0 else {}
    api.fn(route[0])(
        out.view(-1, hidden),
        two_d(x),
        two_d(residual),
        residual_out.view(-1, hidden),
        weight,
        epsilon,
        **gemma,
    )
    return out, residual_out


def call_dual_rms_norm(
    api: AiterApi,
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AITER's fused q/k RMSNorm with a as q and b as k, in whichever form is installed.

    a (..., Ha) and b (..., Hb) are viewed as (M, Ha) and (M, Hb). The unified form writes into
    outputs allocated here, the legacy one returns new tensors; neither writes a or b.
    """
    if a.numel() == 0 or b.numel() == 0:
        return kit.empty_output(a), kit.empty_output(b)
    fn = api.fn("fused_qk_rmsnorm")
    a2d, b2d = two_d(a), two_d(b)
    if api.dual_form == DUAL_LEGACY:
        a_out, b_out = fn(a2d, a_weight, a_epsilon, b2d, b_weight, b_epsilon)
    else:
        assert api.dual_form == DUAL_UNIFIED
        a_out, b_out = torch.empty_like(a2d), torch.empty_like(b2d)
        fn(
            q_out_quantized=a_out,
            q=a2d,
            q_weight=a_weight,
            q_epsilon=a_epsilon,
            k_out=b_out,
            k=b2d,
            k_weight=b_weight,
            k_epsilon=b_epsilon,
        )
    return a_out.view(a.shape), b_out.view(b.shape)


# --------------------------------------------------------------------------------------------
# The impls ir-core registers: the op's exact signatures over the loaded AITER
# --------------------------------------------------------------------------------------------


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMSNorm of x (..., H), fp16/bf16, by AITER; see :func:`call_rms_norm`. Functional."""
    assert weight is not None
    return call_rms_norm(AITER.require(), x, weight, epsilon, weight_bias)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    return rms_norm_supported(loaded_api(), x, weight, weight_bias, variance_size)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(norm(x + residual), x + residual)`` by AITER, out of place; see
    :func:`call_fused_add_rms_norm`."""
    assert weight is not None
    return call_fused_add_rms_norm(AITER.require(), x, residual, weight, epsilon, weight_bias)


def fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    return fused_add_rms_norm_supported(
        loaded_api(), x, residual, weight, weight_bias, variance_size
    )


def dual_rms_norm(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both norms in one AITER launch; see :func:`call_dual_rms_norm`. Functional."""
    return call_dual_rms_norm(AITER.require(), a, a_weight, b, b_weight, a_epsilon, b_epsilon)


def dual_rms_norm_supports(
    a: torch.Tensor,
    a_weight: torch.Tensor,
    b: torch.Tensor,
    b_weight: torch.Tensor,
    a_epsilon: float,
    b_epsilon: float,
) -> bool:
    return dual_rms_norm_supported(a, a_weight, b, b_weight)
