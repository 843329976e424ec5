"""``split -> two rms_norm  =>  dual_rms_norm`` on MLA-like graphs of several sizes."""

from __future__ import annotations

import pytest
import torch

from ir_fusions import dual_rms_norm_pass
from ir_fusions.passes.dual_rms_norm import piece_of

ir = torch.ops.ir_core
BF16 = torch.bfloat16


def mla_nested(x, proj, q_w, kv_w, q_dim, kv_c_dim, k_pe_dim):
    """DeepSeek's MLA: split into q and kv latents, then kv into kv_c and k_pe."""
    p = torch.relu(x) @ proj.t()
    q_c, kv_lora = p.split([q_dim, kv_c_dim + k_pe_dim], dim=-1)
    kv_c, k_pe = kv_lora.split([kv_c_dim, k_pe_dim], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-5), k_pe


def mla_one_split(x, proj, q_w, kv_w, q_dim, kv_c_dim, k_pe_dim):
    p = x @ proj.t()
    q_c, kv_c, k_pe = p.split([q_dim, kv_c_dim, k_pe_dim], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6), k_pe


def mla_slices(x, proj, q_w, kv_w, q_dim, kv_c_dim, k_pe_dim):
    p = x @ proj.t()
    kv_c = p[:, q_dim : q_dim + kv_c_dim]
    return ir.rms_norm(p[..., :q_dim], q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6), p[:, -k_pe_dim:]


def _mla_inputs(dims, dtype=BF16, hidden=24, tokens=3):
    q_dim, kv_c_dim, k_pe_dim = dims
    g = torch.Generator().manual_seed(sum(dims))
    return (
        torch.randn(tokens, hidden, generator=g).to(dtype),
        (torch.randn(q_dim + kv_c_dim + k_pe_dim, hidden, generator=g) * hidden**-0.5).to(dtype),
        (torch.randn(q_dim, generator=g) * 0.2 + 1).to(dtype),
        (torch.randn(kv_c_dim, generator=g) * 0.2 + 1).to(dtype),
    )


# (q_dim, kv_c_dim, k_pe_dim): DeepSeek-V3's 1536/512/64 scaled down, and other shapes.
SIZES = [(48, 16, 2), (24, 32, 8), (16, 16, 16)]


@pytest.mark.parametrize("model", [mla_nested, mla_one_split, mla_slices])
@pytest.mark.parametrize("dims", SIZES)
def test_mla_latents_are_fused_exactly(trace, ops, model, dims):
    args = _mla_inputs(dims)

    def f(x, proj, q_w, kv_w):
        return model(x, proj, q_w, kv_w, *dims)

    gm = trace(f, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 1
    assert ops(gm).count("dual_rms_norm") == 1 and "rms_norm" not in ops(gm)
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)  # dual_rms_norm is the two norms, bitwise


def test_pieces_compose_through_nested_splits(trace):
    def f(p):
        q_c, kv = p.split([8, 6], dim=1)
        kv_c, k_pe = kv.split([4, 2], dim=-1)
        return q_c, kv_c, k_pe, p[:, 3:-2]

    gm = trace(f, torch.randn(2, 14), fake=True)
    root = next(iter(gm.graph.nodes))
    output = next(n for n in gm.graph.nodes if n.op == "output")
    pieces = [piece_of(n) for n in output.args[0]]
    assert [(p.root, p.start, p.stop) for p in pieces] == [
        (root, 0, 8),
        (root, 8, 12),
        (root, 12, 14),
        (root, 3, 12),
    ]


def test_two_mla_layers_give_two_pairs(trace):
    dims = (16, 8, 4)

    def two_layers(x, proj, q_w, kv_w):
        q1, kv1, _ = mla_nested(x, proj, q_w, kv_w, *dims)
        x2 = torch.cat([q1, kv1], -1)[:, :24]
        q2, kv2, pe2 = mla_nested(x2, proj, q_w, kv_w, *dims)
        return q2, kv2, pe2

    args = _mla_inputs(dims)
    gm = trace(two_layers, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 2
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


def _gemma_kv(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6, 1.0)


def _weight_too_narrow(x, proj, q_w, kv_w):
    """kv's weight has one element: it broadcasts, but does not fit the split width."""
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w[:1], 1e-6)


def _partial_variance(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6, 0.0, 32), ir.rms_norm(kv_c, kv_w, 1e-6)


def _different_tensors(x, proj, q_w, kv_w):
    p, p2 = x @ proj.t(), (x * 2) @ proj.t()
    return ir.rms_norm(p[:, :48], q_w, 1e-6), ir.rms_norm(p2[:, 48:64], kv_w, 1e-6)


def _split_along_tokens(x, proj, q_w, kv_w):
    p = (x @ proj.t())[:, :48]
    first, second = p.split([1, 2], dim=0)
    return ir.rms_norm(first, q_w, 1e-6), ir.rms_norm(second, q_w, 1e-6)


def _no_weight(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, None, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6)


def _one_norm(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), kv_c


@pytest.mark.parametrize(
    "model",
    [
        _gemma_kv,
        _weight_too_narrow,
        _partial_variance,
        _different_tensors,
        _split_along_tokens,
        _no_weight,
        _one_norm,
    ],
)
def test_variants_that_must_not_match(trace, model):
    gm = trace(model, *_mla_inputs((48, 16, 2)), fake=True)
    before = str(gm.graph)
    assert dual_rms_norm_pass(gm) == 0
    assert str(gm.graph) == before
