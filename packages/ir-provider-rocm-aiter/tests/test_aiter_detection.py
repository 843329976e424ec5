"""Feature detection on AITER as AITER really builds its API (``recording_aiter``): wrapped
functions whose signatures say nothing, op schemas that do, plain functions, release versions,
and builds without CK."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from recording_aiter import GENERATIONS, build

from ir_provider_rocm_aiter import aiter_api
from ir_provider_rocm_aiter.aiter_api import (
    DUAL_LEGACY,
    DUAL_UNIFIED,
    MODULE_ACTIVATION,
    MODULE_DUAL,
    MODULE_HIP_NORM,
    MODULE_NORM,
    MODULE_QUANT,
)


def _probe(rec, **kwargs):
    return aiter_api.probe(rec, rec.generation, built=rec.prebuilt.__contains__, **kwargs)


# -- the recorder hides signatures the way AITER 0.1.10 .. 0.1.20.post1 does ---------------------


@pytest.mark.parametrize("generation", GENERATIONS)
def test_wrapped_entry_points_show_no_signature(generation: str) -> None:
    rec = build(generation)
    for name in ("rmsnorm", "add_rmsnorm", "silu_and_mul", "static_per_tensor_quant"):
        fn = getattr(rec, name)
        assert str(inspect.signature(fn)) == "(*args: Any, **kwargs: Any) -> Any", name
        assert fn.__name__ == "wrapper_custom" and not hasattr(fn, "__wrapped__")
    # the names are in the op schema instead, as torch_compile_guard registers it
    rmsnorm = [a.name for a in rec.ops.rmsnorm.default._schema.arguments]
    assert rmsnorm[:4] == ["out", "input", "weight", "epsilon"]


def test_calls_go_through_the_op_schema() -> None:
    rec = build("0.1.16")
    x = torch.randn(2, 64, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="expected at most 4 argument"):
        rec.rmsnorm(torch.empty_like(x), x, x[0], 1e-6, gemma_norm=True)


# -- gemma_norm, on wrapped and plain functions ------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "gemma_rmsnorm", "gemma_fused_add"),
    [("0.1.13", False, False), ("0.1.16", False, False), ("0.1.17", True, True),
     ("0.1.18", True, True)],
)  # fmt: skip
def test_gemma_is_detected_through_aiters_wrappers(
    generation: str, gemma_rmsnorm: bool, gemma_fused_add: bool
) -> None:
    # 0.1.17: rmsnorm is @compile_ops (schema), rmsnorm2d_fwd_with_add plain (signature);
    # 0.1.18: both wrapped (schema only)
    api = _probe(build(generation))
    assert api.gemma_rmsnorm is gemma_rmsnorm
    assert api.gemma_fused_add is gemma_fused_add


def test_schema_parameters_skip_the_dummy_aiter_prepends() -> None:
    rec = build("0.1.18")
    # per_group_quant_hip's first parameter is a Tensor: no dummy; names as in the stub
    assert aiter_api.parameters(rec, "per_group_quant_hip")[:5] == (
        "x", "scale", "quant_dtype", "group_size", "transpose_scale",
    )  # fmt: skip
    assert aiter_api.parameters(rec, "rms_norm_opus")[-1] == "gemma_norm"  # plain


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.16", False), ("0.1.17", True), ("0.1.17.post1", True), ("0.1.17.dev4+gabc", False),
     ("0.1.18.dev5+g1234", True), ("0.1.20.post1+20260820", True), ("unknown", False)],
)  # fmt: skip
def test_without_schema_or_signature_the_release_decides(version: str, expected: bool) -> None:
    # a wrapper whose op was never registered (torch_compile_guard without torch.library)
    module = SimpleNamespace(rmsnorm=lambda *args, **kwargs: None)
    assert aiter_api.parameters(module, "rmsnorm") is None
    assert aiter_api.takes(module, version, "rmsnorm", "gemma_norm", (0, 1, 17)) is expected


def test_absent_entry_points_take_nothing() -> None:
    assert (
        aiter_api.takes(SimpleNamespace(), "0.1.20", "rmsnorm", "gemma_norm", (0, 1, 17)) is False
    )


def test_release_ordering() -> None:
    assert aiter_api.release("0.1.18.dev5+g1234") == ((0, 1, 18), True)
    assert aiter_api.release("0.1.7.post2.dev18") == ((0, 1, 7), False)
    assert aiter_api.at_least("0.1.12", (0, 1, 12)) and not aiter_api.at_least("0.1.11", (0, 1, 12))
    assert aiter_api.at_least("0.2", (0, 1, 17)) and not aiter_api.at_least("x", (0,))


# -- generations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "opus", "dual_form"),
    [("0.1.13", False, DUAL_LEGACY), ("0.1.16", False, DUAL_UNIFIED),
     ("0.1.17", False, DUAL_UNIFIED), ("0.1.18", True, DUAL_UNIFIED)],
)  # fmt: skip
def test_probe_reads_each_generation(generation: str, opus: bool, dual_form: str) -> None:
    api = _probe(build(generation))
    assert api.opus is opus and api.dual_form == dual_form
    assert api.group_dynamicquant and api.unusable == {}


@pytest.mark.parametrize(("arch", "fp8"), [("gfx942", torch.float8_e4m3fnuz),
                                           ("gfx950", torch.float8_e4m3fn)])  # fmt: skip
def test_fp8_dtype_of_the_gpu(arch: str, fp8: torch.dtype) -> None:
    assert _probe(build("0.1.18", arch=arch)).fp8 == fp8


def test_unknown_arch_has_no_fp8_dtype() -> None:
    rec = build("0.1.18")
    rec.dtypes = SimpleNamespace(fp8=torch.uint8)  # AITER's fallback on an unknown arch
    assert _probe(rec).fp8 is None


# -- builds without CK -----------------------------------------------------------------------------


def test_a_ck_free_ck_generation_can_run_none_of_the_modules() -> None:
    api = _probe(build("0.1.16", ck=False))
    assert set(api.unusable) == {
        MODULE_NORM, MODULE_HIP_NORM, MODULE_ACTIVATION, MODULE_QUANT, MODULE_DUAL,
    }  # fmt: skip
    assert "built without CK" in api.unusable[MODULE_NORM]


def test_prebuilt_modules_run_without_ck() -> None:
    api = _probe(build("0.1.16", ck=False, prebuilt=frozenset({MODULE_NORM, MODULE_ACTIVATION})))
    assert MODULE_NORM not in api.unusable and MODULE_ACTIVATION not in api.unusable
    assert MODULE_HIP_NORM in api.unusable


def test_opus_needs_no_ck() -> None:
    api = _probe(build("0.1.18", ck=False))
    assert MODULE_NORM not in api.unusable and MODULE_HIP_NORM in api.unusable


def test_the_recorder_fails_at_call_time_like_aiter() -> None:
    rec = build("0.1.16", ck=False)
    x = torch.randn(2, 64, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="CK is not available"):
        rec.rms_norm(x, x[0], 1e-6)


def test_jit_dir_changes_where_prebuilt_modules_are_found(monkeypatch) -> None:
    monkeypatch.setenv("AITER_JIT_DIR", "/nonexistent")
    assert aiter_api.prebuilt("json") is True  # found as a top-level module
    monkeypatch.delenv("AITER_JIT_DIR")
    assert aiter_api.prebuilt("module_rmsnorm") is False  # no aiter package here
