"""CPU implementations of the compiled kernel entry points of the real vendor packages.

``nox -s vendors`` installs the real flashinfer-python (0.6.12 and 0.7.4), quack-kernels and
liger-kernel. Their Python layers run on CPU tensors here: argument checks, dtype and scale
normalization, the choice between code paths, the all-reduce planning, the views. Only what
would run on the GPU is replaced, by the functions below, each of which

- checks what the compiled kernel (or its generated TVM-FFI entry) checks or silently assumes,
  as read in the released sources: dtypes, strides, and start alignment (a violation raises
  here, where the GPU would raise, fault, or compute garbage), and
- computes what the kernel computes, in fp32 as the kernel does, into the vendor's outputs.

Every replacement is installed with ``monkeypatch`` into the vendor's module at the name its
Python looks up at call time; nothing else of the vendor is touched.
"""

from __future__ import annotations

import ctypes
import glob
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F

VECTOR_BYTES = 16


class KernelFault(RuntimeError):
    """What a GPU kernel would do with these arguments: fault or compute garbage."""


@dataclass
class Calls:
    """Every kernel entry point reached: ``(name, arguments)``, in order."""

    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The FlashInfer norm path installed ("cute" or "jit"), where one is.
    path: str = ""

    def record(self, name: str, **arguments: Any) -> None:
        self.log.append((name, arguments))

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def last(self, name: str) -> dict[str, Any]:
        found = [arguments for called, arguments in self.log if called == name]
        assert found, f"{name} was never called; calls: {self.names()}"
        return found[-1]


def require_alignment(what: str, t: torch.Tensor, align: int) -> None:
    """CuTe's TVM-FFI entry raises "Misaligned Tensor data" for a start off ``align`` bytes."""
    if t.data_ptr() % align:
        raise ValueError(
            f"Misaligned Tensor data on argument {what}, expected data alignment={align} bytes "
            f"(start {t.data_ptr() % 128} bytes past a 128-byte boundary)"
        )


def _vector_fault(what: str, t: torch.Tensor, vector_bytes: int, row_stride: int) -> None:
    """A CUDA kernel loading ``vector_bytes`` at ``ptr + row * row_stride`` faults when either
    is not a multiple of the vector (CUDA 'misaligned address')."""
    if t.data_ptr() % vector_bytes or (row_stride * t.element_size()) % vector_bytes:
        raise KernelFault(f"misaligned address: {what} for {vector_bytes}-byte vector loads")


def _norm(x: torch.Tensor, w: torch.Tensor, eps: float, weight_bias: float) -> torch.Tensor:
    """RMSNorm of fp32 rows, times ``w + weight_bias`` in fp32 (FlashInfer, both paths)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (w.float() + weight_bias)


def _quantize(
    y: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, fmax: float | None = None
) -> torch.Tensor:
    """FlashInfer's quant: multiply by ``1 / scale`` (computed once), saturate at ``fmax``
    (the fp8 dtype's max unless given), round once."""
    fmax = torch.finfo(dtype).max if fmax is None else fmax
    return (y * (1.0 / scale.float().reshape(()))).clamp(-fmax, fmax).to(dtype)


# ---------------------------------------------------------------------------------------------
# FlashInfer norms: the CuTe-DSL path
# ---------------------------------------------------------------------------------------------

_CUTE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
_CUTE_DTYPES["float8_e4m3fn"] = torch.float8_e4m3fn


class CuteNorm:
    """``_get_compiled_*_kernel`` of ``flashinfer.norm.kernels.rmsnorm`` /
    ``.fused_add_rmsnorm`` (0.6.12 and 0.7.4): each returns a "compiled kernel" checking what
    the TVM-FFI entry checks, from the fake tensors the getter compiles with: x/out compact
    ``(M, H)`` aligned to ``gcd(128, H * elem)`` (``contiguous=True``) or a row stride divisible
    by the vector and a 16-byte start (``contiguous=False``); weight compact ``(H,)`` 16-byte
    aligned; every tensor of the compiled dtype."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @staticmethod
    def _rows(what: str, t: torch.Tensor, dtype: torch.dtype, hidden: int, contiguous: bool):
        if t.dtype != dtype:
            raise ValueError(f"Mismatched Tensor on argument {what}: dtype {t.dtype} != {dtype}")
        if t.dim() != 2 or t.shape[1] != hidden or t.stride(1) != 1:
            raise ValueError(f"Mismatched Tensor on argument {what}: {t.shape} {t.stride()}")
        if contiguous:
            if t.shape[0] > 1 and t.stride(0) != hidden:
                raise ValueError(f"Mismatched Tensor on argument {what}: not compact")
            require_alignment(what, t, math.gcd(128, hidden * t.element_size()))
        else:
            vector = math.gcd(VECTOR_BYTES // t.element_size(), hidden)  # vec_size, cluster 1
            if t.stride(0) % vector:
                raise ValueError(f"Mismatched Tensor on argument {what}: row stride divisibility")
            require_alignment(what, t, VECTOR_BYTES)

    @staticmethod
    def _weight(weight: torch.Tensor, dtype: torch.dtype, hidden: int) -> None:
        if weight.dtype != dtype or tuple(weight.shape) != (hidden,) or weight.stride(0) != 1:
            raise ValueError(f"Mismatched Tensor on argument weight: {weight.dtype} {weight.shape}")
        require_alignment("weight", weight, VECTOR_BYTES)

    def rmsnorm(self, dtype_str, H, weight_bias, enable_pdl, sm_version, contiguous=True):
        dtype = _CUTE_DTYPES[dtype_str]

        def kernel(x, weight, out, M, eps):
            self._rows("input", x, dtype, H, contiguous)
            self._rows("out", out, dtype, H, contiguous)
            self._weight(weight, dtype, H)
            self.calls.record("cute.rmsnorm", x=x, weight=weight, out=out, contiguous=contiguous)
            out.copy_(_norm(x.float(), weight, eps, weight_bias).to(dtype))

        return kernel

    def fused_add_rmsnorm(self, dtype_str, H, weight_bias, enable_pdl, sm_version, contiguous=True):
        dtype = _CUTE_DTYPES[dtype_str]

        def kernel(x, residual, weight, M, eps):
            self._rows("input", x, dtype, H, contiguous)
            self._rows("residual", residual, dtype, H, contiguous)
            self._weight(weight, dtype, H)
            self.calls.record("cute.fused_add_rmsnorm", x=x, residual=residual, weight=weight)
            h = x.float() + residual.float()  # the norm of the fp32 sum, the sum stored rounded
            residual.copy_(h.to(dtype))
            x.copy_(_norm(h, weight, eps, weight_bias).to(dtype))

        return kernel

    def rmsnorm_quant(
        self, dtype_str, out_dtype_str, H, weight_bias, enable_pdl, use_hw_fp8=True,
        sm_version=80, contiguous=True,
    ):  # fmt: skip
        dtype, out_dtype = _CUTE_DTYPES[dtype_str], _CUTE_DTYPES[out_dtype_str]

        def kernel(x, weight, out, M, scale, eps):
            self._rows("input", x, dtype, H, contiguous)
            self._rows("out", out, out_dtype, H, contiguous)
            self._weight(weight, dtype, H)
            self.calls.record("cute.rmsnorm_quant", x=x, weight=weight, out=out, scale=scale)
            out.copy_(_quantize(_norm(x.float(), weight, eps, weight_bias), scale, out_dtype))

        return kernel

    def fused_add_rmsnorm_quant(
        self, dtype_str, out_dtype_str, H, weight_bias, enable_pdl, use_hw_fp8=True,
        sm_version=80, contiguous=True,
    ):  # fmt: skip
        dtype, out_dtype = _CUTE_DTYPES[dtype_str], _CUTE_DTYPES[out_dtype_str]

        def kernel(out, x, residual, weight, M, scale, eps):
            self._rows("input", x, dtype, H, contiguous)
            self._rows("residual", residual, dtype, H, contiguous)
            self._rows("out", out, out_dtype, H, contiguous)
            self._weight(weight, dtype, H)
            self.calls.record("cute.fused_add_rmsnorm_quant", x=x, residual=residual, out=out)
            h = x.float() + residual.float()
            residual.copy_(h.to(dtype))
            out.copy_(_quantize(_norm(h, weight, eps, weight_bias), scale, out_dtype))

        return kernel


# ---------------------------------------------------------------------------------------------
# FlashInfer norms: the CUDA-JIT path
# ---------------------------------------------------------------------------------------------


class JitNorm:
    """The module ``flashinfer.norm.get_norm_module()`` returns (``data/csrc/norm.cu``,
    ``include/flashinfer/norm.cuh``, 0.6.12 and 0.7.4): ``CHECK_LAST_DIM_CONTIGUOUS_INPUT`` on
    every tensor, fp16/bf16 input only (``DISPATCH_DLPACK_DTYPE_TO_CTYPE_FP16``), vectors of
    ``gcd(16 / elem, H)`` elements at ``ptr + row * stride`` with no alignment check (a fault),
    and the weight NOT checked: its bytes are read as the input's dtype."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @staticmethod
    def _check(x: torch.Tensor, *others: tuple[str, torch.Tensor]) -> int:
        if x.dtype not in (torch.float16, torch.bfloat16):
            raise RuntimeError(f"FlashInfer norm.cu: unsupported input dtype {x.dtype}")
        hidden = x.shape[-1]
        vector_bytes = math.gcd(VECTOR_BYTES // x.element_size(), hidden) * x.element_size()
        for what, t in (("input", x), *others):
            if t.stride(-1) != 1:
                raise RuntimeError(f"FlashInfer norm.cu: {what} must be last-dim contiguous")
            _vector_fault(what, t, vector_bytes, t.stride(0) if t.dim() == 2 else 0)
        return hidden

    @staticmethod
    def _weight_as_read(weight: torch.Tensor, dtype: torch.dtype, hidden: int) -> torch.Tensor:
        """The weight as the kernel reads it: its first ``hidden * elem`` bytes as ``dtype``."""
        return weight.view(torch.uint8)[: hidden * torch.finfo(dtype).bits // 8].view(dtype)

    def _plain(self, name: str, weight_bias: float) -> Callable[..., None]:
        def kernel(out, x, weight, eps, enable_pdl):
            hidden = self._check(x, ("out", out), ("weight", weight))
            self.calls.record(f"jit.{name}", x=x, weight=weight, out=out)
            w = self._weight_as_read(weight, x.dtype, hidden)
            out.copy_(_norm(x.float(), w, eps, weight_bias).to(x.dtype))

        return kernel

    def _fused(self, name: str, weight_bias: float) -> Callable[..., None]:
        def kernel(x, residual, weight, eps, enable_pdl):
            hidden = self._check(x, ("residual", residual), ("weight", weight))
            self.calls.record(f"jit.{name}", x=x, residual=residual, weight=weight)
            h = x.float() + residual.float()
            residual.copy_(h.to(x.dtype))
            w = self._weight_as_read(weight, x.dtype, hidden)
            x.copy_(_norm(h, w, eps, weight_bias).to(x.dtype))

        return kernel

    def module(self) -> Any:
        def rmsnorm_quant(out, x, weight, scale, eps, enable_pdl):
            hidden = self._check(x, ("weight", weight))
            self.calls.record("jit.rmsnorm_quant", x=x, weight=weight, out=out, scale=scale)
            y = _norm(x.float(), self._weight_as_read(weight, x.dtype, hidden), eps, 0.0)
            out.copy_(_quantize(y, scale, out.dtype, fmax=448.0))  # +-448 for e4m3 and e5m2

        def fused_add_rmsnorm_quant(out, x, residual, weight, scale, eps, enable_pdl):
            hidden = self._check(x, ("residual", residual), ("weight", weight))
            self.calls.record("jit.fused_add_rmsnorm_quant", x=x, residual=residual, out=out)
            h = x.float() + residual.float()
            residual.copy_(h.to(x.dtype))
            y = _norm(h, self._weight_as_read(weight, x.dtype, hidden), eps, 0.0)
            out.copy_(_quantize(y, scale, out.dtype, fmax=448.0))

        names = {
            "rmsnorm": self._plain("rmsnorm", 0.0),
            "gemma_rmsnorm": self._plain("gemma_rmsnorm", 1.0),
            "fused_add_rmsnorm": self._fused("fused_add_rmsnorm", 0.0),
            "gemma_fused_add_rmsnorm": self._fused("gemma_fused_add_rmsnorm", 1.0),
            "rmsnorm_quant": rmsnorm_quant,
            "fused_add_rmsnorm_quant": fused_add_rmsnorm_quant,
        }
        return type("CpuNormModule", (), {k: staticmethod(v) for k, v in names.items()})()


NORM_PATHS = ("cute", "jit")


def install_flashinfer_norm(monkeypatch: pytest.MonkeyPatch, path: str, calls: Calls) -> None:
    """Route the real ``flashinfer.norm`` to one of its two paths, with CPU kernels under it."""
    import flashinfer.norm as norm

    jit = JitNorm(calls).module()
    monkeypatch.setattr(norm, "get_norm_module", lambda: jit)
    if hasattr(norm, "_use_cuda_norm"):  # 0.7.x: decided per device (reads its capability)
        monkeypatch.setattr(norm, "_use_cuda_norm", lambda device: path == "jit")
    else:  # 0.6.12: one module-wide flag
        monkeypatch.setattr(norm, "_USE_CUDA_NORM", path == "jit")
    if path == "cute":
        rms = sys.modules["flashinfer.norm.kernels.rmsnorm"]
        fused = sys.modules["flashinfer.norm.kernels.fused_add_rmsnorm"]
        cute = CuteNorm(calls)
        monkeypatch.setattr(rms, "_get_compiled_rmsnorm_kernel", cute.rmsnorm)
        monkeypatch.setattr(rms, "_get_compiled_rmsnorm_quant_kernel", cute.rmsnorm_quant)
        monkeypatch.setattr(fused, "_get_compiled_fused_add_rmsnorm_kernel", cute.fused_add_rmsnorm)
        monkeypatch.setattr(
            fused, "_get_compiled_fused_add_rmsnorm_quant_kernel", cute.fused_add_rmsnorm_quant
        )
        for module in (rms, fused):  # a device query (sm_89+ has fp8 conversion instructions)
            monkeypatch.setattr(module, "has_hw_fp8_cvt", lambda device=None: True)


# ---------------------------------------------------------------------------------------------
# FlashInfer gated activations
# ---------------------------------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": lambda g: F.gelu(g, approximate="none"),
    "gelu_tanh": lambda g: F.gelu(g, approximate="tanh"),
}


def activation_vector(d: int, element_size: int, relaxed: bool) -> int:
    """Elements per vector of FlashInfer's act_and_mul kernel: 16 bytes before 0.7.1, from 0.7.1
    the widest of (16 bytes, 4, 2, 1) that divides ``d`` (``activation.cuh``)."""
    full = VECTOR_BYTES // element_size
    if not relaxed:
        return full
    return next(v for v in (full, 4, 2, 1) if d % v == 0)


def install_flashinfer_activation(
    monkeypatch: pytest.MonkeyPatch, calls: Calls, relaxed: bool
) -> None:
    """``flashinfer.activation.get_act_and_mul_module(name)`` -> a module whose
    ``<name>_and_mul(out, input, enable_pdl)`` reads row ``t`` at ``t * 2d`` and writes it at
    ``t * d`` whatever the strides (the kernel ignores them), in fp32, rounded once."""
    import flashinfer.activation as activation

    def module(name: str) -> Any:
        def kernel(out, x, enable_pdl):
            if x.dtype not in (torch.float16, torch.bfloat16):
                raise RuntimeError(f"FlashInfer activation: unsupported dtype {x.dtype}")
            two_d = x.shape[-1]
            d, rows = two_d // 2, x.numel() // two_d
            if rows == 0:
                raise KernelFault("grid of 0 blocks: invalid configuration argument")
            vector = activation_vector(d, x.element_size(), relaxed)
            if d % vector:
                raise KernelFault(f"misaligned address: d={d} for {vector}-element vectors")
            for what, t in (("input", x), ("out", out)):
                if t.data_ptr() % (vector * t.element_size()):
                    raise KernelFault(f"misaligned address: {what}")
            calls.record(f"{name}_and_mul", x=x, out=out, enable_pdl=enable_pdl)
            flat = torch.as_strided(x, (rows, two_d), (two_d, 1))  # strides ignored
            gate, up = flat.float()[:, :d], flat.float()[:, d:]
            result = (_ACTIVATIONS[name](gate) * up).to(x.dtype)
            torch.as_strided(out, (rows, d), (d, 1)).copy_(result)

        return type("CpuActModule", (), {f"{name}_and_mul": staticmethod(kernel)})()

    monkeypatch.setattr(activation, "get_act_and_mul_module", module)


# ---------------------------------------------------------------------------------------------
# FlashInfer RoPE
# ---------------------------------------------------------------------------------------------


def install_flashinfer_rope(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    """``flashinfer.rope.get_rope_module()`` -> a module whose
    ``apply_rope_pos_ids_cos_sin_cache(q, k, q_rope, k_rope, cos_sin_cache, pos_ids,
    interleave)`` checks what ``csrc/rope.cu`` checks and what the dedicated kernel of
    ``pos_enc.cuh`` assumes (head_dim 64/128/256/512, vectors of ``max(16 / elem, head_dim /
    32)`` that neither straddle the rotated half nor the rotated channels, 16-byte aligned
    starts and strides), then rotates in fp32 and copies the channels past rot_dim."""
    import flashinfer.rope as rope

    def kernel(q, k, q_rope, k_rope, cos_sin_cache, pos_ids, interleave):
        if not (cos_sin_cache.is_contiguous() and pos_ids.is_contiguous()):
            raise RuntimeError("rope.cu: cos_sin_cache and pos_ids must be contiguous")
        if cos_sin_cache.dtype != torch.float32 or pos_ids.dtype not in (torch.int32, torch.int64):
            raise RuntimeError("rope.cu: cos_sin_cache fp32, pos_ids int32/int64")
        if q.dtype not in (torch.float16, torch.bfloat16) or k.dtype != q.dtype:
            raise RuntimeError(f"rope.cu: q/k dtype {q.dtype}/{k.dtype}")
        nnz, _, head_dim = q.shape
        if k.shape[0] != nnz or k.shape[2] != head_dim or pos_ids.numel() != nnz:
            raise RuntimeError("rope.cu: q, k and pos_ids disagree on tokens or head_dim")
        rot = cos_sin_cache.shape[1]
        if head_dim not in (64, 128, 256, 512):
            raise KernelFault(f"head_dim {head_dim}: the RopeQuantize route is not modelled")
        vector = max(VECTOR_BYTES // q.element_size(), head_dim // 32)
        if (rot // 2 if not interleave else rot) % vector:
            raise KernelFault(f"rot_dim {rot}: {vector}-element vectors straddle the rotation")
        for what, t in (("q", q), ("k", k), ("q_rope", q_rope), ("k_rope", k_rope)):
            if t.stride(-1) != 1:
                raise RuntimeError(f"rope.cu: {what} must be last-dim contiguous")
            elems = VECTOR_BYTES // t.element_size()
            if t.data_ptr() % VECTOR_BYTES or t.stride(0) % elems or t.stride(1) % elems:
                raise KernelFault(f"misaligned address: {what}")
        require_alignment("cos_sin_cache", cos_sin_cache, VECTOR_BYTES)
        calls.record("apply_rope_pos_ids_cos_sin_cache", q=q, k=k, interleave=interleave)
        cos, sin = cos_sin_cache[pos_ids.long()].unsqueeze(1).chunk(2, dim=-1)
        for src, dst in ((q, q_rope), (k, k_rope)):
            x = src.float()
            r = x[..., :rot]
            x1, x2 = (r[..., 0::2], r[..., 1::2]) if interleave else r.chunk(2, dim=-1)
            o1, o2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
            rotated = (
                torch.stack((o1, o2), -1).flatten(-2) if interleave else torch.cat((o1, o2), -1)
            )
            dst.copy_(torch.cat((rotated, x[..., rot:]), -1).to(dst.dtype))

    module = type("CpuRopeModule", (), {"apply_rope_pos_ids_cos_sin_cache": staticmethod(kernel)})
    monkeypatch.setattr(rope, "get_rope_module", lambda: module())


# ---------------------------------------------------------------------------------------------
# FlashInfer all-reduce fusion
# ---------------------------------------------------------------------------------------------


def load_libcudart() -> None:
    """0.6.12's ``flashinfer.comm`` asserts at import that libcudart is loaded in the process
    (``comm/cuda_ipc.py`` builds its CUDA runtime wrapper at import, 0.7.x lazily); torch's CPU
    build loads none, so load the one the nvidia-cuda-runtime wheel ships."""
    for library in glob.glob(
        f"{sys.prefix}/lib/python3*/site-packages/nvidia/cu*/lib/libcudart.so*"
    ):
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
        return


@dataclass
class FakeGroup:
    """A process group as the wrapper and FlashInfer's workspace see it: a size and a rank
    (its collectives are never reached: the IPC allocation is replaced below)."""

    ranks: int
    this_rank: int = 0

    def size(self) -> int:
        return self.ranks

    def rank(self) -> int:
        return self.this_rank


def install_flashinfer_comm(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    """``trtllm_ar.get_trtllm_comm_module().trtllm_allreduce_fusion(**kw)`` (the TRT-LLM fusion
    kernel) and ``allreduce.trtllm_create_ipc_workspace_for_all_reduce_fusion`` (the collective
    IPC allocation) on CPU. The kernel treats every rank as holding this rank's input (the sum
    is ``world_size * input``), checks what ``trtllm_allreduce_fusion.cu``/``.cuh`` check
    (ranks 2/4/8/16, H a multiple of the vector, ``use_oneshot`` given) and what its 16-byte
    vector accesses assume (aligned starts)."""
    load_libcudart()
    import flashinfer.comm.allreduce as allreduce
    import flashinfer.comm.trtllm_ar as trtllm_ar

    def create_workspace(tp_rank, tp_size, max_token_num, hidden_dim, use_fp32_lamport=False,
                         group=None, create_metadata=False, comm_backend=None,
                         use_symm_dev_mem=False):  # fmt: skip
        metadata = {
            "tp_rank": tp_rank,
            "tp_size": tp_size,
            "max_token_num": max_token_num,
            "hidden_dim": hidden_dim,
            "use_fp32_lamport": use_fp32_lamport,
        }
        calls.record("create_ipc_workspace", group=group, **metadata)
        handles, pointers = [[0] * tp_size] * 3, torch.zeros(3 * tp_size + 1, dtype=torch.int64)
        return (
            (handles, pointers, [], metadata) if use_symm_dev_mem else (handles, pointers, metadata)
        )

    def fusion(**kw: Any) -> None:
        x, world, hidden = kw["allreduce_in"], kw["world_size"], kw["hidden_dim"]
        if world not in (2, 4, 8, 16):
            raise RuntimeError(f"trtllm_allreduce_fusion: unsupported ranks {world}")
        if not isinstance(kw["use_oneshot"], bool):
            raise RuntimeError("trtllm_allreduce_fusion: use_oneshot must be a bool here")
        if hidden % (VECTOR_BYTES // x.element_size()):
            raise RuntimeError("params.hidden_dim % VEC_SIZE != 0")
        tensors = ("allreduce_in", "allreduce_out", "residual_in", "residual_out", "norm_out")
        for what in (*tensors, "rms_gamma"):
            if kw[what] is not None and kw[what].data_ptr() % VECTOR_BYTES:
                raise KernelFault(f"misaligned address: {what}")
        calls.record("trtllm_allreduce_fusion", **kw)
        dtype = x.dtype
        reduced = (x.float() * world).to(dtype)  # fp32_acc: the ranks summed in fp32, rounded
        summed = (reduced.float() + kw["residual_in"].float()).to(dtype)
        kw["residual_out"].copy_(summed)
        rows = summed.float().view(-1, hidden)
        norm = _norm(rows, kw["rms_gamma"], kw["rms_eps"], kw["weight_bias"] or 0.0)
        kw["norm_out"].copy_(norm.to(dtype).view(-1))

    module = type("CpuCommModule", (), {"trtllm_allreduce_fusion": staticmethod(fusion)})
    monkeypatch.setattr(trtllm_ar, "get_trtllm_comm_module", lambda: module())
    monkeypatch.setattr(
        allreduce, "trtllm_create_ipc_workspace_for_all_reduce_fusion", create_workspace
    )
    if hasattr(allreduce, "is_confidential_compute"):  # 0.7.x: a device query
        monkeypatch.setattr(allreduce, "is_confidential_compute", lambda: False)


def import_vendor(module: str, package: str) -> Any:
    """``module`` of the real vendor ``package``, or skip saying how to get it; under
    ``IR_CUDA_REQUIRE_VENDORS=1`` (set by ``nox -s vendors``) a missing vendor fails instead."""
    import importlib
    import os

    try:
        if module.startswith("flashinfer.comm"):
            load_libcudart()
        return importlib.import_module(module)
    except Exception as exc:
        reason = (
            f"{package} not importable ({type(exc).__name__}: {exc}); nox -s vendors installs it"
        )
        if os.environ.get("IR_CUDA_REQUIRE_VENDORS") == "1":
            pytest.fail(reason)
        pytest.skip(reason, allow_module_level=True)


# ---------------------------------------------------------------------------------------------
# quack
# ---------------------------------------------------------------------------------------------


def install_quack(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    """``quack.rmsnorm._compile_rmsnorm_fwd``: the real compile runs (CuTe DSL compiles without
    a GPU, and rejects what quack cannot build, e.g. an odd H with 16-bit tensors), then the
    compiled function is replaced by one that checks what its TVM-FFI entry checks, from the
    fake tensors quack compiles with (``compile_utils.make_fake_tensor``): strides but the last
    divisible by ``div`` elements, starts aligned to ``div`` elements, and computes the kernel's
    arithmetic (quack's own ``rmsnorm_ref``, which its tests hold the kernel to)."""
    import importlib

    rmsnorm = importlib.import_module("quack.rmsnorm")
    real_compile = rmsnorm._compile_rmsnorm_fwd

    def compile_fwd(*args: Any, **kwargs: Any) -> Callable[..., None]:
        real_compile(*args, **kwargs)
        bound = inspect.signature(real_compile).bind(*args, **kwargs)
        bound.apply_defaults()
        spec = bound.arguments
        dtypes = ("dtype", "out_dtype", "res_dtype", "weight_dtype", "bias_dtype", "res_out_dtype")
        widths = [spec[d].width for d in dtypes if spec[d] is not None]
        div = math.gcd(spec["N"], *(128 // w for w in widths))
        weight_offset = spec.get("weight_offset", 0.0)

        def kernel(x, weight, bias, residual, out, residual_out, rstd, mean, eps):
            named = {"mX": x, "mW": weight, "mRes": residual, "mO": out, "mResO": residual_out}
            for what, t in named.items():
                if t is None:
                    continue
                if t.stride(-1) != 1 or any(s % div for s in t.stride()[:-1]):
                    raise ValueError(f"Mismatched Tensor on argument {what}: strides vs div={div}")
                require_alignment(what, t, div * t.element_size())
            calls.record("quack.rmsnorm_fwd", x=x, weight=weight, residual=residual, div=div)
            result = rmsnorm.rmsnorm_ref(x, weight, bias, residual, eps, weight_offset)
            if residual is None:
                out.copy_(result)
            else:
                out.copy_(result[0])
                residual_out.copy_(result[1])

        return kernel

    monkeypatch.setattr(rmsnorm, "_compile_rmsnorm_fwd", compile_fwd)


# ---------------------------------------------------------------------------------------------
# liger
# ---------------------------------------------------------------------------------------------

_LIGER_GEMMA = 1  # liger's _CASTING_MODE_GEMMA


class LigerLauncher:
    """A ``@triton.jit`` RMSNorm forward kernel of ``liger_kernel.ops.rms_norm`` as its launcher
    sees it (``kernel[grid](...)``), computing what the kernel computes in "gemma" mode
    (``_rms_norm_forward_kernel``, 0.6.5-0.8.5): x and w in fp32, ``x * rsqrt(mean(x^2) + eps)
    * (offset + w)``, one rounding at the store; rows read at ``X_row_stride``, W as a
    contiguous (H,) vector. Other casting modes raise: the wrapper must never ask for them."""

    def __init__(self, calls: Calls, name: str, block: bool) -> None:
        self.calls, self.name, self.block = calls, name, block

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        def launch(*args: Any, **kwargs: Any) -> None:
            y, y_stride, x, x_stride, w, _w_stride, rstd, _rstd_stride, *scalars = args
            n_cols, eps, offset, mode = scalars[1:] if self.block else scalars
            if mode != _LIGER_GEMMA:
                raise AssertionError(f"casting mode {mode}: only gemma is our semantics")
            affine = kwargs.get("elementwise_affine", w is not None)
            rows = rstd.shape[0]
            self.calls.record(self.name, x=x, w=w, offset=offset, eps=eps, grid=grid)
            xs = torch.as_strided(x, (rows, n_cols), (x_stride, 1)).float()
            r = torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + eps)
            out = xs * r
            if affine:
                out = out * (offset + torch.as_strided(w, (n_cols,), (1,)).float())
            torch.as_strided(y, (rows, n_cols), (y_stride, 1)).copy_(out.to(y.dtype))
            rstd.copy_(r.squeeze(-1))

        return launch


def install_liger(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    import importlib

    rms_norm = importlib.import_module("liger_kernel.ops.rms_norm")
    for name, block in (
        ("_rms_norm_forward_kernel", False),
        ("_block_rms_norm_forward_kernel", True),
    ):
        monkeypatch.setattr(rms_norm, name, LigerLauncher(calls, name, block))
