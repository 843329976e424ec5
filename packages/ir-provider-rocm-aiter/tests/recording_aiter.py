"""Stand-ins for the ``aiter`` module, one per AITER release generation, built the way AITER
builds its Python API, recording every call and computing results with torch.

Read against ROCm/aiter's tags (``git show <tag>:<path>``); each generation names the release it
mirrors:

- ``0.1.13``: ``aiter/ops/rmsnorm.py`` as in v0.1.10.post3 .. v0.1.16.post6 (identical), the
  legacy fused q/k ``fused_qk_rmsnorm(q, ..., k_eps) -> (q_out, k_out)`` of v0.1.12/v0.1.13,
  ``silu_and_mul(out, input)``.
- ``0.1.16``: as 0.1.13, with the unified ``fused_qk_rmsnorm(q_out_quantized=..., ...)`` of
  v0.1.14 .. v0.1.20.post1 and ``silu_and_mul(out, input, limit=0.0)`` (v0.1.14 on).
- ``0.1.17``: v0.1.17's ``gemma_norm`` on the HIP stubs (last parameter) and on the plain
  ``rmsnorm2d_fwd_with_add`` (7th, before ``use_model_sensitive_rmsnorm``).
- ``0.1.18``: v0.1.18's opus generation, which v0.1.19 .. v0.1.20.post1 keep for every entry
  point used here: ``rms_norm``/``rmsnorm2d_fwd_with_add`` are ``@torch_compile_guard``
  dispatchers (HIP or opus), ``rms_norm_opus``/``rmsnorm2d_fwd_with_add_opus`` plain.

How AITER wraps (``aiter/jit/utils/torch_guard.py`` ``torch_compile_guard``, which
``aiter/jit/core.py`` ``compile_ops`` returns for every ``@compile_ops`` stub, v0.1.10 ..
v0.1.20.post1), mirrored by :meth:`RecordingAiter._guard`: the Python attribute is a nested
``wrapper_custom(*args, **kwargs)`` without ``functools.wraps`` (so ``inspect.signature`` shows
nothing), which calls ``torch.ops.<ns>.<stub name>``; the op is defined at decoration time in
the ``Library`` that ``torch_guard.aiter_lib`` holds, with the schema
``torch.library.infer_schema(stub, mutates_args=...)`` (``"unknown"``, i.e. every Tensor
mutable, for ``compile_ops``) and a ``Tensor dummy`` prepended when the stub's first parameter
is not a Tensor. Each recorder has its own namespace (``aiter`` can hold one schema per name,
and generations differ); ops are defined without the namespace prefix, as v0.1.20 does (torch
2.13 no longer strips a duplicated one). Fake impls are not registered: nothing here traces.

Kernels are emulated in torch with the checks the C++ makes (dtypes, "not support n", 2-D
rows, contiguity where the kernel assumes it) and AITER's arithmetic: fp32 accumulation, one
rounding. A build without CK (``ck=False``) fails a call into a CK-dependent module that is
not in ``prebuilt``, at call time, as AITER's JIT does.

No ``from __future__ import annotations`` here: like AITER's own files, the stubs' annotations
must be objects for ``infer_schema`` and the "first parameter is a Tensor" test.
"""

import inspect
import itertools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

GENERATIONS = ("0.1.13", "0.1.16", "0.1.17", "0.1.18")

#: ``aiter.dtypes.fp8`` per GPU (``aiter/utility/dtypes.py``), and the saturation bound the
#: kernels clamp to before converting (``csrc/include/aiter_opus_plus.h``: 240 on gfx942).
ARCH_FP8 = {"gfx942": torch.float8_e4m3fnuz, "gfx950": torch.float8_e4m3fn}

#: What ``aiter.jit.core._get_ck_exclude_modules()`` lists among the modules used here: the CK
#: rmsnorm2d (until opus replaced it in 0.1.18) and the modules with ck_tile source deps.
_CK_MODULES_CK_GENERATION = frozenset(
    {
        "module_rmsnorm",
        "module_rmsnorm_quant",
        "module_activation",
        "module_quant",
        "module_fused_qk_norm_rope_cache_quant_shuffle",
    }
)
_CK_MODULES_OPUS_GENERATION = _CK_MODULES_CK_GENERATION - {"module_rmsnorm"}

_LIBRARIES: list[torch.library.Library] = []  # the ops live as long as their Library
_NAMESPACES = itertools.count()


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _norm(x: Tensor, w: Tensor, eps: float, gemma: bool = False) -> Tensor:
    """AITER's norm arithmetic: fp32 throughout, weight (+1 for Gemma) in fp32, one rounding."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return y * (w.float() + (1.0 if gemma else 0.0))


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


class RecordingAiter:
    """The ``aiter`` module of one generation (see :func:`build`), recording its calls."""

    def __init__(self, generation: str, *, ck: bool, arch: str, prebuilt: frozenset[str]):
        assert generation in GENERATIONS, generation
        self.generation = generation
        self.opus = generation == "0.1.18"
        self.gemma = generation in ("0.1.17", "0.1.18")
        self.ck = ck
        self.prebuilt = prebuilt
        self.calls: list[Call] = []
        self._lib = torch.library.Library(f"ir_test_aiter_{next(_NAMESPACES)}", "FRAGMENT")
        _LIBRARIES.append(self._lib)
        ck_modules = _CK_MODULES_OPUS_GENERATION if self.opus else _CK_MODULES_CK_GENERATION
        ck_dir = tempfile.gettempdir() if ck else os.path.join(tempfile.gettempdir(), "no-ck")
        self.jit = SimpleNamespace(
            core=SimpleNamespace(
                CK_3RDPARTY_DIR=ck_dir, _get_ck_exclude_modules=lambda: set(ck_modules)
            ),
            utils=SimpleNamespace(torch_guard=SimpleNamespace(aiter_lib=self._lib)),
        )
        self._ck_modules = ck_modules
        self.dtypes = SimpleNamespace(
            fp8=ARCH_FP8[arch], fp32=torch.float32, i8=torch.int8, bf16=torch.bfloat16
        )
        self.fp8_max = float(torch.finfo(ARCH_FP8[arch]).max)

    # -- recording ---------------------------------------------------------------------------

    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(name, tuple(args), dict(kwargs)))

    @property
    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    @property
    def first_call(self) -> Call:
        assert self.calls, "AITER was not called"
        return self.calls[0]

    @property
    def ops(self) -> Any:
        """This recorder's ``torch.ops`` namespace (``torch.ops.aiter`` of the real thing)."""
        return getattr(torch.ops, self._lib.ns)

    # -- how AITER turns a stub into its Python attribute -------------------------------------

    def _guard(
        self,
        stub: Callable[..., Any],
        kernel: Callable[..., Any],
        module: str | None = None,
        mutates_args: Any = "unknown",
    ) -> Callable[..., Any]:
        """``compile_ops(module)(stub)`` (``mutates_args="unknown"``), or
        ``torch_compile_guard(mutates_args=...)(stub)`` with ``module=None``: defines the op,
        registers ``kernel`` (the emulation) as its CPU and CUDA impl, and returns AITER's
        signature-less ``wrapper_custom``."""
        name = stub.__name__
        schema = torch.library.infer_schema(stub, mutates_args=mutates_args)
        params = list(inspect.signature(stub).parameters.values())
        input_is_tensor = bool(params) and params[0].annotation is torch.Tensor
        if not input_is_tensor:
            schema = "(Tensor dummy, " + schema[1:] if params else "(Tensor dummy)" + schema[2:]

        def impl(*args: Any, **kwargs: Any) -> Any:
            if not input_is_tensor:
                args = args[1:]
            self.record(name, args, kwargs)
            if module is not None and self.ck is False:
                _need(
                    module not in self._ck_modules or module in self.prebuilt,
                    f"[aiter] build [{module}] failed: CK is not available (ENABLE_CK=0)",
                )
            return kernel(*args, **kwargs)

        self._lib.define(name + schema)
        for key in ("CPU", "CUDA"):
            self._lib.impl(name, impl, dispatch_key=key)
        ns = self._lib.ns

        def wrapper_custom(*args: Any, **kwargs: Any) -> Any:
            op = getattr(getattr(torch.ops, ns), name)
            if input_is_tensor:
                return op(*args, **kwargs)
            return op(torch.empty(1), *args, **kwargs)

        return wrapper_custom

    def _plain(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A plain Python function of AITER's: visible signature, no op; recorded."""
        sig = inspect.signature(fn)

        def plain(*args: Any, **kwargs: Any) -> Any:
            sig.bind(*args, **kwargs)  # a TypeError where Python would raise one
            self.record(fn.__name__, args, kwargs)
            return fn(*args, **kwargs)

        plain.__signature__ = sig  # type: ignore[attr-defined]
        plain.__name__ = fn.__name__
        return plain

    # -- kernel emulations with the C++ checks -------------------------------------------------

    def _hip_rows(self, name: str, input: Tensor) -> None:
        """module_rmsnorm_quant: ``n = input.size(1)``, rows at ``input.stride(0)``."""
        _need(input.dim() == 2, f"{name}: the kernel reads 2-D rows (size(1), stride(0))")
        _need(input.stride(1) == 1, f"{name}: rows must be dense")
        _need(input.dtype in (torch.float16, torch.bfloat16), f"{name}: fp16/bf16 only")
        _need(input.size(1) <= 8192, f"{name} not support n: {input.size(1)}")

    def _fp8_out(self, name: str, out: Tensor) -> None:
        _need(out.dtype == self.dtypes.fp8, f"{name} not support output type: {out.dtype}")

    def _quantize(self, v: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
        """``v * (1 / scale)``, clamped to the arch's fp8 max (v_med3 before v_cvt_pk_fp8)."""
        return (v * (1.0 / scale)).clamp(-self.fp8_max, self.fp8_max).to(dtype)


def build(
    generation: str,
    *,
    ck: bool = True,
    arch: str = "gfx942",
    prebuilt: frozenset[str] = frozenset(),
) -> RecordingAiter:
    """The ``aiter`` stand-in of ``generation`` (see the module docstring), for an MI300
    (``gfx942``: fp8 is e4m3fnuz) unless ``arch`` says otherwise, built with CK unless ``ck`` is
    False (then only the modules in ``prebuilt`` run)."""
    rec = RecordingAiter(generation, ck=ck, arch=arch, prebuilt=prebuilt)
    _norms(rec)
    _dual(rec)
    _activations(rec)
    _quant(rec)
    _rope(rec)
    return rec


def _norms(rec: RecordingAiter) -> None:
    gemma = rec.gemma

    # -- the HIP kernels (module_rmsnorm_quant, @compile_ops) --
    if gemma:

        def rmsnorm(
            out: Tensor, input: Tensor, weight: Tensor, epsilon: float, gemma_norm: bool = False
        ) -> None: ...

        def add_rmsnorm(
            out: Tensor,
            input: Tensor,
            residual_in: Tensor,
            residual_out: Tensor,
            weight: Tensor,
            epsilon: float,
            gemma_norm: bool = False,
        ) -> None: ...

    else:

        def rmsnorm(out: Tensor, input: Tensor, weight: Tensor, epsilon: float) -> None: ...

        def add_rmsnorm(
            out: Tensor,
            input: Tensor,
            residual_in: Tensor,
            residual_out: Tensor,
            weight: Tensor,
            epsilon: float,
        ) -> None: ...

    def rmsnorm_kernel(out, input, weight, epsilon, gemma_norm=False):
        rec._hip_rows("rmsnorm", input)
        out.copy_(_norm(input, weight, epsilon, gemma_norm))

    def add_rmsnorm_kernel(
        out, input, residual_in, residual_out, weight, epsilon, gemma_norm=False
    ):
        rec._hip_rows("add_rmsnorm", input)
        s = input.float() + residual_in.float()  # the fp32 sum, normalised as is
        residual_out.copy_(s)
        out.copy_(_norm(s, weight, epsilon, gemma_norm))

    rec.rmsnorm = rec._guard(rmsnorm, rmsnorm_kernel, "module_rmsnorm_quant")
    rec.add_rmsnorm = rec._guard(add_rmsnorm, add_rmsnorm_kernel, "module_rmsnorm_quant")

    if rec.opus:
        _opus_norms(rec)
        return

    # -- up to 0.1.17: the CK module (module_rmsnorm) --
    def rms_norm(
        input: Tensor, weight: Tensor, epsilon: float, use_model_sensitive_rmsnorm: int = 0
    ) -> Tensor:
        """CK version of rmsnorm"""

    def ck_rms_norm_kernel(input, weight, epsilon, use_model_sensitive_rmsnorm=0):
        return _norm(input, weight, epsilon).to(input.dtype)  # any hidden size

    def rmsnorm2d_fwd_with_add_ck(
        out: Tensor,
        input: Tensor,
        residual_in: Tensor,
        residual_out: Tensor,
        weight: Tensor,
        epsilon: float,
        use_model_sensitive_rmsnorm: int = 0,
    ) -> None: ...

    def ck_add_kernel(out, input, residual_in, residual_out, weight, epsilon, msr=0):
        s = input.float() + residual_in.float()
        residual_out.copy_(s)
        out.copy_(_norm(s, weight, epsilon))  # no gemma_norm in the CK kernel

    rec.rms_norm = rec._guard(rms_norm, ck_rms_norm_kernel, "module_rmsnorm")
    rec.rmsnorm2d_fwd_with_add_ck = rec._guard(
        rmsnorm2d_fwd_with_add_ck, ck_add_kernel, "module_rmsnorm"
    )

    # the plain dispatcher: HIP up to 8192, CK above (v0.1.10.post3 .. v0.1.17)
    if gemma:

        def rmsnorm2d_fwd_with_add(
            out, input, residual_in, residual_out, weight, epsilon, gemma_norm=False,
            use_model_sensitive_rmsnorm=0,
        ):  # fmt: skip
            if use_model_sensitive_rmsnorm > 0 or input.shape[-1] > 8192:
                rec.rmsnorm2d_fwd_with_add_ck(
                    out, input, residual_in, residual_out, weight, epsilon,
                    use_model_sensitive_rmsnorm,
                )  # fmt: skip
            else:
                rec.add_rmsnorm(out, input, residual_in, residual_out, weight, epsilon, gemma_norm)

    else:

        def rmsnorm2d_fwd_with_add(
            out, input, residual_in, residual_out, weight, epsilon, use_model_sensitive_rmsnorm=0
        ):
            if use_model_sensitive_rmsnorm > 0 or input.shape[-1] > 8192:
                rec.rmsnorm2d_fwd_with_add_ck(
                    out, input, residual_in, residual_out, weight, epsilon,
                    use_model_sensitive_rmsnorm,
                )  # fmt: skip
            else:
                rec.add_rmsnorm(out, input, residual_in, residual_out, weight, epsilon)

    rec.rmsnorm2d_fwd_with_add = rec._plain(rmsnorm2d_fwd_with_add)

    def rmsnorm2d_fwd_with_dynamicquant(
        out, input, yscale, weight, epsilon, use_model_sensitive_rmsnorm=0, group_size=0,
        shuffle_scale=False,
    ):  # fmt: skip
        if use_model_sensitive_rmsnorm > 0 or input.shape[-1] > 8192:
            _need(group_size == 0, "group_size is not supported for ck rmsnorm")
            raise NotImplementedError("the CK per-token path is not emulated here")
        rec.rmsnorm_quant(out, input, yscale, weight, epsilon, group_size, shuffle_scale)

    rec.rmsnorm2d_fwd_with_dynamicquant = rec._plain(rmsnorm2d_fwd_with_dynamicquant)


def _opus_norms(rec: RecordingAiter) -> None:
    """v0.1.18 .. v0.1.20.post1: opus is ``module_rmsnorm``; HIP for the common case."""

    def opus_check(input, weight, allow_row_stride=False):
        # rms_norm_opus._check (aiter/ops/rmsnorm.py)
        assert input.dtype in (torch.float16, torch.bfloat16, torch.float32), input.dtype
        assert weight.dtype == input.dtype, "rms_norm_opus: weight dtype must match input"
        if allow_row_stride:
            assert input.stride(-1) == 1, "rms_norm_opus: last dim must be contiguous"
        else:
            assert input.is_contiguous(), "rms_norm_opus: contiguous only"
        assert weight.is_contiguous(), "rms_norm_opus: weight must be contiguous"

    def opus_module():
        # the ctypes kernels (_rms_norm_opus_raw, ...) live in module_rmsnorm, no CK needed
        if rec.ck is False:
            _need("module_rmsnorm" not in rec._ck_modules, "opus needs no CK")

    def rms_norm_opus(out, input, weight, epsilon, model_sensitive=0, gemma_norm=False):
        opus_check(input, weight, allow_row_stride=True)
        assert out.dtype == input.dtype and out.is_contiguous(), "rms_norm_opus: bad out"
        opus_module()
        out.copy_(_norm(input, weight, epsilon, gemma_norm))

    def rmsnorm2d_fwd_with_add_opus(
        out, input, residual_in, residual_out, weight, epsilon, use_model_sensitive_rmsnorm=0,
        gemma_norm=False,
    ):  # fmt: skip
        opus_check(input, weight, allow_row_stride=True)
        assert residual_in.is_contiguous() and residual_out.is_contiguous()
        opus_module()
        s = input.float() + residual_in.float()
        residual_out.copy_(s)
        out.copy_(_norm(s, weight, epsilon, gemma_norm))

    rec.rms_norm_opus = rec._plain(rms_norm_opus)
    rec.rmsnorm2d_fwd_with_add_opus = rec._plain(rmsnorm2d_fwd_with_add_opus)

    def use_hip_common(input, use_model_sensitive_rmsnorm):
        return (
            use_model_sensitive_rmsnorm == 0
            and input.dim() == 2
            and input.element_size() == 2
            and input.shape[-1] <= 8192
        )

    def rms_norm(
        input: Tensor, weight: Tensor, epsilon: float, use_model_sensitive_rmsnorm: int = 0
    ) -> Tensor:
        out = torch.empty_like(input)
        if use_hip_common(input, use_model_sensitive_rmsnorm):
            rec.rmsnorm(out, input, weight, epsilon)
        else:
            rec.rms_norm_opus(out, input, weight, epsilon, use_model_sensitive_rmsnorm)
        return out

    def rmsnorm2d_fwd_with_add(
        out: Tensor,
        input: Tensor,
        residual_in: Tensor,
        residual_out: Tensor,
        weight: Tensor,
        epsilon: float,
        gemma_norm: bool = False,
        use_model_sensitive_rmsnorm: int = 0,
    ) -> None:
        if use_hip_common(input, use_model_sensitive_rmsnorm):
            rec.add_rmsnorm(out, input, residual_in, residual_out, weight, epsilon, gemma_norm)
            return
        rec.rmsnorm2d_fwd_with_add_opus(
            out, input, residual_in, residual_out, weight, epsilon, use_model_sensitive_rmsnorm,
            gemma_norm,
        )  # fmt: skip

    rec.rms_norm = rec._guard(rms_norm, rms_norm, mutates_args=[])
    rec.rmsnorm2d_fwd_with_add = rec._guard(
        rmsnorm2d_fwd_with_add, rmsnorm2d_fwd_with_add, mutates_args=["out", "residual_out"]
    )

    def rmsnorm2d_fwd_with_dynamicquant(
        out, input, yscale, weight, epsilon, use_model_sensitive_rmsnorm=0, group_size=0,
        shuffle_scale=False,
    ):  # fmt: skip
        if group_size == 0 and not shuffle_scale and yscale.element_size() != 1:
            raise NotImplementedError("the per-token path is not emulated here")
        assert input.shape[-1] <= 8192, "grouped/shuffle rmsnorm dynamicquant supports hidden<=8192"
        rec.rmsnorm_quant(out, input, yscale, weight, epsilon, group_size, shuffle_scale)

    rec.rmsnorm2d_fwd_with_dynamicquant = rec._plain(rmsnorm2d_fwd_with_dynamicquant)


def _dual(rec: RecordingAiter) -> None:
    def _fused_qk_rmsnorm_kernel(
        q: Tensor, q_weight: Tensor, q_eps: float, k: Tensor, k_weight: Tensor, k_eps: float,
        q_out: Tensor, k_out: Tensor,
    ) -> None: ...  # fmt: skip

    def dual_kernel(q, q_weight, q_eps, k, k_weight, k_eps, q_out, k_out):
        # csrc/kernels/fused_qk_norm.cu: 2-D, one fp16/bf16 dtype, n <= 8192
        for t in (q, k):
            rec._hip_rows("fused_qk_rmsnorm", t)
        _need(q.size(0) == k.size(0), "fused_qk_rmsnorm: q and k need the same rows")
        q_out.copy_(_norm(q, q_weight, q_eps))
        k_out.copy_(_norm(k, k_weight, k_eps))

    kernel = rec._guard(
        _fused_qk_rmsnorm_kernel, dual_kernel, "module_fused_qk_norm_rope_cache_quant_shuffle"
    )

    if rec.generation == "0.1.13":

        def fused_qk_rmsnorm(q, q_weight, q_eps, k, k_weight, k_eps):
            # v0.1.12/v0.1.13: the C++ allocates the outputs it returns
            q_out, k_out = torch.empty_like(q), torch.empty_like(k)
            kernel(q, q_weight, q_eps, k, k_weight, k_eps, q_out, k_out)
            return q_out, k_out

    else:

        def fused_qk_rmsnorm(
            q_out_quantized=None, q_out_scale=None, q=None, q_weight=None, q_epsilon=1e-6,
            q_out_unquantized=None, k_out=None, q_res_out=None, k=None, k_weight=None,
            k_epsilon=None, q_residual=None, gemma_norm=False, quant_type=None, group_size=None,
            transpose_scale=False,
        ):  # fmt: skip
            # quant_type QuantType.No: _fused_qk_rmsnorm, which ignores gemma_norm
            kernel(q, q_weight, q_epsilon, k, k_weight, k_epsilon, q_out_quantized, k_out)

    rec.fused_qk_rmsnorm = rec._plain(fused_qk_rmsnorm)


def _activations(rec: RecordingAiter) -> None:
    def act_kernel(name, act):
        def kernel(out, input, limit=0.0):
            # csrc/kernels/activation_kernels.cu: d = size(-1) / 2, rows at token * 2d
            _need(input.is_contiguous() and out.is_contiguous(), f"{name}: contiguous rows")
            if input.dtype != torch.float32:
                _need(input.dtype == out.dtype, f"{name}: input and out dtypes differ")
                # 4-byte-rounded buffer bounds write one element past an odd row
                _need(input.shape[-1] // 2 % 2 == 0, f"{name}: odd d writes past the row")
            d = input.shape[-1] // 2
            xf = input.float()
            out.copy_(act(xf[..., :d]) * xf[..., d:])

        return kernel

    silu = torch.nn.functional.silu

    def gelu(t):
        return torch.nn.functional.gelu(t)

    def gelu_tanh(t):
        return torch.nn.functional.gelu(t, approximate="tanh")

    if rec.generation == "0.1.13":

        def silu_and_mul(out: Tensor, input: Tensor) -> None: ...

    else:

        def silu_and_mul(out: Tensor, input: Tensor, limit: float = 0.0) -> None: ...

    def gelu_and_mul(out: Tensor, input: Tensor) -> None: ...

    def gelu_tanh_and_mul(out: Tensor, input: Tensor) -> None: ...

    module = "module_activation"
    rec.silu_and_mul = rec._guard(silu_and_mul, act_kernel("silu_and_mul", silu), module)
    rec.gelu_and_mul = rec._guard(gelu_and_mul, act_kernel("gelu_and_mul", gelu), module)
    rec.gelu_tanh_and_mul = rec._guard(
        gelu_tanh_and_mul, act_kernel("gelu_tanh_and_mul", gelu_tanh), module
    )


def _quant(rec: RecordingAiter) -> None:
    def static_per_tensor_quant(out: Tensor, input: Tensor, scale: Tensor) -> None: ...

    def static_kernel(out, input, scale):
        # csrc/kernels/quant_kernels.cu: fp16/bf16 input, rows at blockIdx.x * cols
        _need(input.dtype in (torch.float16, torch.bfloat16), "scaled_quant_kernel: 16-bit in")
        _need(input.is_contiguous(), "static_per_tensor_quant: rows at blockIdx.x * cols")
        rec._fp8_out("static_per_tensor_quant", out)
        out.copy_(rec._quantize(input.float(), scale.reshape(()), out.dtype))

    def dynamic_per_token_scaled_quant(
        out: Tensor,
        input: Tensor,
        scales: Tensor,
        scale_ub: Tensor | None = None,
        shuffle_scale: bool = False,
        num_rows: Tensor | None = None,
        num_rows_factor: int = 1,
    ) -> None: ...

    def per_token_kernel(out, input, scales, scale_ub=None, shuffle_scale=False, num_rows=None,
                         num_rows_factor=1):  # fmt: skip
        _need(input.is_contiguous() and out.is_contiguous(), "AITER_CHECK is_contiguous")
        _need(input.dtype in (torch.float16, torch.bfloat16), "16-bit input only")
        cols = input.shape[-1]
        _need(cols in (32, 64, 128), "only the group kernel (cols 32/64/128) is emulated")
        rec._fp8_out("dynamic_per_token_scaled_quant", out)
        ori_cols = out.shape[-1]
        groups = input.float().reshape(-1, ori_cols // cols, cols)  # (tokens, G, g)
        scale = groups.abs().amax(-1).clamp_min(1e-10) / rec.fp8_max  # absMax starts at 1e-10
        q = rec._quantize(groups, scale.unsqueeze(-1), out.dtype)
        out.copy_(q.reshape(out.shape))
        # scale[groupId], or scale[y * ori_rows + x] (column-major) with shuffle_scale
        flat = scales.view(-1)
        flat.copy_((scale.t() if shuffle_scale else scale).reshape(-1))

    def per_group_quant_hip(
        x: Tensor,
        scale: Tensor | None = None,
        quant_dtype: torch.dtype = torch.int8,
        group_size: int = 128,
        transpose_scale: bool = False,
        num_rows: Tensor | None = None,
        num_rows_factor: int = 1,
    ) -> tuple[Tensor, Tensor]:
        shape = x.shape
        assert scale is None, "unsupported: static per token quant"
        scale = torch.empty(
            (*shape[:-1], shape[-1] // group_size), dtype=torch.float32, device=x.device
        )
        assert group_size in [32, 64, 128], f"unsupported group size {group_size=}"
        y = torch.empty(shape, dtype=quant_dtype, device=x.device)
        rec.dynamic_per_token_scaled_quant(
            y, x.view(-1, group_size), scale, shuffle_scale=transpose_scale
        )
        return y, scale

    if rec.gemma:

        def rmsnorm_quant(
            out: Tensor, input: Tensor, scale: Tensor, weight: Tensor, epsilon: float,
            group_size: int = 0, shuffle_scale: bool = False, gemma_norm: bool = False,
        ) -> None: ...  # fmt: skip

    else:

        def rmsnorm_quant(
            out: Tensor, input: Tensor, scale: Tensor, weight: Tensor, epsilon: float,
            group_size: int = 0, shuffle_scale: bool = False,
        ) -> None: ...  # fmt: skip

    def rmsnorm_quant_kernel(out, input, scale, weight, epsilon, group_size=0,
                             shuffle_scale=False, gemma_norm=False):  # fmt: skip
        rec._hip_rows("rmsnorm_quant", input)
        rec._fp8_out("rmsnorm_quant", out)
        n, m = input.size(1), input.size(0)
        # RMSNORM_QUANT_KERNEL_DISPATCH: thread_data_size by n, then the group checks
        tds = 8 if n <= 2048 else 16 if n <= 4096 else 24 if n <= 6144 else 32
        _need(
            group_size % tds == 0 and group_size <= 64 * tds,
            f"group_size not support: {group_size}",
        )
        reduce = group_size // tds
        _need(group_size == 0 or reduce & (reduce - 1) == 0, "reduce_thread_size is not power of 2")
        _need(group_size > 0, "only the group path is emulated here")
        y = _norm(input, weight, epsilon, gemma_norm)  # quantised from fp32
        groups = y.reshape(m, n // group_size, group_size)
        s = groups.abs().amax(-1).clamp_min(1e-10) / rec.fp8_max  # thread_max starts at 1e-10
        out.copy_(rec._quantize(groups, s.unsqueeze(-1), out.dtype).reshape(m, n))
        # scale[x * n / group_size + y], or scale[y * m + x] with shuffle_scale
        scale.view(-1).copy_((s.t() if shuffle_scale else s).reshape(-1))

    rec.static_per_tensor_quant = rec._guard(static_per_tensor_quant, static_kernel, "module_quant")
    rec.dynamic_per_token_scaled_quant = rec._guard(
        dynamic_per_token_scaled_quant, per_token_kernel, "module_quant"
    )
    rec.per_group_quant_hip = rec._guard(per_group_quant_hip, per_group_quant_hip)
    rec.rmsnorm_quant = rec._guard(rmsnorm_quant, rmsnorm_quant_kernel, "module_rmsnorm_quant")


def _rope(rec: RecordingAiter) -> None:
    """``aiter.ops.triton.rope.rope.rope_cached_thd_positions_2c_fwd`` (plain, all tags)."""

    def rope_cached_thd_positions_2c_fwd(
        x, y, cos, sin, positions, rotate_style, reuse_freqs_front_part, nope_first,
        transpose_output=False,
    ):  # fmt: skip
        t, h, d = x.shape  # 2-D inputs: "not enough values to unpack"
        ty, kh, dy = y.shape
        assert t == ty, "The number of tokens should be the same for the two inputs"
        assert d == dy, "The head dimension should be the same for the two inputs"
        assert h % kh == 0, f"QH should be multiple of KH, but got QH={h} and KH={kh}"
        assert all(s > 0 for t_ in (x, y, cos) for s in t_.stride()), "tl.assume(stride > 0)"
        half = cos.shape[-1]
        if half == d // 2:
            have_nope = not reuse_freqs_front_part
        else:
            have_nope = half == d // 4
        block_d = d // 2 if have_nope else d
        assert block_d & (block_d - 1) == 0, "arange's range must be a power of 2"
        rot = block_d  # channels that rotate; a rot of neither d nor d/2 reads past cos
        assert reuse_freqs_front_part and not nope_first, "only vLLM's mode is emulated"
        assert rot // 2 <= half, "the kernel reads cos columns past the cache: garbage"
        c = cos[positions.long(), : rot // 2].unsqueeze(1)  # (T, 1, rot/2), promoted dtypes
        s = sin[positions.long(), : rot // 2].unsqueeze(1)

        def rotate(v):
            work = torch.promote_types(v.dtype, cos.dtype)
            r = v[..., :rot].to(work)
            if rotate_style == 0:  # NEOX
                a, b = r[..., : rot // 2], r[..., rot // 2 :]
                out = torch.cat((a * c - b * s, b * c + a * s), -1)
            else:  # GPT-J: pairs (2i, 2i+1) with cos[i]
                a, b = r[..., 0::2], r[..., 1::2]
                out = torch.stack((a * c - b * s, b * c + a * s), -1).flatten(-2)
            return torch.cat((out.to(x.dtype), v[..., rot:].to(x.dtype)), -1)

        rec.record(
            "rope_cached_thd_positions_2c_fwd",
            (x, y, cos, sin, positions, rotate_style, reuse_freqs_front_part, nope_first),
            {},
        )
        out_x = torch.empty(*x.shape, dtype=x.dtype)
        out_y = torch.empty(*y.shape, dtype=x.dtype)  # y's output in x's dtype, as AITER does
        out_x.copy_(rotate(x))
        out_y.copy_(rotate(y))
        return out_x, out_y

    rec.rope_module = SimpleNamespace(
        rope_cached_thd_positions_2c_fwd=rope_cached_thd_positions_2c_fwd
    )
