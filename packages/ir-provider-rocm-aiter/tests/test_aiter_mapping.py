"""What AITER receives for each op, per AITER API generation, with a recorder in its place.

The ``call_*`` functions take the probed API as an argument, so these tests run anywhere: the
recorder (``recording_aiter.build``) has the real entry points' parameter names, records each
call and computes the result with torch, so the outputs are also compared with native.
"""

from __future__ import annotations

import pytest
import torch
from recording_aiter import GENERATIONS, build

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_rocm_aiter import aiter_norm

EPS = 1e-6
BF16 = torch.bfloat16


def _api(generation: str):
    rec = build(generation)
    return rec, aiter_norm.probe(rec, generation)


def _t(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.float32).to(dtype)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# -- probing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "gemma", "dual_form"),
    [
        ("0.1.13", False, aiter_norm.DUAL_LEGACY),
        ("0.1.16", False, aiter_norm.DUAL_UNIFIED),
        ("0.1.17", True, aiter_norm.DUAL_UNIFIED),
        ("private-only", False, aiter_norm.DUAL_PRIVATE),
    ],
)
def test_probe_reads_each_generation(generation: str, gemma: bool, dual_form: str) -> None:
    rec, api = _api(generation)
    assert api.rms_norm is rec.rms_norm
    assert api.fused_add is rec.rmsnorm2d_fwd_with_add
    assert api.fused_add_gemma is gemma
    assert (api.gemma_rms_norm is rec.rmsnorm) if gemma else api.gemma_rms_norm is None
    assert api.dual_form == dual_form and api.dual is not None
    assert api.any_hidden is False


def test_probe_reads_the_opus_backend() -> None:
    assert aiter_norm.probe(build("0.1.17", opus="sole")).any_hidden is True
    assert aiter_norm.probe(build("0.1.17", opus="opus")).any_hidden is True
    assert aiter_norm.probe(build("0.1.17", opus="ck")).any_hidden is False


def test_probe_of_an_unrelated_module_finds_nothing() -> None:
    # PyPI's "aiter" is an async-iterator library: same import name, none of the kernels.
    api = aiter_norm.probe(object(), "0.13")
    assert api.rms_norm is None and api.fused_add is None and api.dual is None


# -- rms_norm --------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", GENERATIONS)
def test_rms_norm_weight_bias_0_calls_rms_norm(generation: str) -> None:
    rec, api = _api(generation)
    x, w = _t(2, 3, 64), _t(64)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 0.0)
    call = rec.only_call
    assert call.name == "rms_norm" and call.kwargs == {}
    x2d, weight, eps = call.args
    assert x2d.shape == (6, 64) and x2d.is_contiguous() and torch.equal(x2d, x.reshape(6, 64))
    assert weight is w and eps == EPS
    assert out.shape == x.shape
    torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, EPS))


def test_rms_norm_weight_bias_1_calls_rmsnorm_with_gemma_norm() -> None:
    rec, api = _api("0.1.17")
    x, w = _t(4, 64), _t(64)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 1.0)
    call = rec.only_call
    assert call.name == "rmsnorm" and call.kwargs == {}
    out_arg, x2d, weight, eps, gemma_norm = call.args
    assert gemma_norm is True and weight is w and eps == EPS and torch.equal(x2d, x)
    assert _same_memory(out_arg, out) and not _same_memory(out, x)
    native = ir_core.get_op("rms_norm").native(x, w, EPS, weight_bias=1.0)
    torch.testing.assert_close(out, native)


def test_rms_norm_non_contiguous_input_is_copied_once_to_rows() -> None:
    rec, api = _api("0.1.16")
    x = _t(64, 8).t()  # (8, 64), last-dim stride 8
    aiter_norm.call_rms_norm(api, x, _t(64), EPS, 0.0)
    x2d = rec.only_call.args[0]
    assert x2d.is_contiguous() and torch.equal(x2d, x)


def test_rms_norm_zero_tokens_does_not_call_aiter() -> None:
    rec, api = _api("0.1.17")
    out = aiter_norm.call_rms_norm(api, _t(0, 64), _t(64), EPS, 0.0)
    assert out.shape == (0, 64) and rec.calls == []


# -- fused_add_rms_norm ----------------------------------------------------------------------


@pytest.mark.parametrize("generation", GENERATIONS)
def test_fused_add_weight_bias_0_positional_without_gemma(generation: str) -> None:
    rec, api = _api(generation)
    x, r, w = _t(2, 3, 64), _t(2, 3, 64), _t(64)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = aiter_norm.call_fused_add_rms_norm(api, x, r, w, EPS, 0.0)
    call = rec.only_call
    assert call.name == "rmsnorm2d_fwd_with_add"
    # No keyword at all: the 7th positional slot changed meaning in 0.1.17.
    assert call.kwargs == {}
    out_arg, x2d, r2d, res_out_arg, weight, eps = call.args
    assert torch.equal(x2d, x.reshape(6, 64)) and torch.equal(r2d, r.reshape(6, 64))
    assert _same_memory(out_arg, out) and _same_memory(res_out_arg, residual_out)
    assert weight is w and eps == EPS
    assert torch.equal(x, x0) and torch.equal(r, r0)
    native_out, native_res = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native_out)
    torch.testing.assert_close(residual_out, native_res)


def test_fused_add_weight_bias_1_passes_gemma_norm_by_keyword() -> None:
    rec, api = _api("0.1.17")
    x, r, w = _t(4, 64), _t(4, 64), _t(64)
    out, residual_out = aiter_norm.call_fused_add_rms_norm(api, x, r, w, EPS, 1.0)
    call = rec.only_call
    assert call.kwargs == {"gemma_norm": True} and len(call.args) == 6
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS, weight_bias=1.0)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_fused_add_outputs_are_new_tensors() -> None:
    _, api = _api("0.1.17")
    x, r = _t(4, 64), _t(4, 64)
    out, residual_out = aiter_norm.call_fused_add_rms_norm(api, x, r, _t(64), EPS, 0.0)
    assert not any(_same_memory(o, i) for o in (out, residual_out) for i in (x, r))


# -- dual_rms_norm ---------------------------------------------------------------------------


def _dual_inputs() -> tuple[torch.Tensor, ...]:
    return _t(5, 1536), _t(1536), _t(5, 512), _t(512)


def _check_dual(out: tuple[torch.Tensor, torch.Tensor], a, aw, b, bw) -> None:
    native = ir_core.get_op("dual_rms_norm").native(a, aw, b, bw, EPS, 2 * EPS)
    torch.testing.assert_close(out[0], native[0])
    torch.testing.assert_close(out[1], native[1])


@pytest.mark.parametrize("generation", ["0.1.16", "0.1.17"])
def test_dual_unified_form_by_keyword_with_out_params(generation: str) -> None:
    rec, api = _api(generation)
    a, aw, b, bw = _dual_inputs()
    out = aiter_norm.call_dual_rms_norm(api, a, aw, b, bw, EPS, 2 * EPS)
    call = rec.only_call
    assert call.name == "fused_qk_rmsnorm" and call.args == ()
    kw = call.kwargs
    # already 2-D contiguous: views of a and b, no copy
    assert kw["q"].data_ptr() == a.data_ptr() and kw["k"].data_ptr() == b.data_ptr()
    assert kw["q_weight"] is aw and kw["k_weight"] is bw
    assert kw["q_epsilon"] == EPS and kw["k_epsilon"] == 2 * EPS
    assert _same_memory(kw["q_out_quantized"], out[0]) and _same_memory(kw["k_out"], out[1])
    _check_dual(out, a, aw, b, bw)


def test_dual_legacy_form_gets_copies_because_it_may_work_in_place() -> None:
    rec, api = _api("0.1.13")
    a, aw, b, bw = _dual_inputs()
    a0, b0 = a.clone(), b.clone()
    out = aiter_norm.call_dual_rms_norm(api, a, aw, b, bw, EPS, 2 * EPS)
    call = rec.only_call
    q, q_weight, q_eps, k, k_weight, k_eps = call.args
    assert not _same_memory(q, a) and not _same_memory(k, b)
    assert (q_weight, q_eps, k_weight, k_eps) == (aw, EPS, bw, 2 * EPS)
    assert torch.equal(a, a0) and torch.equal(b, b0)  # the recorder normalised its copies
    _check_dual(out, a, aw, b, bw)


def test_dual_private_form_positional_out_params() -> None:
    rec, api = _api("private-only")
    a, aw, b, bw = _dual_inputs()
    out = aiter_norm.call_dual_rms_norm(api, a, aw, b, bw, EPS, 2 * EPS)
    call = rec.only_call
    assert call.name == "_fused_qk_rmsnorm"
    q_out, q, q_weight, q_eps, k_out, k, k_weight, k_eps = call.args
    assert q.data_ptr() == a.data_ptr() and k.data_ptr() == b.data_ptr()
    assert (q_weight, q_eps, k_weight, k_eps) == (aw, EPS, bw, 2 * EPS)
    assert _same_memory(q_out, out[0]) and _same_memory(k_out, out[1])
    _check_dual(out, a, aw, b, bw)


def test_dual_3d_inputs_are_viewed_as_rows() -> None:
    rec, api = _api("0.1.17")
    a, aw, b, bw = _t(2, 3, 128), _t(128), _t(2, 3, 64), _t(64)
    out = aiter_norm.call_dual_rms_norm(api, a, aw, b, bw, EPS, EPS)
    assert rec.only_call.kwargs["q"].shape == (6, 128)
    assert out[0].shape == a.shape and out[1].shape == b.shape


# -- the recorders honour the op contract end to end ------------------------------------------


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_mapping_matches_native_on_the_op_samples(generation: str, dtype: torch.dtype) -> None:
    """Every sample the op catalogue ships that supports_args admits: matched and unmutated."""
    _, api = _api(generation)
    for op_name, call, supported in (
        (
            "rms_norm",
            lambda x, w, e, wb=0.0, vs=None: aiter_norm.call_rms_norm(api, x, w, e, wb),
            lambda x, w, e, wb=0.0, vs=None: aiter_norm.rms_norm_supported(api, x, w, wb, vs),
        ),
        (
            "fused_add_rms_norm",
            lambda x, r, w, e, wb=0.0, vs=None: aiter_norm.call_fused_add_rms_norm(
                api, x, r, w, e, wb
            ),
            lambda x, r, w, e, wb=0.0, vs=None: aiter_norm.fused_add_rms_norm_supported(
                api, x, r, w, wb, vs
            ),
        ),
        (
            "dual_rms_norm",
            lambda *args: aiter_norm.call_dual_rms_norm(api, *args),
            lambda a, aw, b, bw, ae, be: aiter_norm.dual_rms_norm_supported(a, aw, b, bw),
        ),
    ):
        op = ir_core.get_op(op_name)
        admitted = 0
        for sample in op.sample_inputs(dtype):
            args = op.bind(sample.args, sample.kwargs)
            if supported(*args):
                admitted += 1
                assert_matches_native(op, lambda *a, call=call: call(*a), ir_core.Sample(args))
        assert admitted > 0, f"{op_name}: no sample admitted"
