"""A stand-in for ``torch.ops._C`` of vllm-xpu-kernels (checked against v0.1.13, commit
07d44bcb; the norm schemas as of v0.1.12), and one of IPEX's ``ipex.llm.functional``
(v2.8.0+cpu).

The kernels' ops are defined in a torch library of their own with vllm-xpu-kernels' schemas
(``csrc/torch_bindings.cpp``), so calls are bound, converted and checked as the real ones are
(argument count, ``Tensor?``, keywords); their CPU impls record the call and emulate the SYCL
kernels: the ``TORCH_CHECK``s that matter, the unchecked assumptions as assertions
(contiguous rows, 16-byte aligned vectors), and the arithmetic, including where it rounds to
the element type (``csrc/layernorm.cpp``, ``layernorm_quant.cpp``, ``activation.cpp``,
``pos_encoding_kernels.cpp``, ``quantization/fp8/``). ``legacy=True`` gives the v0.1.5 ..
v0.1.11.1 norm schemas (``Tensor weight``, not optional).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

SCHEMAS = {
    "rms_norm": "(Tensor! result, Tensor input, Tensor? weight, float epsilon) -> ()",
    "fused_add_rms_norm": "(Tensor! input, Tensor! residual, Tensor? weight, float epsilon) -> ()",
    "silu_and_mul": "(Tensor! result, Tensor input) -> ()",
    "gelu_and_mul": "(Tensor! out, Tensor input) -> ()",
    "gelu_tanh_and_mul": "(Tensor! out, Tensor input) -> ()",
    "rotary_embedding": "(Tensor positions, Tensor! query, Tensor!? key, int head_size, "
    "Tensor cos_sin_cache, bool is_neox) -> ()",
    "static_scaled_fp8_quant": "(Tensor! result, Tensor input, Tensor scale, "
    "(int, int)? group_shape=None) -> ()",
    "dynamic_per_token_scaled_fp8_quant": "(Tensor! result, Tensor input, Tensor! scale, "
    "Tensor? scale_ub) -> ()",
    "rms_norm_static_fp8_quant": "(Tensor! result, Tensor input, Tensor weight, Tensor scale, "
    "float epsilon) -> ()",
    "fused_add_rms_norm_static_fp8_quant": "(Tensor! result, Tensor input, Tensor! residual, "
    "Tensor weight, Tensor scale, float epsilon) -> ()",
    "rms_norm_dynamic_per_token_quant": "(Tensor! result, Tensor input, Tensor weight, "
    "Tensor! scale, float epsilon, Tensor? scale_ub, Tensor!? residual) -> ()",
    "silu_and_mul_quant": "(Tensor! result, Tensor input, Tensor scale) -> ()",
}
LEGACY_SCHEMAS = {
    "rms_norm": "(Tensor! result, Tensor input, Tensor weight, float epsilon) -> ()",
    "fused_add_rms_norm": "(Tensor! input, Tensor! residual, Tensor weight, float epsilon) -> ()",
}

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
MIN_SCALE = 1.0 / (FP8_MAX * 512)  # fp8::min_scaling_factor

_LIBRARIES: list[torch.library.Library] = []
_NAMESPACES = itertools.count()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)  # TORCH_CHECK


def _inv_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


def _norm_in_element_type(x, weight, eps):
    """``static_cast<scalar_t>(x * inv_rms) * weight`` in the element type (layernorm.cpp)."""
    y = (x.float() * _inv_rms(x, eps)).to(x.dtype)
    return y if weight is None else (y * weight).to(x.dtype)


def _quant(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 / scale)`` clamped to +-fp8_max, then the cast (ConvertWithScaleOp)."""
    return (v.float() * (1.0 / scale)).clamp(-FP8_MAX, FP8_MAX).to(FP8)


@dataclass
class RecordingXpuOps:
    """``torch.ops._C`` of vllm-xpu-kernels as far as this provider calls it: ``.ops`` is the
    namespace to hand the provider, ``.calls`` what its ops received."""

    legacy: bool = False
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lib = torch.library.Library(f"ir_test_xpu_{next(_NAMESPACES)}", "FRAGMENT")
        _LIBRARIES.append(self._lib)
        schemas = {**SCHEMAS, **(LEGACY_SCHEMAS if self.legacy else {})}
        for name, schema in schemas.items():
            self._lib.define(name + schema)
            self._lib.impl(name, self._recorded(name, getattr(self, f"_{name}")), "CPU")
        self.ops = getattr(torch.ops, self._lib.ns)

    def _recorded(self, name: str, kernel: Any) -> Any:
        def impl(*args: Any) -> None:
            self.calls.append((name, args))
            kernel(*args)

        return impl

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    # -- layernorm.cpp ---------------------------------------------------------------------

    def _rms_norm(self, result, input, weight, epsilon):
        _check(result.is_contiguous(), "result must be contiguous")
        _check(weight is None or weight.dtype == input.dtype, "weight dtype")
        result.copy_(_norm_in_element_type(input.contiguous(), weight, epsilon))

    def _fused_add_rms_norm(self, input, residual, weight, epsilon):
        _check(weight is None or weight.dtype == input.dtype, "weight dtype")
        residual.copy_((input.float() + residual.float()).to(residual.dtype))  # in scalar_t
        input.copy_(_norm_in_element_type(residual, weight, epsilon))

    # -- activation.cpp --------------------------------------------------------------------

    @staticmethod
    def _gated(out, input, act):
        assert input.is_contiguous() and out.is_contiguous(), "rows at token * 2d / token * d"
        assert input.data_ptr() % 16 == 0 and out.data_ptr() % 16 == 0, "aligned_vec cast"
        _check(out.dtype == input.dtype, "out.data_ptr<scalar_t>(): dtype mismatch")
        d = input.shape[-1] // 2
        a = act(input[..., :d].float()).to(input.dtype)  # ACT_FN returns T
        out.copy_(a * input[..., d:])  # the product in T

    def _silu_and_mul(self, result, input):
        self._gated(result, input, F.silu)

    def _gelu_and_mul(self, out, input):
        self._gated(out, input, F.gelu)

    def _gelu_tanh_and_mul(self, out, input):
        self._gated(out, input, lambda t: F.gelu(t, approximate="tanh"))

    # -- pos_encoding_kernels.cpp ------------------------------------------------------------

    def _rotary_embedding(self, positions, query, key, head_size, cos_sin_cache, is_neox):
        _check(positions.dtype == torch.int64, "positions.data_ptr<int64_t>()")
        _check(cos_sin_cache.dtype == query.dtype, "cos_sin_cache.data_ptr<scalar_t>()")
        assert cos_sin_cache.is_contiguous(), "cache row at pos * rot_dim"
        _check(positions.dim() in (1, 2), "positions must be [T] or [B, S]")
        _check(query.size(0) == positions.size(0), "query and positions tokens differ")
        _check(key is None or key.size(0) == positions.size(0), "key and positions tokens differ")
        assert query.stride(-1) == 1 and (key is None or key.stride(-1) == 1)
        rot = cos_sin_cache.size(1)
        heads = query.numel() // query.size(0) // head_size
        kv_heads = key.numel() // key.size(0) // head_size
        _check(heads % kv_heads == 0, "num_heads % num_kv_heads")
        cos, sin = cos_sin_cache[positions].chunk(2, dim=-1)  # (T, rot/2) in scalar_t
        for t in (query, key):
            v = t.view(t.size(0), -1, head_size)
            c, s = cos.unsqueeze(1), sin.unsqueeze(1)
            if is_neox:
                x1, x2 = v[..., : rot // 2].clone(), v[..., rot // 2 : rot].clone()
                v[..., : rot // 2] = x1 * c - x2 * s  # in scalar_t
                v[..., rot // 2 : rot] = x2 * c + x1 * s
            else:
                x1, x2 = v[..., 0:rot:2].clone(), v[..., 1:rot:2].clone()
                v[..., 0:rot:2] = x1 * c - x2 * s
                v[..., 1:rot:2] = x2 * c + x1 * s

    # -- quantization/fp8 and layernorm_quant.cpp ----------------------------------------------

    def _static_scaled_fp8_quant(self, result, input, scale, group_shape=None):
        _check(input.stride(-1) == 1 and result.stride(-1) == 1, "last dims contiguous")
        _check(result.dtype == FP8, "e4m3fn or e5m2 out")
        _check(scale.numel() == 1 and group_shape is None, "per-tensor scale")
        result.copy_(_quant(input, scale.reshape(())))

    @staticmethod
    def _token_scale(v, scale_ub):
        amax = v.float().abs().amax(-1, keepdim=True)
        if scale_ub is not None:
            amax = amax.clamp_max(scale_ub.reshape(()))
        return (amax / FP8_MAX).clamp_min(MIN_SCALE)

    def _dynamic_per_token_scaled_fp8_quant(self, result, input, scale, scale_ub):
        _check(input.is_contiguous() and result.is_contiguous(), "contiguous input and out")
        s = self._token_scale(input, scale_ub)
        scale.view(-1).copy_(s.reshape(-1))
        result.copy_(_quant(input, s))

    def _rms_norm_static_fp8_quant(self, result, input, weight, scale, epsilon):
        _check(result.is_contiguous(), "out contiguous")
        _check(weight.dtype == input.dtype, "weight dtype")
        result.copy_(_quant(_norm_in_element_type(input, weight, epsilon), scale.reshape(())))

    def _fused_add_rms_norm_static_fp8_quant(self, result, input, residual, weight, scale, eps):
        _check(result.is_contiguous() and residual.is_contiguous(), "out, residual contiguous")
        _check(weight.dtype == input.dtype and residual.dtype == input.dtype, "dtypes")
        residual.copy_((input.float() + residual.float()).to(residual.dtype))
        result.copy_(_quant(_norm_in_element_type(residual, weight, eps), scale.reshape(())))

    def _rms_norm_dynamic_per_token_quant(self, result, input, weight, scale, epsilon, ub, res):
        _check(input.is_contiguous() and result.is_contiguous(), "contiguous input and out")
        _check(weight.dtype == input.dtype and scale.dtype == torch.float32, "dtypes")
        x = input
        if res is not None:
            _check(res.dtype == input.dtype and res.is_contiguous(), "residual")
            res.copy_((input.float() + res.float()).to(res.dtype))  # rounded, read back
            x = res
        y = x.float() * _inv_rms(x, epsilon) * weight.float()  # the norm in fp32
        s = self._token_scale(y, ub)
        scale.view(-1).copy_(s.reshape(-1))
        result.copy_(_quant(y, s))

    def _silu_and_mul_quant(self, result, input, scale):
        _check(input.dtype in (torch.float16, torch.bfloat16), "fp16/bf16 input")
        _check(input.shape[-1] % 2 == 0, "last dim even")
        assert input.is_contiguous() and input.data_ptr() % 16 == 0
        d = input.shape[-1] // 2
        a = F.silu(input[..., :d].float()).to(input.dtype)
        result.copy_(_quant((a * input[..., d:]).to(input.dtype), scale.reshape(())))


@dataclass
class RecordingIpexFunctional:
    """Stands in for ``ipex.llm.functional`` (v2.8.0+cpu): records calls, computes with torch
    as its CPU paths do (fp32 norms; silu/gelu_mul as torch code; rotary in fp32 with fp32
    sin/cos, written back into query and key)."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def rms_norm(self, hidden_states, weight, eps):
        self.calls.append(("rms_norm", (hidden_states, weight, eps)))
        xf = hidden_states.float()
        return (xf * _inv_rms(xf, eps) * weight.float()).to(hidden_states.dtype)

    def add_rms_norm(self, residual, x, weight, bias, eps, add_back=False):
        self.calls.append(("add_rms_norm", (residual, x, weight, bias, eps, add_back)))
        assert bias is None
        s = x.float() + residual.float()
        if add_back:
            residual.copy_(s)
        return (s * _inv_rms(s, eps) * weight.float()).to(x.dtype)

    def silu_mul(self, x, y, out=None):
        self.calls.append(("silu_mul", (x, y, out)))
        return (F.silu(x.float()) * y.float()).to(x.dtype)

    def gelu_mul(self, x, y, out=None, approximate="none"):
        self.calls.append(("gelu_mul", (x, y, out, approximate)))
        return (F.gelu(x.float(), approximate=approximate) * y.float()).to(x.dtype)

    def rotary_embedding(self, query, key, sin, cos, rotary_dim, rotary_half, position_ids=None):
        self.calls.append(("rotary_embedding", (query, key, sin, cos, rotary_dim, rotary_half)))
        head_dim = query.size(-1)
        assert key.dim() == query.dim() and query.dim() in (3, 4)
        assert sin.size(-1) * 2 == head_dim or sin.size(-1) == head_dim
        assert query.is_contiguous() and key.is_contiguous(), "heads dense inside a token"
        half = head_dim // 2
        s, c = sin[..., :half].float().unsqueeze(-2), cos[..., :half].float().unsqueeze(-2)
        for t in (query, key):
            v = t.float()
            out = v.clone()
            if rotary_half:  # offset rotary_dim / 2
                r = rotary_dim // 2
                x1, x2 = v[..., :r], v[..., r:rotary_dim]
                out[..., :r] = x1 * c[..., :r] - x2 * s[..., :r]
                out[..., r:rotary_dim] = x2 * c[..., :r] + x1 * s[..., :r]
            else:  # RotateEveryTwo over every pair, then the tail copied from the input
                x1, x2 = v[..., 0::2], v[..., 1::2]
                out[..., 0::2] = x1 * c - x2 * s
                out[..., 1::2] = x2 * c + x1 * s
                out[..., rotary_dim:] = v[..., rotary_dim:]
            t.copy_(out)  # "keep the inplace context as used in TGI"
        return query, key
