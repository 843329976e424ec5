"""Small decoder stacks written on IR ops, the way models are written.

Four families, each a stack of pre-norm decoder layers over one sequence of hidden states
``(tokens, hidden)`` at positions ``0..tokens-1``:

- ``llama``: RMSNorm -> RoPE (neox halves, on the (tokens, heads, head_dim) views of the qkv
  projection) -> attention -> ``h = residual + h`` -> RMSNorm -> SwiGLU MLP
  (``silu_and_mul``) -> add.
- ``gemma``: Gemma 2/3 style. Every norm is ``weight_bias=1.0`` with an fp32 weight (the
  checkpoint stores ``w`` and the model computes ``x * (1 + w)`` in fp32, whatever the
  activation dtype), four norms per layer (pre/post attention, pre/post MLP), per-head q/k
  norms on 3-D tensors then RoPE, a GeGLU MLP (``gelu_and_mul``, tanh approximation).
- ``deepseek_mla``: DeepSeek-V2/V3 multi-head latent attention. One projection yields the q
  latent, the kv latent and the shared rope key; the two latents are normalized separately
  (two ``rms_norm`` of pieces of one tensor); RoPE in GPT-J's interleaved layout on the rope
  channels only (a strided (tokens, heads, rope) view of q, and the one shared key head);
  a SwiGLU MLP.
- ``qwen3_next``: Qwen3-Next's linear-attention layers: zero-centered norms (``1 + w``), and
  the mixer's per-head output normalized and gated by ``z`` in one ``gated_rms_norm`` before
  the output projection; a SwiGLU MLP. The Gated DeltaNet recurrence itself is not an IR op
  and is replaced by causal attention over the same q, k, v.

Nothing is pre-fused: the residual add and the norm after it, and MLA's two latent norms, are
written separately, as in the reference models, so the fusion passes have something to find
(``fused_add_rms_norm``, ``dual_rms_norm``). KV caches and batching are left out: they are not
IR ops and would only make the graphs longer.

Use: ``make_block("gemma", layers=2, hidden=64)`` returns an ``nn.Module`` taking
``(tokens, hidden)`` hidden states; ``block.example_input(tokens)`` makes one. Shipped in the
wheel for ``ir-core doctor``; imported by the repository's tests, ``benchmarks/lowering.py`` and
the compile demo.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ir_core import ops

KINDS = ("llama", "gemma", "deepseek_mla", "qwen3_next")

#: Positions the rotary cache covers, and its base (Llama's rope_theta).
MAX_POSITIONS, ROPE_THETA = 4096, 10000.0


def _linear(fan_in: int, fan_out: int, g: torch.Generator) -> nn.Parameter:
    """A ``(fan_out, fan_in)`` weight with the usual 1/sqrt(fan_in) scale (stable activations
    through many layers)."""
    return nn.Parameter(
        torch.randn(fan_out, fan_in, generator=g) / math.sqrt(fan_in), requires_grad=False
    )


def _norm_weight(size: int, g: torch.Generator, *, gemma: bool = False) -> nn.Parameter:
    """A norm weight near 1: Gemma stores ``w`` with the scale ``1 + w``, so near 0."""
    w = torch.randn(size, generator=g) * 0.1
    return nn.Parameter(w if gemma else w + 1.0, requires_grad=False)


def _proj(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` in ``x``'s dtype (weights are kept in fp32)."""
    return F.linear(x, weight.to(x.dtype))


class Rope(nn.Module):
    """vLLM's rotary cache, ``(max_positions, rot_dim)`` = ``[cos | sin]`` in fp32 whatever
    the activation dtype (the op widens it), one per layer so a layer stands alone;
    ``forward`` rotates q and k at positions ``0..tokens-1``."""

    def __init__(self, rot_dim: int, is_neox: bool) -> None:
        super().__init__()
        self.is_neox = is_neox
        inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim)
        freqs = torch.arange(MAX_POSITIONS, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.register_buffer("cos_sin_cache", torch.cat((freqs.cos(), freqs.sin()), dim=-1))

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, head_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(q.shape[0], device=q.device)
        return ops.rotary_embedding(positions, q, k, head_size, self.cos_sin_cache, self.is_neox)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention of one sequence: ``(tokens, heads, d)`` in, ``(tokens, heads * dv)`` out."""
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=True
    )
    return out.transpose(0, 1).reshape(q.shape[0], -1)


class LlamaLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, g: torch.Generator, eps: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.eps = heads, hidden // heads, eps
        self.rope = Rope(self.head_dim, is_neox=True)
        self.input_norm = _norm_weight(hidden, g)
        self.qkv = _linear(hidden, 3 * hidden, g)
        self.o = _linear(hidden, hidden, g)
        self.post_attention_norm = _norm_weight(hidden, g)
        self.gate_up = _linear(hidden, 4 * hidden, g)
        self.down = _linear(2 * hidden, hidden, g)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        residual = h
        h = ops.rms_norm(h, self.input_norm, self.eps)
        q, k, v = _proj(h, self.qkv).view(h.shape[0], 3, self.heads, self.head_dim).unbind(1)
        q, k = self.rope(q, k, self.head_dim)
        h = _proj(_attention(q, k, v), self.o)
        h = residual + h
        residual = h
        h = ops.rms_norm(h, self.post_attention_norm, self.eps)
        h = _proj(ops.silu_and_mul(_proj(h, self.gate_up)), self.down)
        return residual + h


class GemmaLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, g: torch.Generator, eps: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.eps = heads, hidden // heads, eps
        self.rope = Rope(self.head_dim, is_neox=True)
        self.input_norm = _norm_weight(hidden, g, gemma=True)
        self.qkv = _linear(hidden, 3 * hidden, g)
        self.q_norm = _norm_weight(self.head_dim, g, gemma=True)
        self.k_norm = _norm_weight(self.head_dim, g, gemma=True)
        self.o = _linear(hidden, hidden, g)
        self.post_attention_norm = _norm_weight(hidden, g, gemma=True)
        self.pre_feedforward_norm = _norm_weight(hidden, g, gemma=True)
        self.gate_up = _linear(hidden, 4 * hidden, g)
        self.down = _linear(2 * hidden, hidden, g)
        self.post_feedforward_norm = _norm_weight(hidden, g, gemma=True)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # weight stays fp32 whatever x is: (1 + w) is computed in fp32 by the op
        return ops.rms_norm(x, weight, self.eps, weight_bias=1.0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        residual = h
        h = self._norm(h, self.input_norm)
        qkv = _proj(h, self.qkv).view(h.shape[0], 3, self.heads, self.head_dim)
        q, k, v = qkv.unbind(1)
        q, k = self._norm(q, self.q_norm), self._norm(k, self.k_norm)  # per head, 3-D
        q, k = self.rope(q, k, self.head_dim)
        h = _proj(_attention(q, k, v), self.o)
        h = self._norm(h, self.post_attention_norm)
        h = residual + h
        residual = h
        h = self._norm(h, self.pre_feedforward_norm)
        h = _proj(ops.gelu_and_mul(_proj(h, self.gate_up), "tanh"), self.down)
        h = self._norm(h, self.post_feedforward_norm)
        return residual + h


class MlaLayer(nn.Module):
    """DeepSeek-style: latent q and kv, a shared rope key, then a SwiGLU MLP."""

    def __init__(self, hidden: int, heads: int, g: torch.Generator, eps: float) -> None:
        super().__init__()
        self.heads, self.eps = heads, eps
        self.q_lora, self.kv_lora = hidden // 2, hidden // 4
        self.nope, self.rope_dim, self.v_dim = 16, 8, 16
        self.rope = Rope(self.rope_dim, is_neox=False)  # DeepSeek: GPT-J's interleaved pairs
        self.input_norm = _norm_weight(hidden, g)
        # one fused projection: [q latent | kv latent | rope key], as vLLM loads it
        self.qkv_a = _linear(hidden, self.q_lora + self.kv_lora + self.rope_dim, g)
        self.q_a_norm = _norm_weight(self.q_lora, g)
        self.kv_a_norm = _norm_weight(self.kv_lora, g)
        self.q_b = _linear(self.q_lora, heads * (self.nope + self.rope_dim), g)
        self.kv_b = _linear(self.kv_lora, heads * (self.nope + self.v_dim), g)
        self.o = _linear(heads * self.v_dim, hidden, g)
        self.post_attention_norm = _norm_weight(hidden, g)
        self.gate_up = _linear(hidden, 4 * hidden, g)
        self.down = _linear(2 * hidden, hidden, g)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[0]
        residual = h
        h = ops.rms_norm(h, self.input_norm, self.eps)
        q_c, kv_lora = _proj(h, self.qkv_a).split(
            [self.q_lora, self.kv_lora + self.rope_dim], dim=-1
        )
        kv_c, k_pe = kv_lora.split([self.kv_lora, self.rope_dim], dim=-1)
        q_c = ops.rms_norm(q_c, self.q_a_norm, self.eps)
        kv_c = ops.rms_norm(kv_c, self.kv_a_norm, self.eps)
        q_nope, q_pe = (
            _proj(q_c, self.q_b)
            .view(t, self.heads, self.nope + self.rope_dim)
            .split([self.nope, self.rope_dim], dim=-1)
        )
        # the rope channels of every q head (a strided view) and the one shared key head
        q_pe, k_pe = self.rope(q_pe, k_pe, self.rope_dim)
        q = torch.cat([q_nope, q_pe], dim=-1)
        k_nope, v = (
            _proj(kv_c, self.kv_b).view(t, self.heads, -1).split([self.nope, self.v_dim], dim=-1)
        )
        k = torch.cat([k_nope, k_pe.unsqueeze(1).expand(t, self.heads, self.rope_dim)], dim=-1)
        h = _proj(_attention(q, k, v), self.o)
        h = residual + h
        residual = h
        h = ops.rms_norm(h, self.post_attention_norm, self.eps)
        h = _proj(ops.silu_and_mul(_proj(h, self.gate_up)), self.down)
        return residual + h


class Qwen3NextLayer(nn.Module):
    """Qwen3-Next's linear-attention layer, its IR ops as the model has them: zero-centered
    norms (``weight_bias=1.0``) and the mixer's output ``gated_rms_norm(o, w, z)`` per head
    (``norm_before_gate=True``: ``rms(o) * w * silu(z)``), then a SwiGLU MLP. The Gated
    DeltaNet recurrence is not an IR op; causal attention stands in for it."""

    def __init__(self, hidden: int, heads: int, g: torch.Generator, eps: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.eps = heads, hidden // heads, eps
        self.input_norm = _norm_weight(hidden, g, gemma=True)
        # one fused projection: [q | k | v | z], as Qwen3-Next's in_proj_qkvz
        self.qkvz = _linear(hidden, 4 * hidden, g)
        self.out_norm = _norm_weight(self.head_dim, g)  # the gated norm's weight: w, near 1
        self.o = _linear(hidden, hidden, g)
        self.post_attention_norm = _norm_weight(hidden, g, gemma=True)
        self.gate_up = _linear(hidden, 4 * hidden, g)
        self.down = _linear(2 * hidden, hidden, g)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[0]
        residual = h
        h = ops.rms_norm(h, self.input_norm, self.eps, weight_bias=1.0)
        q, k, v, z = _proj(h, self.qkvz).view(t, 4, self.heads, self.head_dim).unbind(1)
        o = _attention(q, k, v).view(t, self.heads, self.head_dim)
        o = ops.gated_rms_norm(o, self.out_norm, z, self.eps)  # per head, z strided
        h = _proj(o.reshape(t, -1), self.o)
        h = residual + h
        residual = h
        h = ops.rms_norm(h, self.post_attention_norm, self.eps, weight_bias=1.0)
        h = _proj(ops.silu_and_mul(_proj(h, self.gate_up)), self.down)
        return residual + h


_LAYERS = {
    "llama": LlamaLayer,
    "gemma": GemmaLayer,
    "deepseek_mla": MlaLayer,
    "qwen3_next": Qwen3NextLayer,
}
#: Kinds whose norms are zero-centered (``x * (1 + w)``), the final norm included.
_ZERO_CENTERED = ("gemma", "qwen3_next")


class DecoderStack(nn.Module):
    """``layers`` decoder layers of one family, then the final norm."""

    def __init__(
        self, kind: str, layers: int, hidden: int, heads: int, eps: float, seed: int
    ) -> None:
        super().__init__()
        if kind not in _LAYERS:
            raise ValueError(f"unknown block kind {kind!r}; known: {', '.join(KINDS)}")
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        g = torch.Generator().manual_seed(seed)
        self.kind, self.hidden, self.eps = kind, hidden, eps
        self.layers = nn.ModuleList(_LAYERS[kind](hidden, heads, g, eps) for _ in range(layers))
        self.final_norm = _norm_weight(hidden, g, gemma=kind in _ZERO_CENTERED)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        weight_bias = 1.0 if self.kind in _ZERO_CENTERED else 0.0
        return ops.rms_norm(h, self.final_norm, self.eps, weight_bias=weight_bias)

    def example_input(
        self, tokens: int, dtype: torch.dtype = torch.float32, seed: int = 1
    ) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(tokens, self.hidden, generator=g).to(dtype)


def make_block(
    kind: str,
    layers: int = 2,
    hidden: int = 64,
    *,
    heads: int = 4,
    eps: float = 1e-6,
    seed: int = 0,
) -> DecoderStack:
    """A stack of ``layers`` decoder layers of ``kind`` (one of :data:`KINDS`), in eval mode.

    Weights are fp32 and deterministic for a ``seed``; Gemma's norm weights stay fp32 for any
    activation dtype (run it on bf16 input to see an fp32 weight meet a bf16 activation).
    """
    return DecoderStack(kind, layers, hidden, heads, eps, seed).eval()
