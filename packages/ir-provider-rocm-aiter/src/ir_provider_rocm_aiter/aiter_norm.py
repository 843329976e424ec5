"""The ``aiter`` provider: AMD AITER's RMS norm kernels behind ir-core's functional contract.

AITER's Python API moves between releases (a keyword inserted mid-signature, a public function
that changed meaning, kernels renamed private). So nothing here assumes one release:
:func:`probe` reads what the *installed* AITER offers, once, into an :class:`AiterApi`, and the
``call_*`` functions map our ops onto it. They take the :class:`AiterApi` as an argument rather
than reading a module global, so the tests hand them a recorder instead of AITER and check
exactly what AITER would receive.

The AITER entry points, as read in ROCm/aiter's sources (``aiter/ops/rmsnorm.py``,
``aiter/ops/fused_qk_norm_rope_cache_quant.py``, ``aiter/ops/fused_qk_rmsnorm_group_quant.py``,
``csrc/kernels/*fused_qk_rmsnorm*``):

``aiter.rms_norm(input, weight, epsilon, use_model_sensitive_rmsnorm=0) -> Tensor``
    Out of place. fp16/bf16 with a weight of the same dtype. No Gemma variant in any release.
    ``rmsnorm2d_fwd`` (and ``rmsnorm2d_fwd_with_add``) run the HIP kernels of
    ``module_rmsnorm_quant`` for hidden <= 8192 -- their dispatch table ends there
    (``AITER_CHECK(false, "not support n")``) -- and hand wider rows to the CK module, which a
    CK-less build (``ENABLE_CK=0``) cannot even compile. Releases whose default backend is the
    self-contained "opus" kernels (``rms_norm_opus``) serve any hidden size. Hence
    :data:`FAST_PATH_MAX_HIDDEN`, lifted only where opus serves the call.

``aiter.rmsnorm(out, input, weight, epsilon, gemma_norm=False) -> None``
    The HIP kernel of ``module_rmsnorm_quant`` that ``rmsnorm2d_fwd`` uses for hidden <= 8192.
    ``gemma_norm`` (scale by ``weight + 1``) is its last parameter from AITER 0.1.17 on; it is
    the only plain norm that has it, so ``weight_bias=1.0`` goes through it.

``aiter.rmsnorm2d_fwd_with_add(out, input, residual_in, residual_out, weight, epsilon, ...)``
    Out of place: ``residual_out = input + residual_in`` and ``out`` = its norm. From 0.1.17 a
    ``gemma_norm`` keyword is inserted as the 7th parameter, *before*
    ``use_model_sensitive_rmsnorm`` (the 7th until then), so it is passed by keyword only, and
    only when wanted: the first six arguments are positional and stable across releases. In the
    releases that have it, only the HIP path (hidden <= 8192) honours ``gemma_norm``; the CK path
    for wider rows silently drops it, hence :data:`GEMMA_MAX_HIDDEN`.

fused q/k RMSNorm, for ``dual_rms_norm`` (one launch for both norms), in three forms:
    * ``aiter.fused_qk_rmsnorm(q_out_quantized=, q=, q_weight=, q_epsilon=, k_out=, k=,
      k_weight=, k_epsilon=, ..., quant_type=QuantType.No)`` -> None: the unified entry point
      since ROCm/aiter#2958 (0.1.14). Writes into the two out tensors; called by keyword.
    * ``aiter.fused_qk_rmsnorm(q, q_weight, q_eps, k, k_weight, k_eps) -> (q_out, k_out)``: the
      public form before that. Some builds normalise q and k IN PLACE and return them, so it
      only ever gets copies we own.
    * ``aiter.ops.fused_qk_norm_rope_cache_quant._fused_qk_rmsnorm(q_out, q, q_weight, q_eps,
      k_out, k, k_weight, k_eps)``: the private kernel the old public one became.
    The kernel takes 2-D q (M, N1) and k (M, N2) with the same M, one fp16/bf16 dtype for all
    four tensors, and N1, N2 <= 8192 (its dispatch table stops there), hence
    :data:`DUAL_MAX_HIDDEN`.

``import aiter`` raises RuntimeError (not ImportError) on a machine without ROCm, and may fail
in other ways (JIT build, HIP runtime): every exception there means "unavailable", with the
reason. It is imported by :func:`available_*` when ir-core first considers the provider, never
when the plugin module is imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ir_core import kit

PROVIDER = "aiter"

#: AITER's norm kernels are instantiated for 16-bit floats (and take a weight of that dtype).
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: Widest row of AITER's HIP norm kernels (module_rmsnorm_quant's dispatch table); wider rows go
#: to CK, an optional part of AITER builds. Lifted for plain norms when opus serves them.
FAST_PATH_MAX_HIDDEN = 8192
#: Widest row for which AITER applies ``gemma_norm``: above it ``rmsnorm2d_fwd_with_add`` goes
#: to the CK kernel, which ignores the flag, and ``rmsnorm`` (module_rmsnorm_quant) rejects it.
GEMMA_MAX_HIDDEN = 8192
#: Widest q or k row of the fused q/k RMSNorm kernel (``TORCH_CHECK(false, "not support n")``).
DUAL_MAX_HIDDEN = 8192
#: The distribution that ships the ``aiter`` module.
DISTRIBUTION = "amd-aiter"
INSTALL_HINT = "pip install 'ir-provider-rocm-aiter[aiter]' on a ROCm machine"

# Forms of the fused q/k RMSNorm (see the module docstring).
DUAL_UNIFIED = "aiter.fused_qk_rmsnorm (unified, out params)"
DUAL_LEGACY = "aiter.fused_qk_rmsnorm (legacy, returns outputs)"
DUAL_PRIVATE = "aiter.ops.fused_qk_norm_rope_cache_quant._fused_qk_rmsnorm"


@dataclass(frozen=True)
class AiterApi:
    """What the installed AITER offers, read once by :func:`probe`.

    A ``None`` entry means this release lacks that entry point; the matching op then reports
    itself unavailable (or, for the Gemma variants, ``supports_args`` declines
    ``weight_bias=1.0``).
    """

    version: str
    rms_norm: Callable[..., torch.Tensor] | None
    fused_add: Callable[..., None] | None
    #: ``rmsnorm2d_fwd_with_add`` takes the ``gemma_norm`` keyword.
    fused_add_gemma: bool
    #: ``rmsnorm(out, input, weight, epsilon, gemma_norm)``, when it has ``gemma_norm``.
    gemma_rms_norm: Callable[..., None] | None
    dual: Callable[..., Any] | None
    #: One of DUAL_UNIFIED, DUAL_LEGACY, DUAL_PRIVATE, or "" when ``dual`` is None.
    dual_form: str
    #: Plain (non-Gemma) norms run on the "opus" kernels, which take any hidden size.
    any_hidden: bool = False


def _parameters(fn: Any) -> list[str] | None:
    """The parameter names of ``fn`` (through ``functools.wraps``), or None when unreadable.

    AITER wraps its kernel stubs in ``compile_ops``, which keeps the stub's signature through
    ``functools.wraps`` in every release that has the parameters we look for.
    """
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def probe(aiter: Any, version: str = "unknown") -> AiterApi:
    """Read the entry points of the loaded ``aiter`` module (or a stand-in with its shape)."""
    rms_norm = getattr(aiter, "rms_norm", None)
    fused_add = getattr(aiter, "rmsnorm2d_fwd_with_add", None)
    fused_add_params = _parameters(fused_add) or []
    rmsnorm = getattr(aiter, "rmsnorm", None)
    rmsnorm_params = _parameters(rmsnorm) or []
    gemma_rms_norm = rmsnorm if rmsnorm_params[4:5] == ["gemma_norm"] else None

    dual, dual_form = None, ""
    public = getattr(aiter, "fused_qk_rmsnorm", None)
    public_params = _parameters(public) or []
    private = getattr(
        getattr(getattr(aiter, "ops", None), "fused_qk_norm_rope_cache_quant", None),
        "_fused_qk_rmsnorm",
        None,
    )
    if {"q_out_quantized", "q", "q_weight", "q_epsilon", "k_out", "k", "k_weight",
            "k_epsilon"} <= set(public_params):  # fmt: skip
        dual, dual_form = public, DUAL_UNIFIED
    elif public_params[:6] == ["q", "q_weight", "q_eps", "k", "k_weight", "k_eps"]:
        dual, dual_form = public, DUAL_LEGACY
    elif (_parameters(private) or [])[:2] == ["q_out", "q"]:
        dual, dual_form = private, DUAL_PRIVATE

    # Releases with opus kernels: the newest use them for every plain norm; the ones in between
    # only when get_rmsnorm_backend() (the AITER_RMSNORM_BACKEND variable) says "opus".
    backend = getattr(aiter, "get_rmsnorm_backend", None)
    any_hidden = callable(getattr(aiter, "rms_norm_opus", None)) and (
        not callable(backend) or _backend_name(backend) == "opus"
    )

    return AiterApi(
        version=version,
        rms_norm=rms_norm if callable(rms_norm) else None,
        fused_add=fused_add if callable(fused_add) else None,
        fused_add_gemma="gemma_norm" in fused_add_params,
        gemma_rms_norm=gemma_rms_norm,
        dual=dual,
        dual_form=dual_form,
        any_hidden=any_hidden,
    )


def _backend_name(backend: Callable[[], Any]) -> str:
    try:
        return str(backend())
    except Exception:  # a probe must not fail; unknown means "not opus"
        return ""


# --------------------------------------------------------------------------------------------
# Loading and availability
# --------------------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (no amd-aiter distribution metadata)"


def environment_problems() -> list[str]:
    """Why this machine cannot run AITER, without importing it (empty when it can try)."""
    problems = []
    if kit.module_missing("aiter"):
        problems.append(f"AITER is not installed ({INSTALL_HINT})")
    if getattr(torch.version, "hip", None) is None:
        problems.append(
            f"torch {torch.__version__} is not a ROCm build (torch.version.hip is None); "
            "AITER runs on AMD GPUs only"
        )
    elif not torch.cuda.is_available():
        problems.append("no AMD GPU visible (torch.cuda.is_available() is False)")
    return problems


def import_and_probe(
    import_module: Callable[[str], Any] = importlib.import_module,
) -> tuple[AiterApi | None, str]:
    """Import ``aiter`` and probe it; any exception is a reason, never raised.

    ``import aiter`` raises RuntimeError on a machine without ROCm and can fail in other ways
    (HIP runtime, JIT build of a kernel module), so every exception type counts.
    """
    module, reason = kit.import_module("aiter", import_module)
    if reason:
        return None, reason
    api = probe(module, _version())
    if api.rms_norm is None and api.fused_add is None:
        origin = getattr(module, "__file__", "?")
        return None, (
            f"the importable 'aiter' module ({origin}) has neither rms_norm nor "
            "rmsnorm2d_fwd_with_add: it is not AMD's AITER (amd-aiter)"
        )
    return api, ""


#: AITER for this process, probed once: the machine first, then the import.
AITER: kit.LazyVendor[AiterApi] = kit.LazyVendor(
    PROVIDER, import_and_probe, problems=environment_problems
)
#: ``(api, "")`` when AITER is usable here, else ``(None, reason)``; decided once.
load = AITER.load
#: The probed API if :func:`load` already succeeded; never imports anything. ``supports_args``
#: reads capabilities through this: ir-core evaluates availability (which loads AITER) before
#: it asks ``supports_args``, and a predicate must not import libraries.
loaded_api = AITER.loaded


def _available(entry: str, present: Callable[[AiterApi], bool]) -> tuple[bool, str]:
    api, reason = load()
    if api is None:
        return False, reason
    if not present(api):
        return False, f"AITER {api.version} has no {entry}"
    return True, ""


def available_rms_norm() -> tuple[bool, str]:
    return _available("aiter.rms_norm", lambda api: api.rms_norm is not None)


def available_fused_add_rms_norm() -> tuple[bool, str]:
    return _available("aiter.rmsnorm2d_fwd_with_add", lambda api: api.fused_add is not None)


def available_dual_rms_norm() -> tuple[bool, str]:
    return _available(
        f"fused q/k RMSNorm (neither {DUAL_UNIFIED}, {DUAL_LEGACY} nor {DUAL_PRIVATE})",
        lambda api: api.dual is not None,
    )


# --------------------------------------------------------------------------------------------
# supports_args: pure functions of the probed capabilities and the arguments' metadata
# --------------------------------------------------------------------------------------------


def _plain(x: torch.Tensor, variance_size: int | None) -> bool:
    return x.dtype in SUPPORTED_DTYPES and (variance_size is None or variance_size == x.shape[-1])


def _plain_hidden_ok(api: AiterApi | None, x: torch.Tensor) -> bool:
    return x.shape[-1] <= FAST_PATH_MAX_HIDDEN or (api is not None and api.any_hidden)


def rms_norm_supported(
    api: AiterApi | None,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """fp16/bf16 x and a (H,) weight of the same dtype (not None); no variance_size (or H).

    ``weight_bias`` 0.0 for H <= :data:`FAST_PATH_MAX_HIDDEN`, or any H where the opus kernels
    serve it; 1.0 (Gemma) only through ``aiter.rmsnorm(..., gemma_norm)``, i.e. AITER >= 0.1.17,
    and only for H <= :data:`GEMMA_MAX_HIDDEN`. Any layout: the wrapper makes the 2-D contiguous
    copy AITER needs when x is not contiguous already.
    """
    if not (_plain(x, variance_size) and kit.is_weight_for(x, weight)):
        return False
    if weight_bias == 0.0:
        return _plain_hidden_ok(api, x)
    return (
        weight_bias == 1.0
        and api is not None
        and api.gemma_rms_norm is not None
        and x.shape[-1] <= GEMMA_MAX_HIDDEN
    )


def fused_add_rms_norm_supported(
    api: AiterApi | None,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
) -> bool:
    """As :func:`rms_norm_supported`, with residual of x's shape and dtype.

    ``weight_bias=1.0`` needs ``rmsnorm2d_fwd_with_add``'s ``gemma_norm`` keyword (AITER >=
    0.1.17) and H <= :data:`GEMMA_MAX_HIDDEN` (the CK path above drops the flag).
    """
    if not (
        _plain(x, variance_size)
        and kit.is_weight_for(x, weight)
        and residual.dtype == x.dtype
        and tuple(residual.shape) == tuple(x.shape)
    ):
        return False
    if weight_bias == 0.0:
        return _plain_hidden_ok(api, x)
    return (
        weight_bias == 1.0
        and api is not None
        and api.fused_add_gemma
        and x.shape[-1] <= GEMMA_MAX_HIDDEN
    )


def dual_rms_norm_supported(
    a: torch.Tensor, a_weight: torch.Tensor, b: torch.Tensor, b_weight: torch.Tensor
) -> bool:
    """One fp16/bf16 dtype for a, b and both weights; a and b with the same leading shape
    (the kernel walks M rows of both); each hidden size in 1..:data:`DUAL_MAX_HIDDEN`."""
    return bool(
        a.dtype in SUPPORTED_DTYPES
        and b.dtype == a.dtype
        and kit.is_weight_for(a, a_weight)
        and kit.is_weight_for(b, b_weight)
        and tuple(a.shape[:-1]) == tuple(b.shape[:-1])
        and 1 <= a.shape[-1] <= DUAL_MAX_HIDDEN
        and 1 <= b.shape[-1] <= DUAL_MAX_HIDDEN
    )


# --------------------------------------------------------------------------------------------
# Argument mapping: what AITER receives for each op. Tested with a recorder in place of AITER.
# --------------------------------------------------------------------------------------------


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(N, H) contiguous view of t, copying only when t's layout does not allow a view.

    Several AITER releases require 2-D contiguous inputs (the newest accept a row stride).
    """
    return t.reshape(-1, t.shape[-1]).contiguous()


def call_rms_norm(
    api: AiterApi, x: torch.Tensor, weight: torch.Tensor, epsilon: float, weight_bias: float
) -> torch.Tensor:
    """``aiter.rms_norm(x2d, weight, epsilon)``, or for ``weight_bias=1.0``
    ``aiter.rmsnorm(out2d, x2d, weight, epsilon, True)`` (``gemma_norm`` is that stub's fifth
    and last parameter). Returns a new tensor of x's shape and dtype."""
    if x.numel() == 0:
        return kit.empty_output(x)
    x2d = _rows(x)
    if weight_bias == 1.0:
        assert api.gemma_rms_norm is not None, "supports_args admits weight_bias=1.0 only then"
        out = torch.empty_like(x2d)
        api.gemma_rms_norm(out, x2d, weight, epsilon, True)
    else:
        assert api.rms_norm is not None
        out = api.rms_norm(x2d, weight, epsilon)
    return out.view(x.shape)


def call_fused_add_rms_norm(
    api: AiterApi,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    epsilon: float,
    weight_bias: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``aiter.rmsnorm2d_fwd_with_add(out, x2d, residual2d, residual_out, weight, epsilon)``,
    plus ``gemma_norm=True`` by keyword for ``weight_bias=1.0``.

    AITER writes only ``out`` and ``residual_out``, which are allocated here: x and residual
    are read, never written. Returns ``(out, residual_out)`` in the shapes of x and residual.
    """
    out, residual_out = kit.empty_output(x), kit.empty_output(residual)
    if x.numel() == 0:
        return out, residual_out
    assert api.fused_add is not None
    gemma = {"gemma_norm": True} if weight_bias == 1.0 else {}
    hidden = x.shape[-1]
    api.fused_add(
        out.view(-1, hidden),
        _rows(x),
        _rows(residual),
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

    a (..., Ha) and b (..., Hb) are viewed as (M, Ha) and (M, Hb). The unified and private forms
    write into outputs allocated here; the legacy form gets copies of a and b we own, because
    some of its builds normalise in place. Returns new tensors of a's and b's shapes.
    """
    if a.numel() == 0 or b.numel() == 0:
        return kit.empty_output(a), kit.empty_output(b)
    assert api.dual is not None
    a2d, b2d = _rows(a), _rows(b)
    if api.dual_form == DUAL_LEGACY:
        a_out, b_out = api.dual(a2d.clone(), a_weight, a_epsilon, b2d.clone(), b_weight, b_epsilon)
    else:
        a_out, b_out = torch.empty_like(a2d), torch.empty_like(b2d)
        if api.dual_form == DUAL_UNIFIED:
            api.dual(
                q_out_quantized=a_out,
                q=a2d,
                q_weight=a_weight,
                q_epsilon=a_epsilon,
                k_out=b_out,
                k=b2d,
                k_weight=b_weight,
                k_epsilon=b_epsilon,
            )
        else:
            api.dual(a_out, a2d, a_weight, a_epsilon, b_out, b2d, b_weight, b_epsilon)
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
    return bool(rms_norm_supported(loaded_api(), x, weight, weight_bias, variance_size))


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
    return bool(
        fused_add_rms_norm_supported(loaded_api(), x, residual, weight, weight_bias, variance_size)
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
