"""Capability tags: impls declare them, ``require=`` selects on them, explain says what lacks.

Every test runs on both hit paths: a requirement lives in the priority scope, which both key on.
"""

from __future__ import annotations

import threading

import pytest
import torch
from kernels import scaled_rms_norm
from torch.fx.experimental.proxy_tensor import make_fx

import ir_core
from ir_core import kit, priority
from ir_core.compile.lowering import lower

NATIVE = ir_core.get_op("rms_norm").native
X, W = torch.randn(4, 16), torch.randn(16)


#: every test on both hit paths (the conftest's ``hit_path`` fixture)
pytestmark = pytest.mark.usefixtures("hit_path")


@pytest.fixture
def tagged(plugin):
    """``fast`` (x2, no tags) first in the priority, then ``steady`` (x3, batch-invariant and
    deterministic), then ``graphy`` (x5, cuda_graph_safe only)."""

    def register_impls(registry):
        registry.register_impl("rms_norm", "fast", scaled_rms_norm(2.0), device_types=("cpu",))
        registry.register_impl(
            "rms_norm",
            "steady",
            scaled_rms_norm(3.0),
            device_types=("cpu",),
            capabilities={"batch_invariant", "deterministic"},
        )
        registry.register_impl(
            "rms_norm",
            "graphy",
            scaled_rms_norm(5.0),
            device_types=("cpu",),
            capabilities=["cuda_graph_safe"],
        )

    def platform_priority(platform):
        return {"rms_norm": ["fast", "steady", "graphy"]}

    plugin(register_impls=register_impls, platform_priority=platform_priority)


def who_ran(out: torch.Tensor) -> float:
    return float((out / NATIVE(X, W, 1e-6)).flatten()[0].round())


def test_impls_carry_their_tags_and_native_is_deterministic_only(tagged):
    op = ir_core.get_op("rms_norm")
    assert op.impls["steady"].capabilities == {"batch_invariant", "deterministic"}
    assert op.impls["fast"].capabilities == frozenset()
    assert op.impls["native"].capabilities == {"deterministic"}


def test_a_requirement_skips_impls_lacking_it_and_explain_says_so(tagged):
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
    with ir_core.set_priority(require={"batch_invariant"}):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
        info = ir_core.explain("rms_norm", X, W, 1e-6)
    assert info.provider == "steady"
    assert info.skipped == [("fast", "lacks capability batch_invariant")]
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0  # the cached decision did not leak


def test_explain_names_the_first_missing_tag_in_name_order(tagged):
    with ir_core.set_priority(require={"deterministic", "batch_invariant"}):
        skipped = dict(ir_core.explain("rms_norm", X, W, 1e-6).skipped)
    assert skipped["fast"] == "lacks capability batch_invariant"


def test_native_runs_when_it_has_the_requirement(tagged):
    with ir_core.set_priority(rms_norm=["fast", "graphy", "native"], require={"deterministic"}):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 1.0
        skipped = dict(ir_core.explain("rms_norm", X, W, 1e-6).skipped)
    assert skipped["graphy"] == "lacks capability deterministic"


def test_nothing_meeting_the_requirement_is_an_error_not_a_silent_native(tagged):
    with ir_core.set_priority(rms_norm=["fast", "native"], require={"batch_invariant"}):
        with pytest.raises(ir_core.CapabilityError, match="batch_invariant") as caught:
            ir_core.ops.rms_norm(X, W, 1e-6)
        with pytest.raises(ir_core.CapabilityError):  # and again: a failure is not cached
            ir_core.ops.rms_norm(X, W, 1e-6)
    skipped = dict(caught.value.explanation.skipped)
    assert skipped["native"] == "lacks capability batch_invariant"
    assert skipped["fast"] == "lacks capability batch_invariant"
    assert "native: lacks capability batch_invariant" in str(caught.value)
    assert caught.value.required == {"batch_invariant"}


def test_nested_blocks_add_requirements_and_equal_blocks_share_a_scope(tagged):
    with ir_core.set_priority(require={"deterministic"}):
        outer = priority.current_scope.get()
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
        with ir_core.set_priority(rms_norm=["graphy", "steady"], require=["batch_invariant"]):
            assert priority.required() == {"deterministic", "batch_invariant"}
            assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
        with ir_core.set_priority(require={"cuda_graph_safe"}):
            with pytest.raises(ir_core.CapabilityError):  # nobody is both
                ir_core.ops.rms_norm(X, W, 1e-6)
    with ir_core.set_priority(require=["deterministic"]):
        assert priority.current_scope.get() is outer


def test_a_requirement_is_thread_local(tagged):
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait()
        seen["other"] = who_ran(ir_core.ops.rms_norm(X, W, 1e-6))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with ir_core.set_priority(require={"batch_invariant"}):
        inside.set()
        done.wait()
        seen["here"] = who_ran(ir_core.ops.rms_norm(X, W, 1e-6))
    thread.join()
    assert seen == {"other": 2.0, "here": 3.0}


def test_configure_and_the_config_file_requirement_in_order_of_strength(
    tagged, tmp_path, monkeypatch
):
    path = tmp_path / "ir-core.toml"
    path.write_text('require = ["cuda_graph_safe"]\n')
    monkeypatch.setenv("IR_CORE_CONFIG", str(path))
    ir_core.config.reload()
    try:
        assert priority.required() == {"cuda_graph_safe"}
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 5.0
        ir_core.configure(require={"batch_invariant"})  # replaces the file's
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 3.0
        with ir_core.set_priority(require={"cuda_graph_safe"}):  # adds: nobody has both
            with pytest.raises(ir_core.CapabilityError):
                ir_core.ops.rms_norm(X, W, 1e-6)
        ir_core.configure(require=())  # an empty requirement: requires nothing, file ignored
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0
        ir_core.configure(require=None)  # cleared: the file's is back
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 5.0
    finally:
        ir_core.configure()
        monkeypatch.delenv("IR_CORE_CONFIG")
        ir_core.config.reload()
    assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 2.0


def test_a_typo_in_the_config_files_requirement_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "ir-core.toml"
    path.write_text('require = ["batch_invariants"]\n')
    monkeypatch.setenv("IR_CORE_CONFIG", str(path))
    ir_core.config.reload()
    try:
        with pytest.raises(ir_core.PriorityError, match="batch_invariant"):
            priority.required()
    finally:
        monkeypatch.delenv("IR_CORE_CONFIG")
        ir_core.config.reload()


def test_a_bound_call_follows_the_requirement_of_its_scope(tagged):
    bound = ir_core.bind("rms_norm", X, W, 1e-6)
    assert bound.provider == "fast"
    with ir_core.set_priority(require={"batch_invariant"}):
        assert who_ran(bound(X, W, 1e-6)) == 3.0
    assert who_ran(bound(X, W, 1e-6)) == 2.0
    ir_core.configure(require={"cuda_graph_safe"})
    assert who_ran(bound(X, W, 1e-6)) == 5.0


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({"batch_invariants"}, "did you mean 'batch_invariant'"),
        ({"Deterministic"}, "not a lowercase identifier"),
        ("deterministic", "not a string"),
    ],
)
def test_bad_tags_are_clear_errors_at_registration_and_in_require(plugin, tags, words):
    registry = ir_core.registry
    with pytest.raises(ir_core.RegistrationError, match=words):
        registry.register_impl(
            "rms_norm", "typo", scaled_rms_norm(7.0), device_types=("cpu",), capabilities=tags
        )
    assert "typo" not in ir_core.get_op("rms_norm").impls
    with pytest.raises(ir_core.PriorityError, match=words):
        with ir_core.set_priority(require=tags):
            pass
    with pytest.raises(ir_core.PriorityError, match=words):
        ir_core.configure(require=tags)


def test_a_vendors_own_tag_is_allowed(plugin):
    def register_impls(registry):
        registry.register_impl(
            "rms_norm",
            "vendor",
            scaled_rms_norm(7.0),
            device_types=("cpu",),
            capabilities={"acme_exact"},
        )

    plugin(register_impls=register_impls)
    with ir_core.set_priority(rms_norm=["vendor"], require={"acme_exact"}):
        assert who_ran(ir_core.ops.rms_norm(X, W, 1e-6)) == 7.0


def test_the_kit_registers_tags_per_op(plugin):
    table = {"rms_norm": (scaled_rms_norm(11.0), None)}

    def register_impls(registry):
        kit.register_impls(
            registry,
            "kitted",
            table,
            device_types=("cpu",),
            capabilities={"rms_norm": {"batch_invariant"}},
        )

    plugin(register_impls=register_impls)
    assert ir_core.get_op("rms_norm").impls["kitted"].capabilities == {"batch_invariant"}
    with pytest.raises(ValueError, match="capabilities name ops without an impl: silu"):
        kit.register_impls(
            ir_core.registry, "kitted2", table, device_types=("cpu",), capabilities={"silu": ()}
        )


def test_the_compile_guard_and_priority_hash_follow_the_requirement(tagged):
    base = ir_core.priority_hash()
    plain_key = priority.priority_key
    with ir_core.set_priority(require={"batch_invariant"}):
        assert priority.priority_key != plain_key
        assert ir_core.priority_hash() != base
    assert priority.priority_key == plain_key
    ir_core.configure(require={"batch_invariant"})
    assert priority.priority_key != plain_key


def test_lowering_selects_under_the_requirement(tagged):
    ir_op = torch.ops.ir_core.rms_norm
    gm = make_fx(lambda x, w: ir_op(x, w, 1e-6), tracing_mode="symbolic")(X, W)
    with ir_core.set_priority(require={"batch_invariant"}):
        result = lower(gm)
    assert [n.provider for n in result.lowered] == ["steady"]
