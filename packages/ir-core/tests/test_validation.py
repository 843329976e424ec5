"""Bad input is a TypeError/ValueError that names the op and the argument, in eager mode."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import ir_core
from ir_core.catalogue.rotary import cos_sin_cache

X = torch.randn(3, 8)
W = torch.randn(8)
EPS = 1e-6
# rotary_embedding: positions of 3 tokens, 4 query heads and 2 key heads of 16 channels
P, Q, K, C = torch.arange(3), torch.randn(3, 4 * 16), torch.randn(3, 2 * 16), cos_sin_cache(8, 16)


def _rope(positions=P, query=Q, key=K, head_size=16, cache=C, is_neox=True):
    return ir_core.ops.rotary_embedding(positions, query, key, head_size, cache, is_neox)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (
            lambda: ir_core.ops.rms_norm(X.to(torch.int32), W, 1e-6),
            TypeError,
            ["rms_norm", "'x'", "floating"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, W.to(torch.int64), 1e-6),
            TypeError,
            ["rms_norm", "'weight'"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, torch.randn(7), 1e-6),
            ValueError,
            ["rms_norm", "'weight'", "(8,)"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, torch.randn(1, 8), 1e-6),
            ValueError,
            ["rms_norm", "'weight'"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, W, 1e-6, variance_size=0),
            ValueError,
            ["rms_norm", "'variance_size'", "1..8"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, W, 1e-6, variance_size=9),
            ValueError,
            ["'variance_size'"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, W, 1e-6, variance_size=2.5),
            TypeError,
            ["'variance_size'"],
        ),
        (
            lambda: ir_core.ops.rms_norm(X, None, 1e-6, weight_bias=1.0),
            ValueError,
            ["'weight_bias'"],
        ),
        (lambda: ir_core.ops.rms_norm(X, W, -1.0), ValueError, ["'epsilon'"]),
        (lambda: ir_core.ops.rms_norm(X, W, "1e-6"), TypeError, ["'epsilon'"]),
        (lambda: ir_core.ops.rms_norm([1.0], W, 1e-6), TypeError, ["rms_norm", "'x'", "Tensor"]),
        (
            lambda: ir_core.ops.rms_norm(torch.tensor(1.0), None, 1e-6),
            ValueError,
            ["'x'", "dimension"],
        ),
        (
            lambda: ir_core.ops.fused_add_rms_norm(X, torch.randn(2, 8), W, 1e-6),
            ValueError,
            ["fused_add_rms_norm", "'residual'"],
        ),
        (
            lambda: ir_core.ops.fused_add_rms_norm(X, X.to(torch.int32), W, 1e-6),
            TypeError,
            ["'residual'"],
        ),
        (
            lambda: ir_core.ops.dual_rms_norm(X, W, X, torch.randn(3), 1e-6, 1e-6),
            ValueError,
            ["dual_rms_norm", "'b_weight'"],
        ),
        (lambda: ir_core.ops.dual_rms_norm(X, W, X, W, 1e-6, None), TypeError, ["'b_epsilon'"]),
        (lambda: ir_core.ops.rms_norm(X, W), TypeError, ["rms_norm", "epsilon"]),
        # -- silu_and_mul, gelu_and_mul
        (lambda: ir_core.ops.silu_and_mul(torch.randn(3, 7)), ValueError, ["silu_and_mul", "'x'", "even", "7"]),
        (lambda: ir_core.ops.gelu_and_mul(torch.randn(3, 5)), ValueError, ["gelu_and_mul", "'x'", "even"]),
        (lambda: ir_core.ops.silu_and_mul(X.to(torch.int32)), TypeError, ["silu_and_mul", "'x'", "floating"]),
        (lambda: ir_core.ops.silu_and_mul(torch.tensor(1.0)), ValueError, ["silu_and_mul", "'x'", "dimension"]),
        (lambda: ir_core.ops.silu_and_mul([1.0, 2.0]), TypeError, ["silu_and_mul", "'x'", "Tensor"]),
        (lambda: ir_core.ops.gelu_and_mul(X, "tanh_approx"), ValueError, ["gelu_and_mul", "'approximate'", "'none'", "'tanh'"]),
        (lambda: ir_core.ops.gelu_and_mul(X, None), TypeError, ["gelu_and_mul", "'approximate'", "str"]),
        (lambda: ir_core.ops.gelu_and_mul(X, approximate="erf"), ValueError, ["'approximate'", "'erf'"]),
        (lambda: ir_core.ops.silu_and_mul(X, X), TypeError, ["silu_and_mul"]),
        # -- rotary_embedding
        (lambda: _rope(positions=P.float()), TypeError, ["rotary_embedding", "'positions'", "int64"]),
        (lambda: _rope(positions=P.to(torch.int16)), TypeError, ["'positions'"]),
        (lambda: _rope(positions=torch.tensor(1)), ValueError, ["'positions'", "dimension"]),
        (lambda: _rope(positions=torch.arange(4)), ValueError, ["'query'", "(4,)"]),
        (lambda: _rope(query=Q.to(torch.int32)), TypeError, ["'query'", "floating"]),
        (lambda: _rope(key=torch.randn(3, 20)), ValueError, ["'key'", "head_size 16"]),
        (lambda: _rope(query=torch.randn(3, 4, 8)), ValueError, ["'query'", "head_size is 16"]),
        (lambda: _rope(key=torch.randn(3, 2, 16, 1)), ValueError, ["'key'"]),
        (lambda: _rope(cache=cos_sin_cache(8, 18)), ValueError, ["'cos_sin_cache'", "rot_dim 18"]),
        (lambda: _rope(cache=torch.randn(8, 15)), ValueError, ["'cos_sin_cache'", "even"]),
        (lambda: _rope(cache=torch.ones(8, 16, dtype=torch.int64)), TypeError, ["'cos_sin_cache'", "floating"]),
        (lambda: _rope(cache=torch.randn(8, 2, 8)), ValueError, ["'cos_sin_cache'", "(max_position, rot_dim)"]),
        (lambda: _rope(head_size=0), ValueError, ["'head_size'"]),
        (lambda: _rope(head_size=16.0), TypeError, ["'head_size'", "int"]),
        (lambda: _rope(is_neox=1), TypeError, ["'is_neox'", "bool"]),
        (lambda: _rope(key=None), TypeError, ["rotary_embedding", "'key'", "Tensor"]),
        (lambda: ir_core.ops.rotary_embedding(P, Q, K, 16), TypeError, ["rotary_embedding", "cos_sin_cache"]),
        # -- gated_rms_norm
        (lambda: ir_core.ops.gated_rms_norm(X, W, torch.randn(3, 7), EPS), ValueError, ["gated_rms_norm", "'gate'", "(3, 8)"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X.to(torch.int32), EPS), TypeError, ["'gate'", "floating"]),
        (lambda: ir_core.ops.gated_rms_norm(X.to(torch.int32), W, X, EPS), TypeError, ["'x'", "floating"]),
        (lambda: ir_core.ops.gated_rms_norm(X, torch.randn(7), X, EPS), ValueError, ["'weight'", "(8,)"]),
        (lambda: ir_core.ops.gated_rms_norm(X, None, X, EPS), TypeError, ["'weight'", "Tensor"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, group_size=3), ValueError, ["'group_size'", "divide", "8"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, group_size=0), ValueError, ["'group_size'"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, group_size=16), ValueError, ["'group_size'"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, group_size=4.0), TypeError, ["'group_size'", "int"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, -1.0), ValueError, ["'epsilon'"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, weight_bias="1"), TypeError, ["'weight_bias'"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X, EPS, norm_before_gate=None), TypeError, ["'norm_before_gate'", "bool"]),
        (lambda: ir_core.ops.gated_rms_norm(X, W, X), TypeError, ["gated_rms_norm", "epsilon"]),
        # Reals torch cannot add to a tensor: refused by name, not deep inside the kernel
        (lambda: ir_core.ops.rms_norm(X, W, Fraction(1, 10)), TypeError, ["rms_norm", "'epsilon'"]),
        (lambda: ir_core.ops.rms_norm(X, W, 10**400), ValueError, ["rms_norm", "'epsilon'"]),
        (lambda: ir_core.ops.rms_norm(X, W, math.inf), ValueError, ["'epsilon'", "finite"]),
        (
            lambda: ir_core.ops.rms_norm(X, W, 1e-6, weight_bias=Fraction(1, 2)),
            TypeError,
            ["rms_norm", "'weight_bias'"],
        ),
        (
            lambda: ir_core.ops.fused_add_rms_norm(X, X, W, 1e-6, weight_bias=10**400),
            ValueError,
            ["fused_add_rms_norm", "'weight_bias'"],
        ),
        (
            lambda: ir_core.ops.dual_rms_norm(X, W, X, W, 1e-6, Fraction(1, 10)),
            TypeError,
            ["dual_rms_norm", "'b_epsilon'"],
        ),
    ],
)  # fmt: skip
def test_bad_input_names_op_and_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_validation_also_runs_after_a_cache_hit_for_a_different_key():
    ir_core.ops.rms_norm(X, W, 1e-6)  # warm the cache
    with pytest.raises(ValueError, match="'weight'"):
        ir_core.ops.rms_norm(X, torch.randn(4), 1e-6)
    with pytest.raises(ValueError, match="'residual'"):
        ir_core.ops.fused_add_rms_norm(X, torch.randn(4, 8), W, 1e-6)


def test_keyword_arguments_are_accepted():
    out = ir_core.ops.rms_norm(x=X, weight=W, epsilon=1e-6, variance_size=4)
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(X, W, 1e-6, 0.0, 4))


def test_numpy_and_int_scalars_are_accepted():
    np = pytest.importorskip("numpy")
    expected = ir_core.get_op("rms_norm").native(X, W, 1e-6)
    torch.testing.assert_close(ir_core.ops.rms_norm(X, W, np.float32(1e-6)), expected)
    torch.testing.assert_close(ir_core.ops.rms_norm(X, W, 0), ir_core.ops.rms_norm(X, W, 0.0))
