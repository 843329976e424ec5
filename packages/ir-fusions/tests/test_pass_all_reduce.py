"""``all_reduce -> rms_norm / fused_add_rms_norm  =>  all_reduce_*`` on traced graphs.

These graphs are traced with fake tensors, so no process group is needed; the numerics on two
real ranks are in ``test_all_reduce_two_ranks.py``.
"""

from __future__ import annotations

import torch

from ir_fusions import PASSES, all_reduce_rms_norm_pass

ir = torch.ops.ir_core
c10d = torch.ops._c10d_functional
BF16 = torch.bfloat16
GROUP = "tp"


def all_reduce(x, op="sum", group=GROUP):
    """What ``torch.distributed._functional_collectives.all_reduce`` traces to."""
    return c10d.wait_tensor(c10d.all_reduce(x, op, group))


def tp_block(partial_o, partial_down, residual, n1, n2):
    """Gemma-style layer under tensor parallelism: o_proj and down_proj outputs are partial."""
    h = all_reduce(partial_o)
    y, r = ir.fused_add_rms_norm(h, residual, n1, 1e-6, 1.0)
    d = all_reduce(partial_down + y * 0)  # the MLP stand-in
    return ir.fused_add_rms_norm(d, r, n2, 1e-6, 1.0)


def _args(*shapes, dtype=BF16):
    return tuple(torch.randn(s, dtype=dtype) for s in shapes)


def _fused_calls(gm, name):
    return [n for n in gm.graph.nodes if getattr(n.target, "_opname", None) == name]


def test_first_layer_norm_keeps_the_reduced_residual(trace, ops):
    def first_layer(partial, w):
        h = all_reduce(partial)
        return ir.rms_norm(h, w, 1e-6, 1.0), h  # h is the residual stream from here on

    gm = trace(first_layer, *_args((4, 32)), torch.randn(32), fake=True)
    assert all_reduce_rms_norm_pass(gm) == 1
    assert ops(gm) == ["all_reduce_rms_norm"]
    (fused,) = _fused_calls(gm, "all_reduce_rms_norm")
    assert fused.args == (fused.args[0], GROUP, fused.args[2], 1e-6, 1.0, None)
    output = next(n for n in gm.graph.nodes if n.op == "output")
    assert [a.args for a in output.args[0]] == [(fused, 0), (fused, 1)]


def test_norm_whose_reduced_input_has_no_other_user(trace, ops):
    gm = trace(lambda p, w: ir.rms_norm(all_reduce(p), w, 1e-5), *_args((3, 16), (16,)), fake=True)
    assert all_reduce_rms_norm_pass(gm) == 1
    assert ops(gm) == ["all_reduce_rms_norm"]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    assert output.args[0].args[1] == 0  # only the normalized output is used


def test_tp_block_fused_add_both_layers(trace, ops):
    gm = trace(
        tp_block, *_args((4, 32), (4, 32), (4, 32)), torch.randn(32), torch.randn(32), fake=True
    )
    assert all_reduce_rms_norm_pass(gm) == 2
    assert ops(gm).count("all_reduce_fused_add_rms_norm") == 2
    assert "all_reduce" not in ops(gm) and "wait_tensor" not in ops(gm)
    for node in _fused_calls(gm, "all_reduce_fused_add_rms_norm"):
        assert node.args[2] == GROUP and node.args[4:] == (1e-6, 1.0, None)


def test_add_then_norm_needs_the_fused_add_pass_first(trace, ops):
    """``all_reduce -> add -> rms_norm``: the passes' order turns it into one fused op."""

    def f(partial, residual, w):
        s = all_reduce(partial) + residual
        return ir.rms_norm(s, w, 1e-6), s

    gm = trace(f, *_args((4, 32), (4, 32), (32,)), fake=True)
    assert all_reduce_rms_norm_pass(gm) == 0  # alone, it sees an add, not a norm
    assert [p.name for p in PASSES][:3] == [
        "fused_add_rms_norm",
        "dual_rms_norm",
        "all_reduce_rms_norm",
    ]
    counts = {p.name: p(gm) for p in PASSES}
    assert counts == {
        "fused_add_rms_norm": 1,
        "dual_rms_norm": 0,
        "all_reduce_rms_norm": 1,
        **dict.fromkeys(
            ["fused_add_rms_norm_fp8_quant", "rms_norm_fp8_quant", "silu_and_mul_fp8_quant"], 0
        ),
    }
    assert ops(gm) == ["all_reduce_fused_add_rms_norm"]


def test_reduced_tensor_as_the_residual_argument(trace, ops):
    def f(partial, h, w):
        return ir.fused_add_rms_norm(h, all_reduce(partial), w, 1e-6)

    gm = trace(f, *_args((4, 32), (4, 32), (32,)), fake=True)
    assert all_reduce_rms_norm_pass(gm) == 1
    (fused,) = _fused_calls(gm, "all_reduce_fused_add_rms_norm")
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert fused.args[:2] == (placeholders[0], placeholders[1])  # the partial is reduced


def test_generic_over_weight_dtype_and_weight_bias(trace):
    def f(p1, p2, p3, r, w16, w32):
        a = ir.rms_norm(all_reduce(p1), w16, 1e-6)
        b, r2 = ir.fused_add_rms_norm(all_reduce(p2), r, w32, 1e-5, 1.0)
        c, _ = ir.fused_add_rms_norm(all_reduce(p3), r2, None, 1e-5)
        return a, b, c

    args = (*_args((2, 8), (2, 8), (2, 8), (2, 8), (8,)), torch.randn(8))
    gm = trace(f, *args, fake=True)
    assert all_reduce_rms_norm_pass(gm) == 3


def test_variants_that_must_not_match(trace):
    def max_reduce(p, w):
        return ir.rms_norm(all_reduce(p, "max"), w, 1e-6)

    def reduced_also_returned(p, r, w):
        h = all_reduce(p)  # the fused add op cannot give h back
        return ir.fused_add_rms_norm(h, r, w, 1e-6), h

    def swapped_with_other_dtype(p, h32, w):
        return ir.fused_add_rms_norm(h32, all_reduce(p), w, 1e-6)

    def norm_of_something_else(p, w):
        return ir.rms_norm(all_reduce(p) * 2, w, 1e-6)

    cases = [
        (max_reduce, _args((2, 8), (8,))),
        (reduced_also_returned, _args((2, 8), (2, 8), (8,))),
        (swapped_with_other_dtype, (*_args((2, 8)), torch.randn(2, 8), torch.randn(8))),
        (norm_of_something_else, _args((2, 8), (8,))),
    ]
    for fn, args in cases:
        gm = trace(fn, *args, fake=True)
        before = str(gm.graph)
        assert all_reduce_rms_norm_pass(gm) == 0, fn.__name__
        assert str(gm.graph) == before, fn.__name__


def test_traced_functional_collective_has_the_matched_form():
    """``_functional_collectives.all_reduce`` traces to the all_reduce + wait_tensor pair."""
    import torch.distributed._functional_collectives as fc
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(x, w):
        return ir.rms_norm(fc.all_reduce(x, "sum", GROUP), w, 1e-6)

    gm = make_fx(f, tracing_mode="fake")(torch.randn(2, 8), torch.randn(8))
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets[:2] == [c10d.all_reduce.default, c10d.wait_tensor.default]
    assert all_reduce_rms_norm_pass(gm) == 1
