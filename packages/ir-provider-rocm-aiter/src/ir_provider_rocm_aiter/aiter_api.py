"""The installed AITER, read once: its version, what its entry points take, and which of the
JIT modules behind them can run on this machine.

Why this is not ``inspect.signature`` (facts read in ROCm/aiter, tags v0.1.10 .. v0.1.20.post1):

- Every ``@compile_ops`` stub, and every function decorated with ``@torch_compile_guard``
  directly, is returned by ``aiter/jit/utils/torch_guard.py`` as a plain
  ``wrapper_custom(*args, **kwargs)`` without ``functools.wraps``: its signature says nothing.
  The same decorator registers a torch custom op named like the Python stub in the ``aiter``
  namespace, with the schema ``torch.library.infer_schema`` made of the stub (a ``Tensor dummy``
  first when the stub's first parameter is not a Tensor), so the parameter names are
  ``torch.ops.aiter.<name>.default._schema``'s arguments. vLLM reads them the same way.
- Plain Python functions (AITER's dispatchers such as ``rmsnorm2d_fwd_with_add`` up to 0.1.17,
  ``rms_norm_opus``, the fused q/k forms) register no op of their name, and
  ``inspect.signature`` shows their parameters.
- Where neither tells (a wrapper whose op was never registered), the release decides: the
  distribution ``amd-aiter``'s version from its metadata (AITER has no ``__version__``).

Which JIT modules can run: AITER builds its kernels into modules (``module_rmsnorm``,
``module_rmsnorm_quant``, ...), prebuilt into ``aiter/jit/`` by release wheels or compiled on
first call. From 0.1.12 AITER can be built without Composable Kernel (``ENABLE_CK=0``): then
every module that needs CK headers (``aiter.jit.core._get_ck_exclude_modules()``: the CK
rmsnorm of <= 0.1.17, and also the HIP norm, activation, quant and fused q/k modules, which use
ck_tile headers) is missing from the wheel, cannot be compiled either, and fails at *call*
time, after ``import aiter`` succeeded. :func:`module_problems` finds those modules up front so
that the ops needing them report "unavailable" (or decline the arguments that reach them)
instead of failing in the middle of a model.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ir_core import kit

PROVIDER = "aiter"
#: The distribution that ships the ``aiter`` module.
DISTRIBUTION = "amd-aiter"
INSTALL_HINT = (
    "pip install 'ir-provider-rocm-aiter[aiter]' on a ROCm machine, from AMD's wheel index "
    "or a ROCm vLLM/SGLang image (PyPI has no usable release)"
)

#: AITER's JIT modules behind the entry points this provider calls.
MODULE_NORM = "module_rmsnorm"  # CK rmsnorm2d up to 0.1.17; the opus kernels from 0.1.18
MODULE_HIP_NORM = "module_rmsnorm_quant"  # the HIP rmsnorm/add_rmsnorm(+quant) kernels
MODULE_ACTIVATION = "module_activation"
MODULE_QUANT = "module_quant"
MODULE_DUAL = "module_fused_qk_norm_rope_cache_quant_shuffle"
MODULES = (MODULE_NORM, MODULE_HIP_NORM, MODULE_ACTIVATION, MODULE_QUANT, MODULE_DUAL)

#: Widest row of the HIP norm kernels (module_rmsnorm_quant's dispatch table ends there with
#: ``"not support n"``); AITER's own dispatchers send wider rows elsewhere.
HIP_MAX_HIDDEN = 8192


def release(version: str) -> tuple[tuple[int, ...], bool] | None:
    """``(release numbers, is a pre-release)`` of a version string, or None when unreadable.

    ``0.1.18.dev5+g1234`` is ``((0, 1, 18), True)``: a development build sorts below its
    release, as ``packaging`` orders it; ``.postN`` and local parts do not matter here.
    """
    found = re.match(r"v?(\d+(?:\.\d+)*)(.*)", version.strip())
    if found is None:
        return None
    numbers = tuple(int(n) for n in found.group(1).split("."))
    return numbers, bool(re.match(r"[.\-_]?(dev|rc|a|b|alpha|beta|pre)", found.group(2)))


def at_least(version: str, minimum: tuple[int, ...]) -> bool:
    """``version >= minimum`` for a release tuple; False when ``version`` is unreadable."""
    parsed = release(version)
    if parsed is None:
        return False
    numbers, pre = parsed
    width = max(len(numbers), len(minimum))
    padded = numbers + (0,) * (width - len(numbers))
    wanted = minimum + (0,) * (width - len(minimum))
    return padded > wanted or (padded == wanted and not pre)


def torch_ops_namespace(aiter: Any) -> Any:
    """The ``torch.ops`` namespace AITER registers its ops in: the one of the ``Library`` that
    ``aiter.jit.utils.torch_guard`` holds (``"aiter"`` in every release)."""
    guard = getattr(getattr(getattr(aiter, "jit", None), "utils", None), "torch_guard", None)
    namespace = getattr(getattr(guard, "aiter_lib", None), "ns", None) or "aiter"
    return getattr(torch.ops, namespace)


def parameters(aiter: Any, name: str) -> tuple[str, ...] | None:
    """The parameter names of ``aiter.<name>``, or None when nothing tells them.

    From the torch op AITER registered under that name (its schema, less the ``dummy`` it
    prepends), else from the function's own signature when it is a plain function; a
    ``(*args, **kwargs)`` wrapper without an op tells nothing.
    """
    op = getattr(torch_ops_namespace(aiter), name, None)
    schema = getattr(getattr(op, "default", None), "_schema", None)
    if schema is not None:
        names = tuple(argument.name for argument in schema.arguments)
        return names[1:] if names[:1] == ("dummy",) else names
    fn = getattr(aiter, name, None)
    if not callable(fn):
        return None
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if any(p.kind in variadic for p in signature.parameters.values()):
        return None
    return tuple(signature.parameters)


def takes(aiter: Any, version: str, name: str, parameter: str, since: tuple[int, ...]) -> bool:
    """``aiter.<name>`` has ``parameter``: read from its schema or signature, or, when neither
    is readable, assumed from the release that added it (``since``)."""
    if not callable(getattr(aiter, name, None)):
        return False
    names = parameters(aiter, name)
    return parameter in names if names is not None else at_least(version, since)


def prebuilt(module: str) -> bool:
    """AITER's JIT module ``module`` is importable: built into the wheel or compiled before.

    AITER imports modules as ``aiter.jit.<name>``, or as ``<name>`` from ``AITER_JIT_DIR``
    (which it puts on ``sys.path``) when that variable is set (``aiter/jit/core.py``).
    """
    name = module if "AITER_JIT_DIR" in os.environ else f"aiter.jit.{module}"
    return not kit.module_missing(name)


def module_problems(
    aiter: Any, modules: tuple[str, ...] = MODULES, built: Callable[[str], bool] = prebuilt
) -> dict[str, str]:
    """Why each of ``modules`` cannot run here (absent: it can), found without building any.

    A module can run when it is prebuilt, or when AITER can compile it: always, unless CK's
    headers are missing (``aiter.jit.core.CK_3RDPARTY_DIR`` is not a directory, a build with
    ``ENABLE_CK=0``) and the module is one of those AITER lists as needing CK.
    """
    core = getattr(getattr(aiter, "jit", None), "core", None)
    ck_dir = getattr(core, "CK_3RDPARTY_DIR", None)
    if not isinstance(ck_dir, str) or os.path.isdir(ck_dir):
        return {}  # CK is there (releases before 0.1.12 always have it): everything builds
    needs_ck_of = getattr(core, "_get_ck_exclude_modules", None)
    try:
        needs_ck = set(needs_ck_of()) if callable(needs_ck_of) else set(modules)
    except Exception:  # AITER reads its build config there; unreadable means "assume CK"
        needs_ck = set(modules)
    return {
        module: (
            f"AITER is built without CK (no {ck_dir}): {module} needs CK to compile and is "
            "not prebuilt"
        )
        for module in modules
        if module in needs_ck and not built(module)
    }


#: Forms of the fused q/k RMSNorm (``dual_rms_norm``).
DUAL_UNIFIED = "aiter.fused_qk_rmsnorm (unified, 0.1.14+)"
DUAL_LEGACY = "aiter.fused_qk_rmsnorm (0.1.12-0.1.13, returns new outputs)"


@dataclass(frozen=True)
class AiterApi:
    """What the installed AITER offers, read once by :func:`probe`."""

    version: str
    #: The ``aiter`` module (or a test's recorder with its shape).
    module: Any
    #: The "opus" generation (0.1.18 on, ``rms_norm_opus`` exists): ``module_rmsnorm`` is opus,
    #: not CK, and serves every hidden size, Gemma and fp32 included.
    opus: bool
    #: ``rmsnorm(out, input, weight, epsilon, gemma_norm)`` (HIP): 0.1.17 on.
    gemma_rmsnorm: bool
    #: ``rmsnorm2d_fwd_with_add(..., gemma_norm=...)``: 0.1.17 on.
    gemma_fused_add: bool
    #: ``rmsnorm2d_fwd_with_dynamicquant(..., group_size, shuffle_scale)``: 0.1.10.post1 on.
    group_dynamicquant: bool
    #: DUAL_UNIFIED, DUAL_LEGACY, or "" when there is no fused q/k RMSNorm.
    dual_form: str
    #: ``aiter.dtypes.fp8``: the fp8 dtype AITER's kernels write on this GPU (e4m3fnuz on
    #: gfx942 / MI300, e4m3fn on gfx950 / MI350), or None when it is not an fp8 dtype.
    fp8: torch.dtype | None
    #: JIT module -> why it cannot run here (see :func:`module_problems`).
    unusable: Mapping[str, str] = field(default_factory=dict)

    def fn(self, name: str) -> Callable[..., Any] | None:
        """``aiter.<name>`` when it exists."""
        fn = getattr(self.module, name, None)
        return fn if callable(fn) else None

    def runs(self, *modules: str) -> bool:
        """Every one of ``modules`` can run here."""
        return not any(module in self.unusable for module in modules)

    def problem(self, entry: str, *modules: str) -> str | None:
        """Why ``entry`` cannot be used here (missing, or a module it needs cannot run)."""
        if self.fn(entry) is None:
            return f"AITER {self.version} has no aiter.{entry}"
        for module in modules:
            if module in self.unusable:
                return f"aiter.{entry}: {self.unusable[module]}"
        return None


def _dual_form(aiter: Any) -> str:
    names = set(parameters(aiter, "fused_qk_rmsnorm") or ())
    if {"q_out_quantized", "q", "q_weight", "q_epsilon", "k_out", "k", "k_weight"} <= names:
        return DUAL_UNIFIED
    if {"q", "q_weight", "q_eps", "k", "k_weight", "k_eps"} <= names:
        return DUAL_LEGACY
    return ""


def probe(
    aiter: Any, version: str = "unknown", built: Callable[[str], bool] = prebuilt
) -> AiterApi:
    """Read the loaded ``aiter`` module (or a stand-in with its shape) into an :class:`AiterApi`."""
    fp8 = getattr(getattr(aiter, "dtypes", None), "fp8", None)
    return AiterApi(
        version=version,
        module=aiter,
        opus=callable(getattr(aiter, "rms_norm_opus", None)),
        gemma_rmsnorm=takes(aiter, version, "rmsnorm", "gemma_norm", (0, 1, 17)),
        gemma_fused_add=takes(aiter, version, "rmsnorm2d_fwd_with_add", "gemma_norm", (0, 1, 17)),
        group_dynamicquant=takes(
            aiter, version, "rmsnorm2d_fwd_with_dynamicquant", "group_size", (0, 1, 11)
        ),
        dual_form=_dual_form(aiter),
        fp8=fp8 if isinstance(fp8, torch.dtype) and fp8.is_floating_point else None,
        unusable=module_problems(aiter, MODULES, built),
    )


# --------------------------------------------------------------------------------------------
# Loading, once per process
# --------------------------------------------------------------------------------------------


def installed_version() -> str:
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

    ``import aiter`` raises RuntimeError on a machine without ROCm ("ROCm version file not
    found") and can fail in other ways (HIP runtime, an op module's import), so every
    exception type counts.
    """
    module, reason = kit.import_module("aiter", import_module)
    if reason:
        return None, reason
    if not callable(getattr(module, "rms_norm", None)):
        origin = getattr(module, "__file__", "?")
        return None, (
            f"the importable 'aiter' module ({origin}) has no rms_norm: it is not AMD's AITER "
            "(amd-aiter), or AITER_TRITON_ONLY=1 left its HIP/CK ops unbound"
        )
    return probe(module, installed_version()), ""


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


def available_if(problem: Callable[[AiterApi], str | None]) -> tuple[bool, str]:
    """An op's availability: AITER loaded, and ``problem(api)`` finds nothing missing."""
    api, reason = load()
    if api is None:
        return False, reason
    found = problem(api)
    return (False, found) if found else (True, "")


def two_d(t: torch.Tensor) -> torch.Tensor:
    """(N, H) contiguous view of t, copying only when t's layout does not allow a view: what
    AITER's HIP and CK kernels address (rows of ``input.size(1)`` at ``input.stride(0)``)."""
    return t.reshape(-1, t.shape[-1]).contiguous()
