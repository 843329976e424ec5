"""The passes inside ``torch.compile``: ir-core runs them post-grad and reports the rewrites."""

from __future__ import annotations

import pytest
import torch

import ir_core

if not hasattr(ir_core, "compile_report"):
    pytest.skip(
        "ir-core's compile integration (ir_core.compile_report) is not in this ir-core",
        allow_module_level=True,
    )

from torch._inductor import config as inductor_config


def decoder(h, residual, n1, n2, w_attn):
    r1 = h + residual
    x1 = ir_core.ops.rms_norm(r1, n1, 1e-6)
    r2 = x1 @ w_attn + r1
    x2 = ir_core.ops.rms_norm(r2, n2, 1e-5, weight_bias=1.0)
    return x2, r2


def mla(x, proj, q_w, kv_w):
    q_c, kv_lora = (x @ proj.t()).split([16, 10], dim=-1)
    kv_c, k_pe = kv_lora.split([8, 2], dim=-1)
    return ir_core.ops.rms_norm(q_c, q_w, 1e-6), ir_core.ops.rms_norm(kv_c, kv_w, 1e-5), k_pe


def _compile(fn, *args, dynamic=None):
    torch._dynamo.reset()
    with inductor_config.patch(fx_graph_cache=False):  # a cached graph runs no pass
        out = torch.compile(fn, fullgraph=True, dynamic=dynamic)(*args)
    return out, ir_core.compile_report()


def _decoder_args():
    g = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(s, generator=g) * k
        for s, k in (((4, 16), 1), ((4, 16), 1), (16, 1), (16, 0.1), ((16, 16), 0.25))
    )


def test_compile_report_shows_the_rewrites(monkeypatch):
    monkeypatch.delenv("IR_CORE_FUSIONS", raising=False)
    args = _decoder_args()
    out, report = _compile(decoder, *args)
    assert report.fusions.get("fused_add_rms_norm") == 2
    assert report.providers().get("fused_add_rms_norm")
    assert "rms_norm" not in report.providers()
    for got, want in zip(out, decoder(*args)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dynamic_token_count_still_fuses(monkeypatch):
    """Shapes are compared without guards: a symbolic token count is the same on both addends."""
    monkeypatch.delenv("IR_CORE_FUSIONS", raising=False)
    args = _decoder_args()
    out, report = _compile(decoder, *args, dynamic=True)
    assert report.fusions.get("fused_add_rms_norm") == 2
    for got, want in zip(out, decoder(*args)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_pass_disabled_by_name_does_not_run(monkeypatch):
    monkeypatch.setenv("IR_CORE_FUSIONS", "-fused_add_rms_norm")
    args = _decoder_args()
    out, report = _compile(decoder, *args)
    assert "fused_add_rms_norm" not in report.fusions
    assert report.providers().get("rms_norm")
    for got, want in zip(out, decoder(*args)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_mla_dual_norm_through_compile(monkeypatch):
    monkeypatch.delenv("IR_CORE_FUSIONS", raising=False)
    g = torch.Generator().manual_seed(1)
    args = (
        torch.randn(3, 12, generator=g),
        torch.randn(26, 12, generator=g) * 0.3,
        torch.randn(16, generator=g),
        torch.randn(8, generator=g),
    )
    out, report = _compile(mla, *args)
    assert report.fusions.get("dual_rms_norm") == 1
    assert report.providers().get("dual_rms_norm")
    for got, want in zip(out, mla(*args)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
