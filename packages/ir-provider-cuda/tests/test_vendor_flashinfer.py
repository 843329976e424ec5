"""The ``flashinfer`` wrappers through the real flashinfer-python's Python layer.

Run by ``nox -s vendors`` with flashinfer-python 0.6.12 and 0.7.4 installed (skipped, with the
reason, where it is not). FlashInfer's own code runs: argument checks, scale normalization, the
CuTe-DSL vs CUDA-JIT choice, the contiguity choice of its CuTe kernels, the all-reduce planning
and workspace metadata checks. Only the compiled kernels (and the collective IPC allocation) are
replaced by ``cpu_vendor_kernels``, which checks what each kernel checks or assumes and computes
what it computes.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from cpu_vendor_kernels import (
    NORM_PATHS,
    Calls,
    FakeGroup,
    KernelFault,
    import_vendor,
    install_flashinfer_activation,
    install_flashinfer_comm,
    install_flashinfer_norm,
    install_flashinfer_rope,
)

import ir_core
from ir_core import Sample
from ir_core.testing import assert_matches_native, mismatch
from ir_provider_cuda import (
    flashinfer_activation,
    flashinfer_lib,
    flashinfer_norm,
    flashinfer_rotary,
)
from ir_provider_cuda import (
    flashinfer_allreduce as fa,
)
from ir_provider_cuda.vendor_layout import empty_aligned
from ir_provider_cuda.vendor_release import installed

flashinfer = import_vendor("flashinfer", "flashinfer-python")

EPS = 1e-6
DTYPES = [torch.float16, torch.bfloat16]
BF16 = torch.bfloat16


def test_installed_release_is_one_the_wrappers_were_checked_against() -> None:
    problems = flashinfer_lib.environment_problems()
    assert not [p for p in problems if "flashinfer-python" in p], problems
    assert str(installed("flashinfer-python")) == flashinfer.__version__


def _run_samples(op_name: str, fn: Any, supports: Any, dtype: torch.dtype) -> int:
    ran = 0
    for sample in ir_core.get_op(op_name).sample_inputs(dtype, "cpu"):
        if supports(*sample.args, **sample.kwargs):
            assert_matches_native(op_name, fn, sample)
            ran += 1
    return ran


# -- norms -------------------------------------------------------------------------------------

NORM_IMPLS = {
    name: (getattr(flashinfer_norm, name), getattr(flashinfer_norm, f"{name}_supports"))
    for name in (
        "rms_norm",
        "fused_add_rms_norm",
        "rms_norm_fp8_quant_static",
        "fused_add_rms_norm_fp8_quant_static",
    )
}


@pytest.fixture(params=NORM_PATHS)
def norm_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The real ``flashinfer.norm`` routed to its CuTe-DSL or its CUDA-JIT path."""
    calls = Calls(path=request.param)
    install_flashinfer_norm(monkeypatch, request.param, calls)
    return calls


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op_name", list(NORM_IMPLS))
def test_norms_match_native(norm_path: Calls, op_name: str, dtype: torch.dtype) -> None:
    fn, supports = NORM_IMPLS[op_name]
    assert _run_samples(op_name, fn, supports, dtype) >= 4
    assert norm_path.log and all(
        name.startswith(f"{norm_path.path}.") for name in norm_path.names()
    ), norm_path.names()


@pytest.mark.parametrize("hidden", [127, 4095, 5120])
@pytest.mark.parametrize("weight_bias", [0.0, 1.0])
def test_norms_odd_and_wide_rows(norm_path: Calls, hidden: int, weight_bias: float) -> None:
    g = torch.Generator().manual_seed(hidden)
    x = (torch.randn(3, hidden, generator=g) * 2).to(BF16)
    r = torch.randn(3, hidden, generator=g).to(BF16)
    w = torch.randn(hidden, generator=g).to(BF16)
    assert_matches_native(
        "rms_norm", flashinfer_norm.rms_norm, Sample((x, w, EPS), {"weight_bias": weight_bias})
    )
    assert_matches_native(
        "fused_add_rms_norm",
        flashinfer_norm.fused_add_rms_norm,
        Sample((x, r, w, EPS), {"weight_bias": weight_bias}),
    )


def _offset(t: torch.Tensor, elements: int) -> torch.Tensor:
    """A copy of ``t`` starting ``elements`` past a 128-byte boundary."""
    buf = empty_aligned((t.numel() + elements,), t.dtype, t.device, 128)
    view = buf[elements:].view(t.shape)
    view.copy_(t)
    return view


def _check_rms_norm(x: torch.Tensor, w: torch.Tensor) -> None:
    op = ir_core.get_op("rms_norm")
    assert flashinfer_norm.rms_norm_supports(x, w, EPS)
    got = flashinfer_norm.rms_norm(x, w, EPS)
    assert mismatch(op, got, op.native(x, w, EPS)) is None


def test_misaligned_weight_is_realigned(norm_path: Calls) -> None:
    """H = 4095 bf16: rows of 8190 bytes, so the old rule (``gcd(128, H * elem)`` = 2 bytes)
    let a weight 2 bytes past a 16-byte boundary through; CuTe compiles the weight as 16-byte
    aligned for every H, and its entry rejects it."""
    h = 4095
    x = torch.randn(4, h).to(BF16)
    w = _offset(torch.randn(h).to(BF16), 1)
    assert w.data_ptr() % 16 == 2
    _check_rms_norm(x, w)
    name = f"{norm_path.path}.rmsnorm"
    assert norm_path.last(name)["weight"].data_ptr() % 16 == 0


def test_misaligned_strided_rows_are_realigned(norm_path: Calls) -> None:
    """Strided rows (a slice of a wider buffer) take CuTe's strided kernel, which assumes a
    16-byte start whatever H; with H = 4095 the old rule asked for 2 bytes."""
    h = 4095
    buf = torch.randn(4, h + 9).to(BF16)
    x = buf[:, 1 : 1 + h]
    assert x.data_ptr() % 16 != 0 and not x.is_contiguous()
    _check_rms_norm(x, torch.randn(h).to(BF16))
    got = norm_path.last(f"{norm_path.path}.rmsnorm")["x"]
    assert got.data_ptr() % 16 == 0


def test_misaligned_contiguous_rows_are_realigned(norm_path: Calls) -> None:
    """Contiguous rows: CuTe assumes ``gcd(128, H * elem)`` (128 for H = 4096 bf16)."""
    h = 4096
    x = _offset(torch.randn(4, h).to(BF16), 8)  # 16 bytes in
    assert x.data_ptr() % 128 == 16
    _check_rms_norm(x, torch.randn(h).to(BF16))
    assert norm_path.last(f"{norm_path.path}.rmsnorm")["x"].data_ptr() % 128 == 0


def test_a_16_byte_aligned_weight_is_not_copied(norm_path: Calls) -> None:
    """The weight needs 16 bytes, not gcd(128, H * elem): one 16 bytes in is used as it is."""
    h = 4096
    w = _offset(torch.randn(h).to(BF16), 8)
    assert w.data_ptr() % 128 == 16
    _check_rms_norm(torch.randn(4, h).to(BF16), w)
    assert norm_path.last(f"{norm_path.path}.rmsnorm")["weight"].data_ptr() == w.data_ptr()


def test_the_jit_path_reads_a_weight_of_another_dtype_as_garbage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why every FlashInfer norm wrapper declines a weight whose dtype differs from x's: on the
    CUDA-JIT path (FlashInfer's fallback) nothing checks it, so a Gemma fp32 weight with bf16 x
    would be read as bf16 bits and return garbage without an error."""
    install_flashinfer_norm(monkeypatch, "jit", Calls())
    x, w = torch.randn(4, 64).to(BF16), torch.randn(64) + 1
    op = ir_core.get_op("rms_norm")
    garbage = flashinfer.norm.rmsnorm(x, w, EPS)  # FlashInfer's own API, no error
    assert mismatch(op, garbage, op.native(x, w, EPS)) is not None
    r, scale = torch.randn(4, 64).to(BF16), torch.tensor([0.1])
    assert not flashinfer_norm.rms_norm_supports(x, w, EPS)
    assert not flashinfer_norm.fused_add_rms_norm_supports(x, r, w, EPS)
    assert not flashinfer_norm.rms_norm_fp8_quant_static_supports(x, w, EPS, scale)
    assert not flashinfer_norm.fused_add_rms_norm_fp8_quant_static_supports(x, r, w, EPS, scale)


def test_fp32_is_declined_because_the_jit_path_has_no_fp32_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_flashinfer_norm(monkeypatch, "jit", Calls())
    x = torch.randn(4, 64)
    with pytest.raises(RuntimeError, match="unsupported input dtype"):
        flashinfer.norm.rmsnorm(x, torch.randn(64), EPS)
    assert not flashinfer_norm.rms_norm_supports(x, torch.randn(64), EPS)


# -- gated activations -------------------------------------------------------------------------


@pytest.fixture
def activations(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    install_flashinfer_activation(monkeypatch, calls, flashinfer_lib.relaxed_activations())
    return calls


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_activations_match_native(activations: Calls, dtype: torch.dtype) -> None:
    ran = _run_samples(
        "silu_and_mul",
        flashinfer_activation.silu_and_mul,
        flashinfer_activation.silu_and_mul_supports,
        dtype,
    )
    ran += _run_samples(
        "gelu_and_mul",
        flashinfer_activation.gelu_and_mul,
        flashinfer_activation.gelu_and_mul_supports,
        dtype,
    )
    assert ran >= 6
    assert {"silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul"} <= set(activations.names())


def test_activation_row_rule_follows_the_release(activations: Calls) -> None:
    """bf16 d = 12: FlashInfer 0.6.12's Python accepts it (2d * 2 bytes = 48) but its kernel's
    16-byte vectors would straddle the gate/up boundary; 0.7.1+ picks 4-element vectors."""
    x = torch.randn(3, 24).to(BF16)
    if flashinfer_lib.relaxed_activations():
        assert flashinfer_activation.silu_and_mul_supports(x)
        assert_matches_native("silu_and_mul", flashinfer_activation.silu_and_mul, Sample((x,)))
    else:
        assert not flashinfer_activation.silu_and_mul_supports(x)
        with pytest.raises(KernelFault, match="misaligned"):
            flashinfer.activation.silu_and_mul(x)  # FlashInfer's own check lets it through


def test_strided_activation_input_is_declined(activations: Calls) -> None:
    """The kernel ignores strides: FlashInfer's own API on a column slice reads other data."""
    x = torch.randn(4, 2 * 64 + 16).to(BF16)[:, 8 : 8 + 128]
    op = ir_core.get_op("silu_and_mul")
    assert mismatch(op, flashinfer.activation.silu_and_mul(x), op.native(x)) is not None
    assert not flashinfer_activation.silu_and_mul_supports(x)


# -- RoPE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rotary_matches_native(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    calls = Calls()
    install_flashinfer_rope(monkeypatch, calls)
    ran = _run_samples(
        "rotary_embedding",
        flashinfer_rotary.rotary_embedding,
        flashinfer_rotary.rotary_embedding_supports,
        dtype,
    )
    assert ran >= 6
    assert {call["interleave"] for name, call in calls.log} == {True, False}


def test_rotary_declines_a_16_bit_cache_as_flashinfer_refuses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_flashinfer_rope(monkeypatch, Calls())
    pos, q, k = torch.arange(4), torch.randn(4, 128).to(BF16), torch.randn(4, 64).to(BF16)
    cache = ir_core.catalogue.rotary.cos_sin_cache(16, 64, BF16)
    with pytest.raises(ValueError, match="float32"):
        flashinfer.rope.apply_rope_with_cos_sin_cache(pos, q, k, 64, cache)
    assert not flashinfer_rotary.rotary_embedding_supports(pos, q, k, 64, cache)


def test_rotary_batched_tokens_are_flattened(monkeypatch: pytest.MonkeyPatch) -> None:
    """FlashInfer views the query as (query.shape[0], -1, head_size): a (B, S, ...) query would
    be B tokens. The wrapper flattens the token dims first."""
    install_flashinfer_rope(monkeypatch, Calls())
    cache = ir_core.catalogue.rotary.cos_sin_cache(32, 64)
    pos = torch.randint(0, 32, (2, 3))
    q, k = torch.randn(2, 3, 2 * 64).to(BF16), torch.randn(2, 3, 64).to(BF16)
    sample = Sample((pos, q, k, 64, cache, True))
    assert flashinfer_rotary.rotary_embedding_supports(*sample.args)
    assert_matches_native("rotary_embedding", flashinfer_rotary.rotary_embedding, sample)


# -- all-reduce fusion -------------------------------------------------------------------------

comm = import_vendor("flashinfer.comm", "flashinfer-python")
trtllm_ar = import_vendor("flashinfer.comm.trtllm_ar", "flashinfer-python")


@pytest.mark.parametrize("world", [2, 4, 8])
def test_oneshot_choice_is_flashinfers_where_it_has_one(world: int) -> None:
    """For the rank counts FlashInfer has a heuristic for, the wrapper chooses as it does."""
    for dtype in DTYPES:
        for hidden in (1024, 4096, 8192, 16384, 65536):
            for tokens in (1, 2, 4, 8, 16, 17, 64, 128, 512, 2048):
                ours = fa.use_oneshot(tokens, hidden, dtype, world)
                theirs = trtllm_ar._should_use_oneshot(tokens, hidden, dtype, world)
                assert ours == theirs, (tokens, hidden, dtype, world)


def test_flashinfer_has_no_heuristic_for_16_ranks() -> None:
    """The defect the wrapper works around: FlashInfer's own choice at 16 ranks."""
    with pytest.raises(KeyError):
        trtllm_ar._should_use_oneshot(4, 4096, BF16, 16)


@pytest.fixture
def ranks(monkeypatch: pytest.MonkeyPatch):
    """FlashInfer's comm layer with CPU kernels, and a group of ``n`` ranks for the wrapper."""
    calls = Calls()
    install_flashinfer_comm(monkeypatch, calls)
    monkeypatch.setattr(fa, "_workspaces", {})
    monkeypatch.setattr(fa, "COMM", fa.kit.LazyVendor(fa.PROVIDER, lambda: (comm, "")))

    def world(n: int) -> Calls:
        group = FakeGroup(n)
        monkeypatch.setattr(fa, "process_group", lambda name: group)
        return calls

    return world


def _expected(x, residual, w, bias, world):
    op = ir_core.get_op("fused_add_rms_norm")
    reduced = (x.float() * world).to(x.dtype)
    return op, op.native(reduced, residual, w, EPS, bias)


@pytest.mark.parametrize("world", [2, 8, 16])
@pytest.mark.parametrize("tokens", [1, 4, 16, 17, 64])
def test_all_reduce_runs_through_flashinfer(ranks, world: int, tokens: int) -> None:
    """Every rank count, including 16 (a KeyError in FlashInfer's heuristic when use_oneshot is
    left to it) and token counts at or below the rank count (two-shot would assert)."""
    calls = ranks(world)
    g = torch.Generator().manual_seed(tokens)
    x, r = torch.randn(tokens, 1024, generator=g).to(BF16), torch.randn(tokens, 1024).to(BF16)
    w = torch.randn(1024, generator=g).to(BF16)
    assert fa.all_reduce_fused_add_rms_norm_supports(x, r, "tp", w, EPS, 1.0)
    out, residual_out = fa.all_reduce_fused_add_rms_norm(x, r, "tp", w, EPS, 1.0)
    call = calls.last("trtllm_allreduce_fusion")
    assert call["use_oneshot"] is fa.use_oneshot(tokens, 1024, BF16, world)
    if tokens <= world:
        assert call["use_oneshot"] is True
    op, expected = _expected(x, r, w, 1.0, world)
    for got, want in zip((out, residual_out), expected):
        assert mismatch(op, got, want) is None


def test_all_reduce_allocates_nothing_per_call(ranks) -> None:
    """``output`` is residual_out's buffer (FlashInfer would allocate one per call, never
    written by this pattern) and the plain op's zero residual is one buffer, reused."""
    calls = ranks(8)
    w = torch.randn(512).to(BF16)
    seen = []
    for tokens in (4, 32):
        x = torch.randn(tokens, 512).to(BF16)
        _, reduced = fa.all_reduce_rms_norm(x, "tp", w, EPS)
        call = calls.last("trtllm_allreduce_fusion")
        assert call["allreduce_out"].data_ptr() == reduced.data_ptr()
        assert call["residual_out"].data_ptr() == reduced.data_ptr()
        assert not call["residual_in"].any()
        seen.append(call["residual_in"].data_ptr())
        assert torch.equal(reduced, (x.float() * 8).to(BF16))
    assert seen[0] == seen[1]
    assert calls.names().count("create_ipc_workspace") == 1


def test_workspace_is_created_as_flashinfer_expects(ranks) -> None:
    calls = ranks(4)
    x, w = torch.randn(2, 256).to(BF16), torch.randn(256).to(BF16)
    fa.all_reduce_rms_norm(x, "tp", w, EPS)
    created = calls.last("create_ipc_workspace")
    assert created["tp_size"] == 4 and created["max_token_num"] == fa.MAX_TOKENS
    assert created["hidden_dim"] == 256 and created["use_fp32_lamport"] is False


def test_stand_in_comm_mirrors_the_real_signatures() -> None:
    """The stand-in of the default session must take what the real functions take (0.6.12's
    parameters; 0.7.x adds keyword-only ones, which the wrapper does not pass)."""
    from test_flashinfer_allreduce import StandInComm

    for name in ("allreduce_fusion", "create_allreduce_fusion_workspace"):
        real = inspect.signature(getattr(comm, name)).parameters
        ours = inspect.signature(getattr(StandInComm(), name)).parameters
        positional = [p for p in real.values() if p.kind is not p.KEYWORD_ONLY]
        assert [(p.name, p.default) for p in positional] == [
            (p.name, p.default) for p in ours.values()
        ], name
    assert comm.AllReduceFusionPattern.kARResidualRMSNorm == (
        StandInComm.AllReduceFusionPattern.kARResidualRMSNorm
    )
