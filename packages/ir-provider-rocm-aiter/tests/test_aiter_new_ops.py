"""The gated activations, rotary embedding and fp8 quant ops against ``recording_aiter``:
what AITER receives, what is declined and why, and the results against native."""

from __future__ import annotations

import pytest
import torch
from helpers import EPS, e, matches_native_on_samples, probe, same_memory, t
from recording_aiter import GENERATIONS, build

import ir_core
from ir_core.catalogue.rotary import cos_sin_cache
from ir_core.testing import output_mismatches
from ir_provider_rocm_aiter import aiter_activations, aiter_quant, aiter_rotary
from ir_provider_rocm_aiter.aiter_api import MODULE_ACTIVATION

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
FNUZ, FN = torch.float8_e4m3fnuz, torch.float8_e4m3fn

# -- silu_and_mul / gelu_and_mul -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approximate", "entry"), [("none", "gelu_and_mul"), ("tanh", "gelu_tanh_and_mul")]
)
def test_gelu_picks_the_entry_point_of_its_approximation(approximate: str, entry: str) -> None:
    rec = build("0.1.18")
    x = t(3, 128)
    out = aiter_activations.call_gated(probe(rec), aiter_activations.GELU_ENTRIES[approximate], x)
    (call,) = rec.calls
    out_arg, x_arg = call.args
    assert call.name == entry and same_memory(out_arg, out) and x_arg.data_ptr() == x.data_ptr()
    native = ir_core.get_op("gelu_and_mul").native(x, approximate)
    torch.testing.assert_close(out, native)


def test_silu_and_mul_gets_a_contiguous_copy_of_strided_rows() -> None:
    rec = build("0.1.13")  # silu_and_mul(out, input), no limit yet
    buffer = t(4, 160)
    x = buffer[:, 8:136]  # the gate_up projection's output in a wider buffer
    out = aiter_activations.call_gated(probe(rec), "silu_and_mul", x)
    (call,) = rec.calls
    assert call.args[1].is_contiguous() and torch.equal(call.args[1], x)
    assert len(call.args) == 2  # no limit passed: the 0.1.13 schema has none
    torch.testing.assert_close(out, ir_core.get_op("silu_and_mul").native(x))


def test_limit_is_left_at_its_default() -> None:
    rec = build("0.1.16")
    aiter_activations.call_gated(probe(rec), "silu_and_mul", t(2, 64))
    # nothing passed for limit: the schema's default 0.0, no clamping
    assert len(rec.first_call.args) == 2 and rec.first_call.kwargs == {}


def test_odd_d_is_declined_for_16_bit_dtypes() -> None:
    # the kernel's 4-byte-rounded bounds write one element past a row of odd d
    assert not aiter_activations.gated_supported(e(3, 2 * 127))
    assert not aiter_activations.gated_supported(e(3, 2 * 127, dtype=torch.float16))
    assert aiter_activations.gated_supported(e(3, 2 * 127, dtype=torch.float32))
    assert aiter_activations.gated_supported(e(3, 2 * 128))
    assert not aiter_activations.gated_supported(e(3, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="odd d"):
        aiter_activations.call_gated(probe(build("0.1.18")), "silu_and_mul", t(3, 2 * 127))


def test_zero_tokens_do_not_reach_aiter() -> None:
    rec = build("0.1.18")
    out = aiter_activations.call_gated(probe(rec), "silu_and_mul", t(0, 64))
    assert out.shape == (0, 32) and rec.calls == []


def test_ck_free_build_reports_the_activation_module() -> None:
    api = probe(build("0.1.18", ck=False))
    reason = aiter_activations.problem_silu_and_mul(api)
    assert reason and MODULE_ACTIVATION in reason
    assert aiter_activations.problem_gelu_and_mul(api)
    assert aiter_activations.problem_silu_and_mul(probe(build("0.1.18"))) is None


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_activations_match_native_on_the_op_samples(generation: str, dtype: torch.dtype) -> None:
    api = probe(build(generation))
    silu = matches_native_on_samples(
        "silu_and_mul",
        dtype,
        aiter_activations.gated_supported,
        lambda x: aiter_activations.call_gated(api, "silu_and_mul", x),
    )
    gelu = matches_native_on_samples(
        "gelu_and_mul",
        dtype,
        lambda x, approximate: aiter_activations.gated_supported(x),
        lambda x, approximate: aiter_activations.call_gated(
            api, aiter_activations.GELU_ENTRIES[approximate], x
        ),
    )
    assert silu >= 5 and gelu >= 10


# -- rotary_embedding ----------------------------------------------------------------------------


def _rope():
    rec = build("0.1.18")
    return rec, rec.rope_module.rope_cached_thd_positions_2c_fwd


def test_rotary_maps_vllms_cache_onto_views_of_cos_and_sin() -> None:
    rec, rope = _rope()
    cache = cos_sin_cache(64, 64)
    positions = torch.tensor([3, 0, 17, 63])
    q, k = t(4, 4 * 64), t(4, 2 * 64)
    out_q, out_k = aiter_rotary.call_rotary_embedding(rope, positions, q, k, 64, cache, True)
    (call,) = rec.calls
    x, y, cos, sin, pos, style, reuse, nope_first = call.args
    assert x.shape == (4, 4, 64) and y.shape == (4, 2, 64)
    assert x.data_ptr() == q.data_ptr() and y.data_ptr() == k.data_ptr()  # views, no copy
    assert cos.data_ptr() == cache.data_ptr() and sin.data_ptr() == cache[:, 32:].data_ptr()
    assert pos is positions or pos.data_ptr() == positions.data_ptr()
    assert (style, reuse, nope_first) == (aiter_rotary.NEOX, True, False)
    native = ir_core.get_op("rotary_embedding").native(positions, q, k, 64, cache, True)
    torch.testing.assert_close(out_q, native[0])
    torch.testing.assert_close(out_k, native[1])


def test_a_16_bit_cache_is_gathered_and_widened() -> None:
    rec, rope = _rope()
    cache = cos_sin_cache(64, 32, torch.bfloat16)
    positions = torch.tensor([5, 9, 1])
    q, k = t(3, 2, 64), t(3, 1, 64)
    out = aiter_rotary.call_rotary_embedding(rope, positions, q, k, 64, cache, False)
    _, _, cos, _, pos, style, _, _ = rec.first_call.args
    assert cos.dtype == torch.float32 and cos.shape == (3, 16) and style == aiter_rotary.GPTJ
    assert torch.equal(pos, torch.arange(3))
    assert torch.equal(cos, cache[positions, :16].float())
    native = ir_core.get_op("rotary_embedding").native(positions, q, k, 64, cache, False)
    torch.testing.assert_close(out[0], native[0])
    torch.testing.assert_close(out[1], native[1])


ROPE_CASES = [
    ("full rotary", (64, 64), True),
    ("rot = D/2", (128, 64), True),
    ("rot = D/4: taken for full rotary by the kernel", (64, 16), False),
    ("D not a power of two", (96, 96), False),
    ("odd head_size", (33, 16), False),
]


@pytest.mark.parametrize(
    ("dims", "ok"), [c[1:] for c in ROPE_CASES], ids=[c[0] for c in ROPE_CASES]
)
def test_rotary_head_size_and_rot_dim(dims: tuple[int, int], ok: bool) -> None:
    d, rot = dims
    args = (e(4, dtype=torch.int64), e(4, 2 * d), e(4, d), d, e(8, rot, dtype=torch.float32))
    assert aiter_rotary.rotary_supported(*args) is ok


def test_rot_quarter_would_read_past_the_cache() -> None:
    """Why rot = D/4 is declined: the kernel treats it as full rotary."""
    _, rope = _rope()
    cache = cos_sin_cache(8, 16)
    with pytest.raises(AssertionError, match="garbage"):
        aiter_rotary.call_rotary_embedding(rope, torch.zeros(2, dtype=torch.long), t(2, 64),
                                           t(2, 64), 64, cache, True)  # fmt: skip


def test_rotary_declines_mixed_dtypes_and_uneven_gqa() -> None:
    pos, cache = e(4, dtype=torch.int64), e(8, 64, dtype=torch.float32)
    ok = aiter_rotary.rotary_supported
    assert not ok(pos, e(4, 128), e(4, 64, dtype=torch.float16), 64, cache)
    assert not ok(pos, e(4, 3 * 64), e(4, 2 * 64), 64, cache)  # 3 q heads over 2 k heads
    assert ok(pos, e(4, 4 * 64), e(4, 2 * 64), 64, cache)
    assert ok(e(4, dtype=torch.int32), e(4, 64), e(4, 64), 64, cache)
    assert not ok(e(4, dtype=torch.int16), e(4, 64), e(4, 64), 64, cache)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rotary_matches_native_on_the_op_samples(dtype: torch.dtype) -> None:
    _, rope = _rope()
    admitted = matches_native_on_samples(
        "rotary_embedding",
        dtype,
        lambda p, q, k, hs, c, neox: aiter_rotary.rotary_supported(p, q, k, hs, c),
        lambda *args: aiter_rotary.call_rotary_embedding(rope, *args),
    )
    assert admitted >= 8


def test_rotary_availability_needs_the_triton_module() -> None:
    def failing(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}")

    fn, reason = aiter_rotary.load_rope(failing)
    assert fn is None and reason  # AITER itself is not installed here: that reason first


# -- fp8 quant ---------------------------------------------------------------------------------


def test_static_quant_writes_the_gpus_fp8_dtype_only() -> None:
    gfx942, gfx950 = probe(build("0.1.18")), probe(build("0.1.18", arch="gfx950"))
    x = e(4, 64)
    ok = aiter_quant.fp8_quant_static_supported
    assert ok(gfx942, x, FNUZ) and not ok(gfx942, x, FN)
    assert ok(gfx950, x, FN) and not ok(gfx950, x, FNUZ)
    assert not ok(gfx942, e(4, 64, dtype=torch.float32), FNUZ)  # fp16/bf16 input only
    assert not ok(None, x, FNUZ)


def test_static_quant_mapping() -> None:
    rec = build("0.1.16")
    x, scale = t(3, 5, 64), torch.tensor(0.02)
    q = aiter_quant.call_fp8_quant_static(probe(rec), x, scale, FNUZ)
    (call,) = rec.calls
    out, x2d, s = call.args
    assert same_memory(out, q) and x2d.shape == (15, 64) and s.shape == (1,)
    op = ir_core.get_op("fp8_quant_static")
    problems = output_mismatches(op, (q,), (op.native(x, scale, FNUZ),), (x, scale, FNUZ))
    assert problems == []


def test_group_quant_column_major_scales_are_the_ops_layout() -> None:
    rec = build("0.1.18")
    x = t(2, 3, 256)
    _, scale = aiter_quant.call_fp8_quant_group(probe(rec), x, 64, True, FNUZ)
    assert rec.names == ["per_group_quant_hip", "dynamic_per_token_scaled_quant"]
    _, native_scale = ir_core.get_op("fp8_quant_group").native(
        x, 64, column_major_scales=True, dtype=FNUZ
    )
    assert scale.shape == native_scale.shape and scale.stride() == native_scale.stride()
    torch.testing.assert_close(scale, native_scale, rtol=1e-5, atol=0)


def test_group_quant_declines() -> None:
    api = probe(build("0.1.18"))
    ok = aiter_quant.fp8_quant_group_supported
    x = e(4, 256)
    assert (
        ok(api, x, 128, False, FNUZ) and ok(api, x, 64, False, FNUZ) and ok(api, x, 32, False, FNUZ)
    )
    assert not ok(api, x, 256, False, FNUZ) and not ok(api, x, 16, False, FNUZ)
    assert not ok(api, x, 128, True, FNUZ)  # ue8m0 scales: AITER's fp32 scales are not rounded
    assert not ok(api, x.float(), 128, False, FNUZ)


@pytest.mark.parametrize(
    ("hidden", "group", "ok"),
    [(2048, 128, True), (4096, 128, True), (6144, 128, False), (6144, 96, True),
     (8192, 128, True), (8192, 16, False), (512, 8, True), (512, 1024, False),
     (16384, 128, False)],
)  # fmt: skip
def test_hip_norm_quant_group_sizes(hidden: int, group: int, ok: bool) -> None:
    assert aiter_quant.hip_group_ok(hidden, group) is ok


def test_the_hip_kernel_refuses_what_hip_group_ok_declines() -> None:
    rec = build("0.1.17")
    x, w = t(2, 6144), t(6144)
    with pytest.raises(RuntimeError, match="group_size not support"):
        aiter_quant.call_rms_norm_fp8_quant_group(probe(rec), x, w, EPS, 128, False, FNUZ)


def test_rms_norm_group_quant_mapping() -> None:
    rec = build("0.1.17")
    x, w = t(3, 256), t(256)
    _, scale = aiter_quant.call_rms_norm_fp8_quant_group(probe(rec), x, w, EPS, 128, True, FNUZ)
    call = rec.first_call
    assert call.name == "rmsnorm2d_fwd_with_dynamicquant"
    assert call.kwargs == {"group_size": 128, "shuffle_scale": True}
    _, native_scale = ir_core.get_op("rms_norm_fp8_quant_group").native(
        x, w, EPS, 128, column_major_scales=True, dtype=FNUZ
    )
    assert scale.stride() == native_scale.stride()
    torch.testing.assert_close(scale, native_scale, rtol=1e-5, atol=0)


def test_rms_norm_group_quant_declines() -> None:
    api = probe(build("0.1.18"))
    ok = aiter_quant.rms_norm_fp8_quant_group_supported
    x, w = e(4, 256), e(256)
    assert ok(api, x, w, 128, 0.0, False, FNUZ)
    assert not ok(api, x, w, 128, 1.0, False, FNUZ)  # no Gemma on the quant path
    assert not ok(api, x, w, 128, 0.0, True, FNUZ)  # no ue8m0 rounding
    assert not ok(api, x, None, 128, 0.0, False, FNUZ)
    assert not ok(api, x, w, 128, 0.0, False, FN)  # not this GPU's fp8
    assert not ok(probe(build("0.1.18", ck=False)), x, w, 128, 0.0, False, FNUZ)


@pytest.mark.parametrize("arch", ["gfx942", "gfx950"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_quant_ops_match_native_on_the_op_samples(arch: str, dtype: torch.dtype) -> None:
    api = probe(build("0.1.18", arch=arch))
    static = matches_native_on_samples(
        "fp8_quant_static",
        dtype,
        lambda x, scale, fp8: aiter_quant.fp8_quant_static_supported(api, x, fp8),
        lambda x, scale, fp8: aiter_quant.call_fp8_quant_static(api, x, scale, fp8),
    )
    group = matches_native_on_samples(
        "fp8_quant_group",
        dtype,
        lambda x, g, cm, ue8m0, fp8: aiter_quant.fp8_quant_group_supported(api, x, g, ue8m0, fp8),
        lambda x, g, cm, ue8m0, fp8: aiter_quant.call_fp8_quant_group(api, x, g, cm, fp8),
    )
    norm_group = matches_native_on_samples(
        "rms_norm_fp8_quant_group",
        dtype,
        lambda x, w, eps, g, wb, cm, ue8m0, fp8: aiter_quant.rms_norm_fp8_quant_group_supported(
            api, x, w, g, wb, ue8m0, fp8
        ),
        lambda x, w, eps, g, wb, cm, ue8m0, fp8: aiter_quant.call_rms_norm_fp8_quant_group(
            api, x, w, eps, g, cm, fp8
        ),
    )
    assert static >= 1 and group >= 1 and norm_group >= 1, (static, group, norm_group)
