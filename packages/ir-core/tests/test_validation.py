"""Bad input is a TypeError/ValueError that names the op and the argument, in eager mode."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import ir_core

X = torch.randn(3, 8)
W = torch.randn(8)


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
)
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
