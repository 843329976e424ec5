"""Registration checks: signatures against the op, availability evaluated once, attribution."""

from __future__ import annotations

import pytest
import torch

import ir_core
from ir_core import RegistrationError


def good_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    return ir_core.get_op("rms_norm").native(x, weight, epsilon, weight_bias, variance_size)


def register(fn, **kwargs):
    kwargs.setdefault("device_types", ("cpu",))
    op = ir_core.get_op("rms_norm")
    try:
        return ir_core.registry.register_impl("rms_norm", "regtest", fn, **kwargs)
    finally:
        op.impls.pop("regtest", None)


def test_matching_signature_registers():
    impl = register(good_rms_norm)
    assert impl.provider == "regtest" and impl.device_types == frozenset({"cpu"})


def test_string_annotations_are_resolved():
    def fn(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return x

    register(fn)


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x, weight, eps, weight_bias=0.0, variance_size=None: x, ["parameters", "eps"]),
        (lambda x, weight, epsilon: x, ["parameters"]),
        (
            lambda x, weight, epsilon, weight_bias=1.0, variance_size=None: x,
            ["weight_bias", "defaults to 1.0"],
        ),
    ],
)
def test_wrong_names_or_defaults_are_rejected(fn, words):
    with pytest.raises(RegistrationError) as info:
        register(fn)
    message = str(info.value)
    assert "regtest impl of rms_norm" in message
    for word in words:
        assert word in message


def test_wrong_annotation_is_rejected():
    def fn(
        x: torch.Tensor,
        weight: torch.Tensor,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return x

    with pytest.raises(RegistrationError, match="'weight' is annotated Tensor"):
        register(fn)


def test_wrong_return_annotation_is_rejected():
    def fn(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x

    with pytest.raises(RegistrationError, match="returns"):
        register(fn)


def test_supports_args_must_have_the_op_parameters():
    with pytest.raises(RegistrationError, match="supports_args"):
        register(good_rms_norm, supports_args=lambda x, weight: True)
    register(
        good_rms_norm,
        supports_args=lambda x, weight, epsilon, weight_bias=0.0, variance_size=None: True,
    )


@pytest.mark.parametrize(
    "bad", [dict(device_types="cpu"), dict(device_types=()), dict(available="yes")]
)
def test_bad_options_are_rejected(bad):
    with pytest.raises(RegistrationError):
        register(good_rms_norm, **bad)


def test_native_and_duplicates_are_rejected():
    with pytest.raises(RegistrationError, match="native"):
        ir_core.registry.register_impl("rms_norm", "native", good_rms_norm, device_types=("cpu",))
    op = ir_core.get_op("rms_norm")
    ir_core.registry.register_impl("rms_norm", "regtest", good_rms_norm, device_types=("cpu",))
    try:
        with pytest.raises(RegistrationError, match="already registered"):
            ir_core.registry.register_impl(
                "rms_norm", "regtest", good_rms_norm, device_types=("cpu",)
            )
    finally:
        op.impls.pop("regtest")


def test_unknown_op_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown op 'layer_norm'; known ops: .*rms_norm"):
        ir_core.registry.register_impl("layer_norm", "x", good_rms_norm, device_types=("cpu",))


def test_available_is_evaluated_once_with_its_reason():
    calls = []

    def check():
        calls.append(1)
        return False, "libfoo.so not found"

    impl = register(good_rms_norm, available=check)
    assert calls == []  # lazily
    assert impl.status() == (False, "libfoo.so not found")
    assert impl.status() == (False, "libfoo.so not found")
    assert calls == [1]


def test_a_raising_availability_check_means_unavailable():
    def check():
        raise RuntimeError("HIP runtime missing")

    impl = register(good_rms_norm, available=check)
    ok, reason = impl.status()
    assert not ok and "RuntimeError: HIP runtime missing" in reason


def test_decorator_form_returns_the_function():
    op = ir_core.get_op("rms_norm")
    try:
        decorated = ir_core.registry.impl("rms_norm", "regtest", device_types=("cpu",))(
            good_rms_norm
        )
        assert decorated is good_rms_norm and op.impls["regtest"].fn is good_rms_norm
    finally:
        op.impls.pop("regtest", None)


_counter = iter(range(10**6))


def test_register_op_declares_a_dispatchable_torch_op(plugin):
    name = f"scaled_copy_{next(_counter)}"

    def scaled_copy(x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return x * scale

    def register_ops(registry):
        registry.register_op(scaled_copy, name=name, tolerances={torch.float32: (0.0, 0.0)})

    plugin(register_ops=register_ops)
    op = ir_core.get_op(name)
    assert op.tolerance(torch.float32) == (0.0, 0.0)
    assert op.tolerance(torch.bfloat16) == (1e-3, 1.6e-2)
    x = torch.randn(3)
    torch.testing.assert_close(getattr(ir_core.ops, name)(x), x * 2)
    torch.testing.assert_close(getattr(torch.ops.ir_core, name)(x, 3.0), x * 3)


def test_register_op_needs_annotations():
    def untyped(x, scale=2.0):
        return x

    with pytest.raises(TypeError, match="annotation"):
        ir_core.registry.register_op(untyped, name=f"untyped_{next(_counter)}")


def test_dir_of_ops_lists_the_ops_only():
    names = dir(ir_core.ops)
    assert names == sorted(op.name for op in ir_core.registry.ops())
    assert {"rms_norm", "fused_add_rms_norm", "dual_rms_norm"} <= set(names)


def test_op_api_is_exported_but_not_in_all():
    assert ir_core.__op_api__ == 3 and "__op_api__" not in ir_core.__all__
    assert all(hasattr(ir_core, name) for name in ir_core.__all__)


def test_a_failing_binding_leaves_the_op_unregistered():
    """``on_new_op`` runs before the op is stored: a binding that fails registers nothing."""
    registry = ir_core.Registry()
    bound = []

    def bind(op):
        bound.append(op.name)
        if op.name == "refused":
            raise RuntimeError("no torch op for you")

    registry.on_new_op(bind)

    def accepted(x: torch.Tensor) -> torch.Tensor:
        return x

    def refused(x: torch.Tensor) -> torch.Tensor:
        return x

    registry.register_op(accepted)
    with pytest.raises(RuntimeError, match="no torch op"):
        registry.register_op(refused)
    assert bound == ["accepted", "refused"]
    assert "accepted" in registry and "refused" not in registry


def test_ensure_loaded_runs_the_installed_loader():
    registry = ir_core.Registry()
    registry.ensure_loaded()  # no loader: nothing to do
    calls = []
    registry.set_loader(lambda: calls.append(1))
    registry.ensure_loaded()
    assert calls == [1]
