"""What AITER receives for the norms, per release generation, with ``recording_aiter`` in its
place: which function serves which hidden size (the CK/HIP split), Gemma, CK-free builds, and
the results against native on the op catalogue's samples."""

from __future__ import annotations

import pytest
import torch
from helpers import EPS, e, matches_native_on_samples, probe, same_memory, t
from recording_aiter import GENERATIONS, build

import ir_core
from ir_provider_rocm_aiter import aiter_norm
from ir_provider_rocm_aiter.aiter_api import MODULE_NORM

BF16 = torch.bfloat16


def _native_rms(x, w, wb=0.0):
    return ir_core.get_op("rms_norm").native(x, w, EPS, weight_bias=wb)


# -- rms_norm ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "hidden", "calls"),
    [
        # up to 0.1.17 aiter.rms_norm is the CK kernel for every hidden size
        ("0.1.13", 4096, ["rms_norm"]),
        ("0.1.17", 16384, ["rms_norm"]),
        # from 0.1.18 it dispatches: HIP for rows up to 8192, opus above
        ("0.1.18", 4096, ["rms_norm", "rmsnorm"]),
        ("0.1.18", 16384, ["rms_norm", "rms_norm_opus"]),
    ],
)
def test_rms_norm_calls_aiter_rms_norm(generation: str, hidden: int, calls: list[str]) -> None:
    rec = build(generation)
    api = probe(rec)
    x, w = t(2, 3, hidden), t(hidden)
    assert aiter_norm.rms_norm_supported(api, x, w, 0.0, None)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 0.0)
    assert rec.names == calls
    x2d, weight, eps = rec.first_call.args[:3]
    assert x2d.shape == (6, hidden) and x2d.is_contiguous() and torch.equal(x2d, x.reshape(6, -1))
    assert weight is w and eps == EPS
    torch.testing.assert_close(out, _native_rms(x, w))


def test_ck_rms_norm_has_no_8192_limit() -> None:
    # the HIP limit belongs to rmsnorm2d_fwd's split, not to the CK rms_norm (AITER 0.1.16)
    api = probe(build("0.1.16"))
    assert aiter_norm.rms_norm_supported(api, e(2, 16384), e(16384), 0.0, None)
    assert aiter_norm.rms_norm_supported(api, e(2, 65536), e(65536), 0.0, None)


def test_gemma_rms_norm_0_1_17_is_the_hip_rmsnorm_up_to_8192() -> None:
    rec = build("0.1.17")
    api = probe(rec)
    x, w = t(4, 64), t(64)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 1.0)
    (call,) = rec.calls
    assert call.name == "rmsnorm"
    out_arg, x2d, weight, eps, gemma_norm = call.args  # through the op: all positional
    assert eps == EPS
    assert gemma_norm is True and weight is w and torch.equal(x2d, x)
    assert same_memory(out_arg, out) and not same_memory(out, x)
    torch.testing.assert_close(out, _native_rms(x, w, 1.0))
    assert aiter_norm.rms_norm_supported(api, e(2, 8192), e(8192), 1.0, None)
    assert not aiter_norm.rms_norm_supported(api, e(2, 8193), e(8193), 1.0, None)


def test_gemma_rms_norm_0_1_18_is_opus_for_every_hidden_size() -> None:
    rec = build("0.1.18")
    api = probe(rec)
    x, w = t(2, 12288), t(12288)
    assert aiter_norm.rms_norm_supported(api, x, w, 1.0, None)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 1.0)
    (call,) = rec.calls
    assert call.name == "rms_norm_opus" and call.kwargs == {"gemma_norm": True}
    torch.testing.assert_close(out, _native_rms(x, w, 1.0))


@pytest.mark.parametrize("generation", ["0.1.13", "0.1.16"])
def test_no_gemma_before_0_1_17(generation: str) -> None:
    api = probe(build(generation))
    assert not aiter_norm.rms_norm_supported(api, e(4, 64), e(64), 1.0, None)
    assert not aiter_norm.fused_add_rms_norm_supported(api, e(4, 64), e(4, 64), e(64), 1.0, None)


RMS_DECLINED = [
    ("fp32: no AITER kernel", (e(8, 64, dtype=torch.float32), e(64, dtype=torch.float32)), 0.0,
     None),
    ("fp32 weight with bf16 x", (e(8, 64), e(64, dtype=torch.float32)), 0.0, None),
    ("weight None", (e(8, 64), None), 0.0, None),
    ("variance_size < H", (e(8, 64), e(64)), 0.0, 32),
    ("weight_bias 0.5", (e(8, 64), e(64)), 0.5, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "wb", "vs"), [c[1:] for c in RMS_DECLINED], ids=[c[0] for c in RMS_DECLINED]
)
def test_rms_norm_declines(args, wb, vs) -> None:
    api = probe(build("0.1.18"))
    assert not aiter_norm.rms_norm_supported(api, *args, wb, vs)


def test_nothing_is_supported_before_aiter_loaded() -> None:
    assert not aiter_norm.rms_norm_supported(None, e(8, 64), e(64), 0.0, None)


def test_rms_norm_non_contiguous_input_is_copied_once_to_rows() -> None:
    rec = build("0.1.16")
    x = t(64, 8).t()  # (8, 64), last-dim stride 8
    aiter_norm.call_rms_norm(probe(rec), x, t(64), EPS, 0.0)
    x2d = rec.first_call.args[0]
    assert x2d.is_contiguous() and torch.equal(x2d, x)


def test_rms_norm_zero_tokens_does_not_call_aiter() -> None:
    rec = build("0.1.17")
    out = aiter_norm.call_rms_norm(probe(rec), t(0, 64), t(64), EPS, 0.0)
    assert out.shape == (0, 64) and rec.calls == []


# -- builds without CK ---------------------------------------------------------------------------


def test_ck_free_ck_generation_reports_rms_norm_unavailable() -> None:
    rec = build("0.1.16", ck=False)
    api = probe(rec)
    reason = aiter_norm.problem_rms_norm(api)
    assert reason is not None and "aiter.rms_norm" in reason and MODULE_NORM in reason
    assert "built without CK" in reason
    assert aiter_norm.problem_fused_add_rms_norm(api) is not None
    assert aiter_norm.problem_dual_rms_norm(api) is not None
    assert not aiter_norm.rms_norm_supported(api, e(4, 64), e(64), 0.0, None)


def test_ck_free_opus_generation_runs_every_norm_on_opus() -> None:
    rec = build("0.1.18", ck=False)
    api = probe(rec)
    assert aiter_norm.problem_rms_norm(api) is None
    x, r, w = t(4, 4096), t(4, 4096), t(4096)
    out = aiter_norm.call_rms_norm(api, x, w, EPS, 0.0)
    out2, res = aiter_norm.call_fused_add_rms_norm(api, x, r, w, EPS, 0.0)
    # rms_norm would send these rows to the HIP module, which a CK-free build lacks
    assert rec.names == ["rms_norm_opus", "rmsnorm2d_fwd_with_add_opus"]
    torch.testing.assert_close(out, _native_rms(x, w))
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out2, native[0])
    torch.testing.assert_close(res, native[1])


def test_ck_module_without_hip_serves_only_wide_fused_adds() -> None:
    api = probe(build("0.1.16", ck=False, prebuilt=frozenset({MODULE_NORM})))
    ok = aiter_norm.fused_add_rms_norm_supported
    assert not ok(api, e(2, 4096), e(2, 4096), e(4096), 0.0, None)  # HIP add_rmsnorm
    assert ok(api, e(2, 16384), e(2, 16384), e(16384), 0.0, None)  # CK
    assert aiter_norm.problem_fused_add_rms_norm(api) is None


# -- fused_add_rms_norm --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "hidden", "kernel"),
    [("0.1.16", 4096, "add_rmsnorm"), ("0.1.16", 16384, "rmsnorm2d_fwd_with_add_ck"),
     ("0.1.18", 4096, "add_rmsnorm"), ("0.1.18", 16384, "rmsnorm2d_fwd_with_add_opus")],
)  # fmt: skip
def test_fused_add_positional_without_gemma(generation: str, hidden: int, kernel: str) -> None:
    rec = build(generation)
    x, r, w = t(2, 3, hidden), t(2, 3, hidden), t(hidden)
    x0, r0 = x.clone(), r.clone()
    out, residual_out = aiter_norm.call_fused_add_rms_norm(probe(rec), x, r, w, EPS, 0.0)
    assert rec.names == ["rmsnorm2d_fwd_with_add", kernel]
    call = rec.first_call
    # no keyword at all: the 7th positional slot changed meaning in 0.1.17
    assert call.kwargs == {} and len(call.args) in (6, 8)  # plain, or the op's full schema
    out_arg, x2d, r2d, res_out_arg, weight, eps = call.args[:6]
    assert torch.equal(x2d, x.reshape(6, -1)) and torch.equal(r2d, r.reshape(6, -1))
    assert same_memory(out_arg, out) and same_memory(res_out_arg, residual_out)
    assert weight is w and eps == EPS and torch.equal(x, x0) and torch.equal(r, r0)
    native_out, native_res = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS)
    torch.testing.assert_close(out, native_out)
    torch.testing.assert_close(residual_out, native_res)


def test_fused_add_gemma_by_keyword_on_the_plain_0_1_17_dispatcher() -> None:
    rec = build("0.1.17")
    x, r, w = t(4, 64), t(4, 64), t(64)
    out, residual_out = aiter_norm.call_fused_add_rms_norm(probe(rec), x, r, w, EPS, 1.0)
    assert rec.first_call.kwargs == {"gemma_norm": True} and len(rec.first_call.args) == 6
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS, weight_bias=1.0)
    torch.testing.assert_close(out, native[0])
    torch.testing.assert_close(residual_out, native[1])


def test_fused_add_gemma_above_8192_on_0_1_17_would_be_wrong() -> None:
    """Why it is declined: the CK path above 8192 drops gemma_norm (AITER 0.1.17)."""
    rec = build("0.1.17")
    api = probe(rec)
    x, r, w = t(2, 8200), t(2, 8200), t(8200)
    assert not aiter_norm.fused_add_rms_norm_supported(api, x, r, w, 1.0, None)
    out, res_out = torch.empty_like(x), torch.empty_like(r)
    rec.rmsnorm2d_fwd_with_add(out, x, r, res_out, w, EPS, gemma_norm=True)
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS, weight_bias=1.0)
    assert rec.names[-1] == "rmsnorm2d_fwd_with_add_ck"
    assert not torch.allclose(out.float(), native[0].float(), atol=0.1)


def test_fused_add_gemma_on_0_1_18_goes_through_the_op_schema_for_any_hidden_size() -> None:
    rec = build("0.1.18")
    api = probe(rec)
    x, r, w = t(2, 12288), t(2, 12288), t(12288)
    assert aiter_norm.fused_add_rms_norm_supported(api, x, r, w, 1.0, None)
    out, _ = aiter_norm.call_fused_add_rms_norm(api, x, r, w, EPS, 1.0)
    assert rec.calls[0].args[6] is True  # gemma_norm, bound by the op's schema
    assert rec.calls[1].name == "rmsnorm2d_fwd_with_add_opus"
    native = ir_core.get_op("fused_add_rms_norm").native(x, r, w, EPS, weight_bias=1.0)
    torch.testing.assert_close(out, native[0])


def test_fused_add_declines_residual_of_another_shape_or_dtype() -> None:
    api = probe(build("0.1.18"))
    ok = aiter_norm.fused_add_rms_norm_supported
    assert ok(api, e(8, 64), e(8, 64), e(64), 0.0, None)
    assert not ok(api, e(8, 64), e(8, 64, dtype=torch.float32), e(64), 0.0, None)
    assert not ok(api, e(8, 64), e(4, 64), e(64), 0.0, None)


# -- dual_rms_norm -----------------------------------------------------------------------------


def _dual_inputs() -> tuple[torch.Tensor, ...]:
    return t(5, 1536), t(1536), t(5, 512), t(512)


def _check_dual(out, a, aw, b, bw) -> None:
    native = ir_core.get_op("dual_rms_norm").native(a, aw, b, bw, EPS, 2 * EPS)
    torch.testing.assert_close(out[0], native[0])
    torch.testing.assert_close(out[1], native[1])


@pytest.mark.parametrize("generation", ["0.1.16", "0.1.18"])
def test_dual_unified_form_by_keyword_with_out_params(generation: str) -> None:
    rec = build(generation)
    a, aw, b, bw = _dual_inputs()
    out = aiter_norm.call_dual_rms_norm(probe(rec), a, aw, b, bw, EPS, 2 * EPS)
    call = rec.first_call
    assert call.name == "fused_qk_rmsnorm" and call.args == ()
    kw = call.kwargs
    assert kw["q"].data_ptr() == a.data_ptr() and kw["k"].data_ptr() == b.data_ptr()
    assert kw["q_weight"] is aw and kw["k_weight"] is bw
    assert kw["q_epsilon"] == EPS and kw["k_epsilon"] == 2 * EPS
    assert same_memory(kw["q_out_quantized"], out[0]) and same_memory(kw["k_out"], out[1])
    _check_dual(out, a, aw, b, bw)


def test_dual_legacy_form_returns_new_tensors_and_gets_the_inputs_themselves() -> None:
    rec = build("0.1.13")
    a, aw, b, bw = _dual_inputs()
    a0, b0 = a.clone(), b.clone()
    out = aiter_norm.call_dual_rms_norm(probe(rec), a, aw, b, bw, EPS, 2 * EPS)
    q, q_weight, q_eps, k, k_weight, k_eps = rec.first_call.args
    assert q.data_ptr() == a.data_ptr() and k.data_ptr() == b.data_ptr()  # no copies
    assert (q_weight, q_eps, k_weight, k_eps) == (aw, EPS, bw, 2 * EPS)
    assert torch.equal(a, a0) and torch.equal(b, b0)
    _check_dual(out, a, aw, b, bw)


def test_dual_3d_inputs_are_viewed_as_rows() -> None:
    rec = build("0.1.17")
    a, aw, b, bw = t(2, 3, 128), t(128), t(2, 3, 64), t(64)
    out = aiter_norm.call_dual_rms_norm(probe(rec), a, aw, b, bw, EPS, EPS)
    assert rec.first_call.kwargs["q"].shape == (6, 128)
    assert out[0].shape == a.shape and out[1].shape == b.shape


def test_dual_supported() -> None:
    ok = aiter_norm.dual_rms_norm_supported
    assert ok(e(8, 1536), e(1536), e(8, 512), e(512))
    assert ok(e(2, 4, 8192), e(8192), e(2, 4, 64), e(64))
    assert not ok(e(8, 8193), e(8193), e(8, 512), e(512))  # the kernel's n limit
    assert not ok(e(8, 1536), e(1536), e(4, 512), e(512))  # different row counts
    assert not ok(e(8, 64), e(64), e(8, 64, dtype=torch.float16), e(64, dtype=torch.float16))


def test_supports_args_accept_fake_tensors() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    api = probe(build("0.1.17"))
    with FakeTensorMode():
        x, w = torch.empty(8, 4096, dtype=BF16), torch.empty(4096, dtype=BF16)
        assert aiter_norm.rms_norm_supported(api, x, w, 1.0, None) is True
        assert aiter_norm.dual_rms_norm_supported(x, w, x, w) is True


# -- the recorders honour the op contract end to end ---------------------------------------------


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_mapping_matches_native_on_the_op_samples(generation: str, dtype: torch.dtype) -> None:
    """Every sample the op catalogue ships that supports_args admits: matched and unmutated."""
    api = probe(build(generation))
    counts = {
        "rms_norm": matches_native_on_samples(
            "rms_norm",
            dtype,
            lambda x, w, eps, wb, vs: aiter_norm.rms_norm_supported(api, x, w, wb, vs),
            lambda x, w, eps, wb, vs: aiter_norm.call_rms_norm(api, x, w, eps, wb),
        ),
        "fused_add_rms_norm": matches_native_on_samples(
            "fused_add_rms_norm",
            dtype,
            lambda x, r, w, eps, wb, vs: aiter_norm.fused_add_rms_norm_supported(
                api, x, r, w, wb, vs
            ),
            lambda x, r, w, eps, wb, vs: aiter_norm.call_fused_add_rms_norm(api, x, r, w, eps, wb),
        ),
        "dual_rms_norm": matches_native_on_samples(
            "dual_rms_norm",
            dtype,
            lambda a, aw, b, bw, ae, be: aiter_norm.dual_rms_norm_supported(a, aw, b, bw),
            lambda *args: aiter_norm.call_dual_rms_norm(api, *args),
        ),
    }
    assert all(counts.values()), counts
