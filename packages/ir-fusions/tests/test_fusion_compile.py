"""The passes inside ``torch.compile``: ir-core runs them post-grad and reports the rewrites."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core.catalogue.quant import SCALE_RTOL, dequantized_comparison
from ir_core.testing import judge

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


# -- fp8 blocks: every norm + quant and activation + quant site fused ----------------------------

#: Rewrites of either block: the add + norm once, then five quant sites.
FP8_FUSIONS = {
    "fused_add_rms_norm": 1,
    "fused_add_rms_norm_fp8_quant": 3,
    "rms_norm_fp8_quant": 1,
    "silu_and_mul_fp8_quant": 1,
}
FP8_FUSED_OPS = {
    "fused_add_rms_norm_fp8_quant_dynamic",
    "fused_add_rms_norm_fp8_quant_static",
    "rms_norm_fp8_quant_group",
    "silu_and_mul_fp8_quant_static",
}


def fp8_block(h, residual, n_attn, n_kv, n_mlp, n_final, w_qkv, w_o, w_gate_up, w_down, scales):
    """A decoder layer of an fp8 checkpoint, quantizing every linear layer's input (the fp8
    GEMMs written as dequantize-then-matmul): per-token dynamic for attention, 1x16 groups for a
    kv latent, static scales for the MLP, its activation and the final norm. Returns every
    site's codes and scales, and the residual stream."""
    s_mlp, s_down, s_final = scales[0:1], scales[1:2], scales[2:3]
    s = h + residual
    q, x_scale = ir_core.ops.fp8_quant_dynamic(ir_core.ops.rms_norm(s, n_attn, 1e-6), True)
    qkv = (q.float() * x_scale) @ w_qkv
    kv = ir_core.ops.rms_norm(qkv[:, :32], n_kv, 1e-5)
    q_kv, kv_scale = ir_core.ops.fp8_quant_group(kv, 16, True)
    attn = (q_kv.float() * kv_scale.repeat_interleave(16, dim=-1)) @ w_o
    m, residual_2 = ir_core.ops.fused_add_rms_norm(attn, s, n_mlp, 1e-6, weight_bias=1.0)
    q_m = ir_core.ops.fp8_quant_static(m, s_mlp)
    act = ir_core.ops.silu_and_mul((q_m.float() * s_mlp) @ w_gate_up)
    q_act = ir_core.ops.fp8_quant_static(act, s_down)
    out = (q_act.float() * s_down) @ w_down
    f, residual_3 = ir_core.ops.fused_add_rms_norm(out, residual_2, n_final, 1e-6)
    q_f = ir_core.ops.fp8_quant_static(f, s_final, torch.float8_e4m3fnuz)
    return q, x_scale, q_kv, kv_scale, q_m, q_act, q_f, residual_3


def fp8_sites(h, residual, n_attn, n_kv, n_mlp, n_final, latent, gate_up, scales):
    """The same five sites reading the block's inputs instead of each other's dequantized
    output: in 16-bit, each site then differs from eager by its own rounding only (in
    :func:`fp8_block` a code one step off upstream moves every value downstream)."""
    s_mlp, s_down, s_final = scales[0:1], scales[1:2], scales[2:3]
    q, x_scale = ir_core.ops.fp8_quant_dynamic(
        ir_core.ops.rms_norm(h + residual, n_attn, 1e-6), True
    )
    q_kv, kv_scale = ir_core.ops.fp8_quant_group(ir_core.ops.rms_norm(latent, n_kv, 1e-5), 16, True)
    m, residual_2 = ir_core.ops.fused_add_rms_norm(h, residual, n_mlp, 1e-6, weight_bias=1.0)
    q_m = ir_core.ops.fp8_quant_static(m, s_mlp)
    q_act = ir_core.ops.fp8_quant_static(ir_core.ops.silu_and_mul(gate_up), s_down)
    f, residual_3 = ir_core.ops.fused_add_rms_norm(h, residual_2, n_final, 1e-6)
    q_f = ir_core.ops.fp8_quant_static(f, s_final, torch.float8_e4m3fnuz)
    return q, x_scale, q_kv, kv_scale, q_m, q_act, q_f, residual_3


#: (output index of the codes, output index of their scales, or None: static ``scales[i]``).
_SITES = [(0, 1, None), (2, 3, None), (4, None, 0), (5, None, 1), (6, None, 2)]


def _rnd(g, *shape, scale=1.0, dtype=torch.float32):
    return (torch.randn(shape, generator=g) * scale).to(dtype)


def _norm_weights(g, dtype):
    return (
        _rnd(g, 32, scale=0.2, dtype=dtype) + 1,
        _rnd(g, 32, scale=0.2, dtype=dtype) + 1,
        _rnd(g, 32, scale=0.2),  # Gemma-style fp32 (1 + weight) with x's dtype
        _rnd(g, 32, scale=0.2, dtype=dtype) + 1,
    )


def _compile_fp8(fn, backend, args):
    torch._dynamo.reset()
    with inductor_config.patch(fx_graph_cache=False):
        out = torch.compile(fn, backend=backend, fullgraph=True)(*args)
    report = ir_core.compile_report()
    assert {k: v for k, v in report.fusions.items() if v} == FP8_FUSIONS
    assert set(report.providers()) == FP8_FUSED_OPS  # no unfused norm, activation or quant left
    return out


def _assert_sites_within_one_fp8_step(out, expected, scales, scale_rtol):
    for codes, scale, static in _SITES:
        assert out[codes].dtype == expected[codes].dtype
        got_scale = out[scale] if scale is not None else scales[static : static + 1]
        want_scale = expected[scale] if scale is not None else got_scale
        if scale is not None:
            assert got_scale.stride() == want_scale.stride()
            torch.testing.assert_close(got_scale, want_scale, rtol=scale_rtol, atol=0)
        problem = judge(
            dequantized_comparison(
                f"output {codes}", out[codes], expected[codes], got_scale, want_scale
            )
        )
        assert problem is None, problem


@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
def test_fp8_block_fuses_every_quant_site_and_matches_eager(monkeypatch, backend):
    """fp32: no rounding between a norm and its quant, so the fused graph reproduces eager's
    codes (the norms' reductions may run in another order: scales within fp32 rtol)."""
    monkeypatch.delenv("IR_CORE_FUSIONS", raising=False)
    g = torch.Generator().manual_seed(3)
    args = (
        _rnd(g, 5, 32),
        _rnd(g, 5, 32),
        *_norm_weights(g, torch.float32),
        _rnd(g, 32, 48, scale=32**-0.5),
        _rnd(g, 32, 32, scale=32**-0.5),
        _rnd(g, 32, 128, scale=32**-0.5),
        _rnd(g, 64, 32, scale=64**-0.5),
        torch.tensor([0.01, 0.004, 0.01]),
    )
    out = _compile_fp8(fp8_block, backend, args)
    expected = fp8_block(*args)
    _assert_sites_within_one_fp8_step(out, expected, args[-1], SCALE_RTOL)
    torch.testing.assert_close(out[-1], expected[-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
def test_bf16_fp8_sites_within_one_fp8_step_of_eager(monkeypatch, backend):
    """bf16: eager quantizes each norm rounded to bf16, the fused ops the fp32 norm: codes one
    fp8 step apart at most, scales half a bf16 ulp (2^-8) apart at most."""
    monkeypatch.delenv("IR_CORE_FUSIONS", raising=False)
    g = torch.Generator().manual_seed(4)
    bf16 = torch.bfloat16
    args = (
        _rnd(g, 5, 32, dtype=bf16),
        _rnd(g, 5, 32, dtype=bf16),
        *_norm_weights(g, bf16),
        _rnd(g, 5, 32, dtype=bf16),
        _rnd(g, 5, 128, scale=2, dtype=bf16),
        torch.tensor([0.01, 0.004, 0.01]),
    )
    out = _compile_fp8(fp8_sites, backend, args)
    expected = fp8_sites(*args)
    _assert_sites_within_one_fp8_step(out, expected, args[-1], torch.finfo(bf16).eps / 2)
    # the residual stream: Inductor may keep the inner sum in fp32 instead of rounding it to
    # bf16 between the two adds (its default precision handling), so within bf16's tolerance
    atol, rtol = ir_core.get_op("fused_add_rms_norm").tolerance(bf16)
    torch.testing.assert_close(out[-1], expected[-1], atol=atol, rtol=rtol)
    differing = sum(
        int((out[i].view(torch.uint8) != expected[i].view(torch.uint8)).sum()) for i, *_ in _SITES
    )
    assert differing, "the sample shows no fused-vs-unfused rounding difference"


def test_fp8_passes_are_enabled_by_name(monkeypatch):
    monkeypatch.setenv("IR_CORE_FUSIONS", "-fused_add_rms_norm_fp8_quant,-rms_norm_fp8_quant")
    g = torch.Generator().manual_seed(5)
    args = (
        _rnd(g, 3, 32),
        _rnd(g, 3, 32),
        *_norm_weights(g, torch.float32),
        _rnd(g, 3, 32),
        _rnd(g, 3, 64),
        torch.tensor([0.01, 0.004, 0.01]),
    )
    torch._dynamo.reset()
    with inductor_config.patch(fx_graph_cache=False):
        out = torch.compile(fp8_sites, fullgraph=True)(*args)
    report = ir_core.compile_report()
    assert "rms_norm_fp8_quant" not in report.fusions
    assert "fused_add_rms_norm_fp8_quant" not in report.fusions
    assert report.fusions["silu_and_mul_fp8_quant"] == 1
    assert {"fp8_quant_static", "fp8_quant_dynamic", "fp8_quant_group"} <= set(report.providers())
    _assert_sites_within_one_fp8_step(out, fp8_sites(*args), args[-1], SCALE_RTOL)
