"""Tiny Hugging Face models built from configs (no hub access), for ir_core.integrations.transformers.

Two decoder layers and small widths keep each compile to seconds. The norm weights are drawn at
random (HF initializes them to ones, or zeros for Gemma's ``1 + w``, where the rounding forms
cannot be told apart). DeepSeek-V3's layers are all dense (``first_k_dense_replace=2``): MLA is
what is tested, and HF's MoE experts run ``grouped_mm``, which has no fp64 kernel for the
reference run.
"""

from __future__ import annotations

import torch
import transformers
from torch import nn

from ir_core.integrations.transformers import is_rms_norm

KINDS = ("llama", "qwen3", "gemma3", "deepseek_v3")
LAYERS = 2
VOCAB = 128

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def tiny_config(kind: str) -> transformers.PretrainedConfig:
    if kind == "llama":
        return transformers.LlamaConfig(**_COMMON)
    if kind == "qwen3":
        return transformers.Qwen3Config(**_COMMON, head_dim=16)
    if kind == "gemma3":
        return transformers.Gemma3TextConfig(**_COMMON, head_dim=16, sliding_window=8)
    if kind == "deepseek_v3":
        return transformers.DeepseekV3Config(
            **{**_COMMON, "num_key_value_heads": 4},  # MLA: one kv head per query head
            q_lora_rank=32,
            kv_lora_rank=16,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=8,
            first_k_dense_replace=LAYERS,
        )
    raise ValueError(kind)


def build(kind: str, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """A tiny random model of ``kind`` in eval mode, the same weights for the same ``kind``."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(tiny_config(kind)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None) if is_rms_norm(module) else None
            if weight is not None:  # ones (zeros for Gemma) would hide the rounding
                weight.copy_(torch.randn(weight.shape, generator=g) * 0.3 + weight)
    return model.to(dtype)


def input_ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))


def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, use_cache=False).logits
