"""The conformance kit's checks, run in-process on native and on deliberately broken impls.

Each broken impl breaks one rule; the test asserts that exactly the matching check fails and
that its message carries what a vendor needs to fix it.
"""

from __future__ import annotations

import re

import pytest
import torch
from kernels import rms_norm_signature

import ir_core
from ir_core.conformance import CHECK_NAMES, plan, run
from ir_core.conformance.checks import CheckSkipped, check_supports_args

FAST = ("numerics", "mutation", "supports_args")


def _native(op: str):
    return ir_core.get_op(op).native


def supports_signature(body):
    def supports(x, weight, epsilon, weight_bias=0.0, variance_size=None):
        return body(x, weight, epsilon, weight_bias, variance_size)

    return supports


@pytest.fixture
def provider(plugin):
    """``provider(name, fn, supports=None)`` registers an rms_norm impl for cpu."""

    def register(name, fn, supports=None):
        def register_impls(registry):
            registry.register_impl(
                "rms_norm",
                name,
                rms_norm_signature(fn),
                device_types=("cpu",),
                supports_args=None if supports is None else supports_signature(supports),
            )

        plugin(register_impls=register_impls)
        return name

    return register


def by_check(report):
    result = {}
    for r in report.results:
        result.setdefault(r.check, []).append(r)
    return result


def test_native_passes_every_fast_check_on_every_op_and_dtype():
    report = run(["native"], checks=FAST)
    assert report.ok, [r.message for r in report.failures]
    checked = {(p.target.op, p.target.dtype) for p in report.plans if not p.skip}
    for op in ("rms_norm", "fused_add_rms_norm", "dual_rms_norm"):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            assert (op, dtype) in checked
    passed = [r for r in report.results if r.outcome == "passed"]
    assert {r.check for r in passed} == {"numerics", "mutation"}
    # native has no predicate: the supports_args check says so instead of passing vacuously
    assert {r.message for r in by_check(report)["supports_args"]} == {
        "no supports_args: the impl accepts every call"
    }


def test_native_passes_opcheck():
    report = run(
        ["native"], ops=["rms_norm", "dual_rms_norm"], dtypes=[torch.bfloat16], checks=["opcheck"]
    )
    assert report.ok, [r.message for r in report.failures]
    assert len(by_check(report)["opcheck"]) >= 10


def test_installed_example_provider_passes_and_declined_samples_are_skipped():
    report = run(["example"], checks=FAST)
    assert report.ok, [r.message for r in report.failures]
    # the example kernel takes only 2-D contiguous inputs with a weight: the 3-D sample is
    # declined, which is a skip naming supports_args, not a failure
    three_d = [r for r in by_check(report)["numerics"] if r.sample == "3d"]
    assert three_d and all(r.outcome == "skipped" for r in three_d)
    assert "supports_args declined" in three_d[0].message


def test_wrong_values_fail_numerics_with_max_error_and_tolerance(provider):
    name = provider("off_by_one_percent", lambda *a: _native("rms_norm")(*a) * 1.01)
    report = run([name], dtypes=[torch.float32], checks=FAST)
    failures = by_check(report)["numerics"]
    assert failures and all(r.outcome == "failed" for r in failures if r.sample != "zero tokens")
    message = next(r.message for r in failures if r.sample == "2d h=1024")
    assert message.startswith("rms_norm-off_by_one_percent-cpu-float32 [2d h=1024]: output 0: ")
    assert "max error" in message and "tolerance atol=1e-05 rtol=1.3e-06" in message
    assert re.search(r"at \(\d+, \d+\): got [-\d.e]+, expected [-\d.e]+", message)
    # the values are wrong, the inputs untouched: only numerics fails
    assert all(r.outcome == "passed" for r in by_check(report)["mutation"])


def test_writing_into_an_input_fails_mutation_only(provider):
    def scribbles(x, *rest):
        out = _native("rms_norm")(x, *rest)
        x.zero_()
        return out

    name = provider("scribbler", scribbles)
    report = run([name], dtypes=[torch.bfloat16], checks=FAST)
    mutation = [r for r in by_check(report)["mutation"] if r.sample == "3d"]
    assert mutation[0].outcome == "failed"
    assert "wrote into input x" in mutation[0].message
    assert all(r.outcome == "passed" for r in by_check(report)["numerics"])


def test_a_dtype_declined_entirely_is_not_claimed_and_not_a_failure(provider):
    name = provider(
        "no_half",
        lambda *a: _native("rms_norm")(*a),
        supports=lambda x, *rest: x.dtype != torch.float16,
    )
    report = run([name], checks=FAST)
    assert report.ok
    skipped = {p.target.dtype: p.skip for p in report.plans if p.skip}
    assert list(skipped) == [torch.float16]
    assert skipped[torch.float16].startswith("not claimed: supports_args declined all")
    assert {p.target.dtype for p in report.plans if not p.skip} == {torch.float32, torch.bfloat16}


@pytest.mark.parametrize(
    "predicate, words",
    [
        # branches on the token count: a guard on the symbolic size
        (lambda x, *r: bool(x.shape[0] > 2), ["added guard(s)", "number of tokens"]),
        # compares the token count without branching: a SymBool escapes
        (lambda x, *r: x.shape[0] % 2 == 1, ["returned SymBool, not bool"]),
        # reads values: returns a tensor, not a bool, and cannot run on FakeTensors sensibly
        (lambda x, *r: x.abs().max() < 100, ["on real tensors it returned Tensor, not bool"]),
        # a truthy non-bool
        (lambda x, *r: 1 if x.dtype == torch.float32 else 0, ["returned int, not bool"]),
    ],
    ids=["token-count-guard", "token-count-symbool", "tensor-values", "int"],
)
def test_supports_args_must_be_a_plain_guard_free_bool(provider, predicate, words):
    name = provider("picky", lambda *a: _native("rms_norm")(*a), supports=predicate)
    (target,) = plan(name, dtypes=[torch.float32])
    case = next(c for c in target.cases if c.label == "2d h=8")
    with pytest.raises(AssertionError) as info:
        check_supports_args(case)
    for word in words:
        assert word in str(info.value)
    assert "rms_norm-picky-cpu-float32 [2d h=8]" in str(info.value)


def test_supports_args_on_hidden_size_and_strides_is_fine(provider):
    """H stays static and row pitches of split buffers stay static: asking about them adds
    no guard."""
    name = provider(
        "wide_rows",
        lambda *a: _native("rms_norm")(*a),
        supports=lambda x, *r: x.shape[-1] % 8 == 0 and x.stride(-1) == 1 and x.dim() == 2,
    )
    report = run([name], dtypes=[torch.float32], checks=["supports_args"])
    assert report.ok, [r.message for r in report.failures]
    assert len(report.results) == len(plan(name, dtypes=[torch.float32])[0].cases)


def test_supports_args_check_is_skipped_without_a_predicate():
    (target,) = plan("native", ops=["rms_norm"], dtypes=[torch.float32])
    with pytest.raises(CheckSkipped, match="no supports_args"):
        check_supports_args(target.cases[0])


def test_other_strides_than_native_fail_opcheck(provider):
    def column_major(*args):
        out = _native("rms_norm")(*args)
        return out.t().contiguous().t() if out.dim() == 2 else out

    name = provider("colmajor", column_major)
    report = run([name], dtypes=[torch.float32], checks=["numerics", "opcheck"])
    assert all(r.outcome == "passed" for r in by_check(report)["numerics"])
    failed = [r for r in by_check(report)["opcheck"] if r.sample == "2d h=8"]
    assert failed[0].outcome == "failed"
    assert "test_faketensor" in failed[0].message and "Stride mismatch" in failed[0].message


def test_an_impl_that_raises_on_a_claimed_sample_fails(provider):
    def broken(*args):
        raise RuntimeError("kernel launch failed")

    name = provider("crashy", broken)
    report = run([name], dtypes=[torch.float32], checks=["numerics"])
    assert not report.ok
    assert "raised RuntimeError: kernel launch failed" in report.failures[0].message


def test_unavailable_and_absent_devices_are_reported_not_failed(plugin):
    def register_impls(registry):
        registry.register_impl(
            "rms_norm",
            "gone",
            rms_norm_signature(lambda *a: _native("rms_norm")(*a)),
            device_types=("cpu",),
            available=lambda: (False, "libgone.so not found"),
        )
        registry.register_impl(
            "rms_norm",
            "elsewhere",
            rms_norm_signature(lambda *a: _native("rms_norm")(*a)),
            device_types=("npu",),
        )

    plugin(register_impls=register_impls)
    report = run(["gone", "elsewhere"])
    assert report.ok and not report.results
    reasons = {p.target.provider: p.skip for p in report.plans}
    assert reasons["gone"] == "unavailable: libgone.so not found"
    assert reasons["elsewhere"] == "no npu device on this machine"


def test_unknown_names_are_key_errors_listing_the_known_ones():
    with pytest.raises(KeyError, match="unknown provider 'nosuch'; known providers: native"):
        run(["nosuch"])
    with pytest.raises(KeyError, match="unknown op 'layer_norm'"):
        run(["native"], ops=["layer_norm"])
    with pytest.raises(KeyError, match="unknown check 'speed'"):
        run(["native"], checks=["speed"])


def test_quick_mode_runs_few_samples_and_only_cheap_checks():
    report = run(["native"], ops=["rms_norm"], dtypes=[torch.float32], quick=True)
    assert set(report.checks) == set(FAST)
    labels = [c.label for c in plan("native", ops=["rms_norm"], dtypes=[torch.float32])[0].cases]
    sampled = {r.sample for r in report.results}
    assert len(labels) > 3 and len(sampled) == 3
    assert {labels[0], labels[-1]} <= sampled  # spread over the list, ends included


def test_report_json_shape():
    report = run(["native"], ops=["dual_rms_norm"], dtypes=[torch.float32], checks=["numerics"])
    data = report.to_dict()
    assert data["ok"] is True and data["counts"]["passed"] == 4
    (row,) = data["targets"]
    assert row["op"] == "dual_rms_norm" and row["dtype"] == "float32" and row["status"] == "passed"
    assert row["checks"]["numerics"] == {"passed": 4, "failed": 0, "skipped": 0}
    assert set(CHECK_NAMES) == {
        "numerics",
        "mutation",
        "supports_args",
        "capabilities",
        "opcheck",
        "compile",
    }


def test_compile_lowers_to_the_provider_and_matches_native():
    report = run(["example"], dtypes=[torch.float32], checks=["compile"])
    (result,) = report.results
    assert result.outcome == "passed", result.message


def test_compile_catches_a_wrong_kernel_in_the_compiled_graph(provider):
    name = provider("half_off", lambda *a: _native("rms_norm")(*a) + 0.5)
    (result,) = run([name], dtypes=[torch.float32], checks=["compile"]).results
    assert result.outcome == "failed"
    assert result.message.startswith("rms_norm-half_off-cpu-float32 [")
    assert " compiled: output 0: " in result.message and "max error 0.5" in result.message
