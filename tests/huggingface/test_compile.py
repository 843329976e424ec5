"""Patched HF models under ``torch.compile``: every fusion site fused, every IR node lowered, and
logits no further from an fp64 run than the stock model compiled the same way.

Sites per model, from the architecture (``L`` decoder layers, pre-norm residual stream):

- ``fused_add_rms_norm``: every norm that reads a residual sum: in Llama, Qwen3 and DeepSeek-V3
  each layer's post-attention norm, each layer's input norm but the first (which reads the
  embeddings) and the final norm: ``2 L``. Gemma3's sandwich: each layer's pre-feedforward norm,
  every input norm but the first and the final norm: ``2 L`` too (its post-attention and
  post-feedforward norms read a block's output, not a sum).
- ``dual_rms_norm``: DeepSeek-V3's q and kv latent norms and Qwen3's per-head q/k norms: ``L``.
  Gemma3's q/k norms compute ``1 + weight``, which ``dual_rms_norm`` has no parameter for (the
  pass's docstring says why): 0. Llama has no independent pair: 0.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import KINDS, LAYERS, build, input_ids, logits
from torch import nn

import ir_core
from ir_core.integrations.transformers import patch

SITES = {
    "llama": {"fused_add_rms_norm": 2 * LAYERS, "dual_rms_norm": 0},
    "qwen3": {"fused_add_rms_norm": 2 * LAYERS, "dual_rms_norm": LAYERS},
    "gemma3": {"fused_add_rms_norm": 2 * LAYERS, "dual_rms_norm": 0},
    "deepseek_v3": {"fused_add_rms_norm": 2 * LAYERS, "dual_rms_norm": LAYERS},
}

_references: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _mean_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return (out.double() - reference).abs().mean().item()


def _references_of(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp64 logits, stock bf16 model's compiled logits), computed once per kind."""
    if kind not in _references:
        ids = input_ids()
        exact = logits(build(kind, torch.float64), ids)
        torch._dynamo.reset()
        stock = logits(torch.compile(build(kind), fullgraph=True), ids)
        _references[kind] = (exact, stock)
    return _references[kind]


def _compile_patched(
    model: nn.Module, backend: str
) -> tuple[torch.Tensor, ir_core.compile.CompileReport]:
    torch._dynamo.reset()
    out = logits(torch.compile(model, backend=backend, fullgraph=True), input_ids())
    report = ir_core.compile_report()
    assert report is not None, "the patched model's IR nodes reached ir_core's passes"
    return out, report


@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_site_is_fused_and_the_logits_are_no_further_from_fp64(fresh_compiles, kind, backend):
    exact, stock = _references_of(kind)
    model = build(kind)
    patch(model)
    out, report = _compile_patched(model, backend)
    assert report.unlowered == []
    for name, count in SITES[kind].items():
        assert report.fusions[name] == count, report
    assert _mean_error(out, exact) <= _mean_error(stock, exact)


class _MergedLatents(nn.Module):
    """vLLM's ``fused_qkv_a_proj``: ``q_a_proj`` and ``kv_a_proj_with_mqa`` as one Linear + split.

    Installed as the attention's ``q_a_proj``: runs the merged Linear, returns q's piece and
    leaves kv's for :class:`_KvPiece`, installed as ``kv_a_proj_with_mqa``, which HF's forward
    calls after ``q_b_proj``. So the graph has vLLM's layout in HF's statement order: the kv
    latent is split off after the q norm's first user.
    """

    def __init__(self, q_a: nn.Linear, kv_a: nn.Linear) -> None:
        super().__init__()
        self.proj = nn.Linear(q_a.in_features, 1, bias=False)
        self.proj.weight = nn.Parameter(torch.cat([q_a.weight, kv_a.weight]).detach())
        self.widths = [q_a.out_features, kv_a.out_features]
        self.pending: list[torch.Tensor] = []

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        q, kv = self.proj(hidden_states).split(self.widths, dim=-1)
        self.pending.append(kv)
        return q


class _KvPiece(nn.Module):
    def __init__(self, merged: _MergedLatents) -> None:
        super().__init__()
        self.__dict__["merged"] = merged  # not a submodule: its weight is the merged module's

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.merged.pending.pop()


def _merge_latent_projections(model: nn.Module) -> int:
    merged = 0
    for module in model.modules():
        if hasattr(module, "q_a_proj") and hasattr(module, "kv_a_proj_with_mqa"):
            module.q_a_proj = _MergedLatents(module.q_a_proj, module.kv_a_proj_with_mqa)
            module.kv_a_proj_with_mqa = _KvPiece(module.q_a_proj)
            merged += 1
    return merged


def test_merged_latent_projection_in_hf_statement_order_is_fused(fresh_compiles):
    exact, _ = _references_of("deepseek_v3")
    model = build("deepseek_v3")
    stock_layout = logits(model, input_ids())
    assert _merge_latent_projections(model) == LAYERS
    torch.testing.assert_close(logits(model, input_ids()), stock_layout, atol=0, rtol=0)
    patch(model)
    out, report = _compile_patched(model, "inductor")
    assert report.unlowered == []
    assert report.fusions["dual_rms_norm"] == LAYERS, report
    assert report.fusions["fused_add_rms_norm"] == 2 * LAYERS, report
    assert _mean_error(out, exact) <= _mean_error(stock_layout, exact)
