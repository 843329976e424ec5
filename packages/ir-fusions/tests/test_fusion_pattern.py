"""The pattern language and the rewrite driver, on small traced graphs."""

from __future__ import annotations

import torch
from torch import fx

import ir_core
from ir_fusions import (
    Call,
    Capture,
    FusionPass,
    Literal,
    NodeOrder,
    Replacement,
    Rule,
    arguments,
    value_of,
)

aten = torch.ops.aten
ir = torch.ops.ir_core


def _nodes(gm, target):
    return [n for n in gm.graph.nodes if n.target == target]


def test_arguments_fill_defaults_and_read_keywords(trace):
    def f(x, w):
        a = ir.rms_norm(x, w, 1e-6)
        b = ir.rms_norm(x, w, epsilon=1e-5, weight_bias=1.0)
        return a + b

    gm = trace(f, torch.randn(2, 8), torch.randn(8))
    first, second = _nodes(gm, ir.rms_norm.default)
    assert arguments(first) == {
        "x": first.args[0],
        "weight": first.args[1],
        "epsilon": 1e-6,
        "weight_bias": 0.0,
        "variance_size": None,
    }
    assert arguments(second)["epsilon"] == 1e-5
    assert arguments(second)["weight_bias"] == 1.0
    (add,) = _nodes(gm, aten.add.Tensor)
    assert arguments(add)["alpha"] == 1  # aten's default, not written in the graph


def test_one_pattern_captures_every_epsilon_and_weight_bias(trace):
    pattern = Call(
        ir.rms_norm.default,
        x=Capture("x"),
        epsilon=Capture("eps"),
        weight_bias=Capture("bias"),
    )

    def f(x, w, w32):
        return (
            ir.rms_norm(x, w, 1e-6),
            ir.rms_norm(x, w32, 1e-5, 1.0),
            ir.rms_norm(x, w, 3e-3, 0.5),
        )

    gm = trace(
        f,
        torch.randn(2, 8, dtype=torch.bfloat16),
        torch.randn(8, dtype=torch.bfloat16),
        torch.randn(8),
    )
    found = [pattern(n) for n in _nodes(gm, ir.rms_norm.default)]
    assert [(m["eps"], m["bias"]) for m in found] == [(1e-6, 0.0), (1e-5, 1.0), (3e-3, 0.5)]


def test_a_name_captured_twice_must_be_the_same_node(trace):
    same = Call(aten.add.Tensor, self=Capture("t"), other=Capture("t"))

    def f(x, y):
        return x + x, x + y

    gm = trace(f, torch.randn(3), torch.randn(3))
    doubled, mixed = _nodes(gm, aten.add.Tensor)
    assert same(doubled) is not None
    assert same(mixed) is None


def test_literal_and_single_user(trace):
    def f(x, y):
        s = torch.add(x, y, alpha=2)
        return s, s * 3, x + y

    gm = trace(f, torch.randn(3), torch.randn(3))
    scaled, plain = _nodes(gm, aten.add.Tensor)
    unit = Call(aten.add.Tensor, alpha=Literal(1))
    assert unit(scaled) is None and unit(plain) is not None
    assert Literal(1)(True) is None  # a bool is not the number 1
    used_once = Call(aten.add.Tensor, single_user=True)
    assert used_once(scaled) is None  # returned and multiplied
    assert used_once(plain) is not None


def _double_to_mul_pass(order=100):
    """A toy pass: ``x + x`` => ``x * 2`` through ``aten.mul``."""

    def replace(m):
        return Replacement(
            target=aten.mul.Tensor,
            args=(m["t"], 2),
            outputs={m["add"]: None},
            values=(value_of(m["add"]),),
        )

    return FusionPass(
        "double",
        [
            Rule(
                Call(aten.add.Tensor, bind="add", self=Capture("t"), other=Capture("t")),
                lambda m: True,
                replace,
            )
        ],
        order=order,
    )


def test_pass_rewrites_counts_and_keeps_results(trace):
    def f(x, y):
        return (x + x) * y, (y + y).sum()

    x, y = torch.randn(4), torch.randn(4)
    gm = trace(f, x, y)
    expected = gm(x, y)
    fusion = _double_to_mul_pass()
    assert fusion(gm) == 2
    assert not _nodes(gm, aten.add.Tensor)
    assert len(_nodes(gm, aten.mul.Tensor)) == 3
    for got, want in zip(gm(x, y), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert fusion(gm) == 0  # nothing left to match


def test_check_declining_leaves_the_graph_alone(trace):
    gm = trace(lambda x: x + x, torch.randn(3))
    before = str(gm.graph)
    fusion = _double_to_mul_pass()
    fusion.rules = [Rule(fusion.rules[0].pattern, lambda m: False, fusion.rules[0].replace)]
    assert fusion(gm) == 0
    assert str(gm.graph) == before


def test_a_pure_input_computed_after_a_user_is_moved_up(trace, ops):
    """The fused node must follow its inputs and precede the replaced node's users: a weight
    computed (purely, from earlier nodes) after the first user of the sum is moved before it."""

    def f(x, r, w):
        s = x + r
        early = s * 2  # a user of s ...
        w2 = (w * 3).abs()  # ... before the weight is computed
        return ir.rms_norm(s, w2, 1e-6), early

    args = (torch.randn(2, 8), torch.randn(2, 8), torch.randn(8))
    gm = trace(f, *args)
    expected = gm(*args)
    from ir_fusions import fused_add_rms_norm_pass

    assert fused_add_rms_norm_pass(gm) == 1
    assert ops(gm) == ["mul", "abs", "fused_add_rms_norm", "mul"]
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)


def test_no_rewrite_when_an_input_reads_the_first_user(trace):
    """An input that depends on a user of the replaced node cannot move before that user: the
    pass leaves the graph as it is."""

    def f(x, r, w):
        s = x + r
        early = s * 2
        w2 = w * early.sum()
        return ir.rms_norm(s, w2, 1e-6), early

    gm = trace(f, torch.randn(2, 8), torch.randn(2, 8), torch.randn(8))
    from ir_fusions import fused_add_rms_norm_pass

    before = str(gm.graph)
    assert fused_add_rms_norm_pass(gm) == 0
    assert str(gm.graph) == before


def test_bare_graph_is_accepted(trace):
    gm = trace(lambda x: x + x, torch.randn(3))
    assert _double_to_mul_pass()(gm.graph) == 1
    gm.recompile()
    torch.testing.assert_close(gm(torch.ones(3)), torch.full((3,), 2.0))


def test_new_nodes_carry_example_values(trace):
    def f(x, r, w):
        s = x + r
        return ir.rms_norm(s, w, 1e-6), s

    gm = trace(f, torch.randn(2, 8), torch.randn(2, 8), torch.randn(8), fake=True)
    from ir_fusions import fused_add_rms_norm_pass

    assert fused_add_rms_norm_pass(gm) == 1
    for node in gm.graph.nodes:
        if node.op == "call_function":
            assert value_of(node) is not None, node
    (fused,) = _nodes(gm, ir_core.get_op("fused_add_rms_norm").torch_op)
    assert [tuple(v.shape) for v in value_of(fused)] == [(2, 8), (2, 8)]


def test_a_pass_numbers_the_graph_once_and_recompiles_once(trace, monkeypatch):
    """The driver's cost per match must not grow with the graph: one numbering of the nodes
    and one recompile per pass, however many matches (counted, not timed)."""
    from ir_fusions import fused_add_rms_norm_pass

    def f(x, r, w):
        for _ in range(12):  # residual stream: each layer's sum feeds the next one's
            r = x + r
            x = ir.rms_norm(r, w, 1e-6) * 2
        return x, r

    gm = trace(f, torch.randn(2, 8), torch.randn(2, 8), torch.randn(8), fake=True)
    numberings, recompiles = [], []
    renumber = NodeOrder._renumber
    monkeypatch.setattr(NodeOrder, "_renumber", lambda self: numberings.append(renumber(self)))
    monkeypatch.setattr(gm, "recompile", lambda: recompiles.append(1))
    assert fused_add_rms_norm_pass(gm) == 12
    assert len(numberings) == 1
    assert len(recompiles) == 1


def test_node_order_follows_inserts_and_erases():
    graph = fx.Graph()
    x = graph.placeholder("x")
    nodes = [graph.call_function(torch.neg, (x,)) for _ in range(5)]
    graph.output(nodes[-1])
    order = NodeOrder(graph)
    for _ in range(80):  # more midpoints than a float has bits: renumbers once, stays right
        with graph.inserting_before(nodes[2]):
            order.inserted(graph.call_function(torch.abs, (x,)))
    with graph.inserting_after(nodes[-1]):
        order.inserted(graph.call_function(torch.abs, (x,)))
    for node in (nodes[1], nodes[3]):
        graph.erase_node(node)
        order.erased(node)
    assert order.renumbered == 2
    assert sorted(graph.nodes, key=order.__getitem__) == list(graph.nodes)
    assert len({order[n] for n in graph.nodes}) == len(graph.nodes)
