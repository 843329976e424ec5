"""``two independent rms_norm  =>  dual_rms_norm``: MLA latents in every layout, per-head q/k
norms, what may be moved to make room, and the pairs the pass must leave alone."""

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


def _no_weight(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, None, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6)


def _one_norm(x, proj, q_w, kv_w):
    p = x @ proj.t()
    q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
    return ir.rms_norm(q_c, q_w, 1e-6), kv_c


def _dependent(x, proj, q_w, kv_w):
    """The second norm reads the first: sequential norms (Gemma's sandwich) are no pair."""
    p = x @ proj.t()
    q = ir.rms_norm(p[:, :48], q_w, 1e-6)
    return ir.rms_norm(q[:, :16] * 2, kv_w, 1e-6)


def _mutation_in_between(x, proj, q_w, kv_w):
    """HF's stock order, with an in-place op where the q norm's users would have to move."""
    q = ir.rms_norm(x @ proj[:48].t(), q_w, 1e-6)
    q_out = q @ proj[:48]
    x.mul_(1.0)
    kv = ir.rms_norm((x @ proj[48:64].t()), kv_w, 1e-6)
    return q_out, kv


def _random_in_between(x, proj, q_w, kv_w):
    """The same with a random draw in between: moving it would change the numbers drawn."""
    q = ir.rms_norm(x @ proj[:48].t(), q_w, 1e-6)
    q_out = q @ proj[:48] + torch.rand_like(x)
    kv = ir.rms_norm((x @ proj[48:64].t()), kv_w, 1e-6)
    return q_out, kv


@pytest.mark.parametrize(
    "model",
    [
        _gemma_kv,
        _weight_too_narrow,
        _partial_variance,
        _no_weight,
        _one_norm,
        _dependent,
        _mutation_in_between,
        _random_in_between,
    ],
)
def test_variants_that_must_not_match(trace, model):
    gm = trace(model, *_mla_inputs((48, 16, 2)), fake=True)
    before = str(gm.graph)
    assert dual_rms_norm_pass(gm) == 0
    assert str(gm.graph) == before


# -- pairs of norms of different tensors, and what the pass moves to make room -----------------


def _dims():
    return (48, 16, 2)


def mla_hf_stock(x, proj, q_w, kv_w):
    """HF DeepSeek-V3: two Linears; ``q_b_proj`` consumes the q norm before the kv Linear runs."""
    q_dim, kv_c_dim, k_pe_dim = _dims()
    q = ir.rms_norm(x @ proj[:q_dim].t(), q_w, 1e-6)
    q_states = (q @ proj[:q_dim]).view(3, 2, 12)  # q_b_proj, then the heads
    compressed = x @ proj[q_dim:].t()
    kv_c, k_pe = compressed.split([kv_c_dim, k_pe_dim], dim=-1)
    kv = ir.rms_norm(kv_c, kv_w, 1e-5)
    return q_states, kv, k_pe


def mla_merged_hf_order(x, proj, q_w, kv_w):
    """vLLM's merged q_a/kv_a Linear, in HF's statement order: the kv split after q_b_proj."""
    q_dim, kv_c_dim, k_pe_dim = _dims()
    p = x @ proj.t()
    q_c, kv_lora = p.split([q_dim, kv_c_dim + k_pe_dim], dim=-1)
    q_states = ir.rms_norm(q_c, q_w, 1e-6) @ proj[:q_dim]
    kv_c, k_pe = kv_lora.split([kv_c_dim, k_pe_dim], dim=-1)
    return q_states, ir.rms_norm(kv_c, kv_w, 1e-6), k_pe


def _matmuls(gm):
    return [n.name for n in gm.graph.nodes if n.target is torch.ops.aten.mm.default]


def _fused_args(gm):
    (node,) = [n for n in gm.graph.nodes if n.target is ir.dual_rms_norm.default]
    return node.args


@pytest.mark.parametrize("model", [mla_hf_stock, mla_merged_hf_order])
def test_hf_statement_order_is_fused_exactly(trace, ops, model):
    args = _mla_inputs(_dims())
    gm = trace(model, *args)
    expected = gm(*args)
    matmuls = _matmuls(gm)
    assert dual_rms_norm_pass(gm) == 1
    assert "rms_norm" not in ops(gm)
    gm.graph.lint()
    _, a_weight, _, b_weight, a_eps, b_eps = _fused_args(gm)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert (a_weight, b_weight, a_eps) == (placeholders[2], placeholders[3], 1e-6)
    assert b_eps == (1e-5 if model is mla_hf_stock else 1e-6)
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)
    if model is mla_merged_hf_order:
        # hoisted: only views moved, so the matmuls keep their order
        assert _matmuls(gm) == matmuls
    else:
        # sunk: q_b_proj now runs after the kv Linear, behind the fused norm
        assert _matmuls(gm) != matmuls and sorted(_matmuls(gm)) == sorted(matmuls)


def _qk_norm(x, proj, q_w, kv_w):
    """Qwen3/Gemma3 attention: per-head RMSNorm of q (4 heads) and k (2 heads), head_dim 16."""
    q = ir.rms_norm((x @ proj[:64].t()).view(3, 4, 16), q_w[:16], 1e-6)
    k = ir.rms_norm((x @ proj[:32].t()).view(3, 2, 16), kv_w, 1e-6)
    return (q.transpose(0, 1) @ k.transpose(0, 1).repeat(2, 1, 1).transpose(1, 2)).sum(0)


def test_per_head_q_k_norms_are_one_pair(trace, ops):
    args = _mla_inputs((48, 16, 2))
    gm = trace(_qk_norm, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 1
    assert ops(gm).count("dual_rms_norm") == 1 and "rms_norm" not in ops(gm)
    assert torch.equal(gm(*args), expected)


def test_pieces_along_tokens_and_of_two_tensors_pair_too(trace):
    """Nothing but independence is required: rows of one tensor, or two unrelated tensors."""

    def f(x, proj, q_w, kv_w):
        p = x @ proj[:48].t()
        first, second = p.split([1, 2], dim=0)
        other = (x * 2) @ proj[48:64].t()
        return ir.rms_norm(first, q_w, 1e-6), ir.rms_norm(second, q_w, 1e-6), other

    def g(x, proj, q_w, kv_w):
        p, p2 = x @ proj.t(), (x * 2) @ proj.t()
        return ir.rms_norm(p[:, :48], q_w, 1e-6), ir.rms_norm(p2[:, 48:64], kv_w, 1e-6)

    args = _mla_inputs((48, 16, 2))
    for model in (f, g):
        gm = trace(model, *args)
        expected = gm(*args)
        assert dual_rms_norm_pass(gm) == 1
        for got, want in zip(gm(*args), expected):
            assert torch.equal(got, want)


def test_a_norm_is_paired_once_and_mla_pieces_come_first(trace):
    """Three independent norms: one pair. The lone one is the norm that is no MLA piece, although
    it comes first in the graph (so graph order alone would have paired it)."""

    def f(x, proj, q_w, kv_w):
        lone = ir.rms_norm((x * 3) @ proj[:48].t(), q_w, 1e-6)
        p = x @ proj.t()
        q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
        return lone, ir.rms_norm(q_c, q_w, 1e-6), ir.rms_norm(kv_c, kv_w, 1e-6)

    args = _mla_inputs((48, 16, 2))
    gm = trace(f, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 1
    a, _, b, _, _, _ = _fused_args(gm)
    assert (piece_of(a).start, piece_of(b).start) == (0, 48)
    remaining = [n for n in gm.graph.nodes if n.target is ir.rms_norm.default]
    assert len(remaining) == 1 and piece_of(remaining[0].args[0]) is None
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


def test_four_independent_norms_give_two_pairs(trace):
    def f(x, proj, q_w, kv_w):
        return tuple(ir.rms_norm((x * i) @ proj[:48].t(), q_w, 1e-6) for i in range(1, 5))

    args = _mla_inputs((48, 16, 2))
    gm = trace(f, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 2
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


def test_no_pair_closes_a_cycle_through_an_earlier_pair(trace):
    """``z`` and ``w`` are independent, until ``u`` and ``v`` are fused: ``v``'s weight is read
    from ``z``'s output and ``w`` reads ``u``'s, so the fused node sits between the two."""

    def f(x, proj, q_w, kv_w):
        z = ir.rms_norm((x * 3) @ proj[:16].t(), kv_w, 1e-6)
        p = x @ proj.t()
        q_c, kv_c, _ = p.split([48, 16, 2], dim=-1)
        u = ir.rms_norm(q_c, q_w, 1e-6)
        v = ir.rms_norm(kv_c, z[0] + kv_w, 1e-6)
        w = ir.rms_norm(u * 2, q_w, 1e-6)
        return w, v

    args = _mla_inputs((48, 16, 2))
    gm = trace(f, *args)
    expected = gm(*args)
    assert dual_rms_norm_pass(gm) == 1
    gm.graph.lint()
    a, _, b, _, _, _ = _fused_args(gm)
    assert (piece_of(a).start, piece_of(b).start) == (0, 48)  # u and v, then nothing
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)
