"""The Triton rotary_embedding against native: both layouts, partial rotary, 2-D and 3-D
query/key, strided views of a fused qkv, GQA head counts, zero tokens.

Without a GPU these run on CPU through Triton's interpreter (TRITON_INTERPRET=1, set by
conftest); shapes stay small because the interpreter is slow.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from launch_spy import LaunchSpy

import ir_core
from ir_core import Sample
from ir_core.catalogue.rotary import cos_sin_cache
from ir_core.testing import assert_matches_native
from ir_provider_cuda import triton_rotary

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = [True, False]
MAX_POSITION = 300


def _kernels() -> Any:
    return importlib.import_module("ir_provider_cuda.triton_rotary_kernels")


def _randn(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).to(dtype=dtype, device=device)


def _positions(tokens: tuple[int, ...], device: str, seed: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, MAX_POSITION, tokens, generator=g).to(device)


def _check(*args: Any) -> None:
    assert triton_rotary.rotary_embedding_supports(*args), "triton declined"
    assert_matches_native("rotary_embedding", triton_rotary.rotary_embedding, Sample(args))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, triton_on_device: str) -> LaunchSpy:
    k = _kernels()
    found = LaunchSpy(k._rotary_kernel)
    monkeypatch.setattr(k, "_rotary_kernel", found)
    return found


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_catalogue_samples(triton_on_device: str, dtype: torch.dtype) -> None:
    op = ir_core.get_op("rotary_embedding")
    samples = op.sample_inputs(dtype, triton_on_device)
    assert samples
    for sample in samples:
        args = op.bind(sample.args, sample.kwargs)
        assert triton_rotary.rotary_embedding_supports(*args), f"declined [{sample.label}]"
        assert_matches_native(op, triton_rotary.rotary_embedding, sample)


@pytest.mark.parametrize("is_neox", LAYOUTS, ids=["neox", "gptj"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("head_size", "rot_dim"), [(64, 64), (128, 128), (80, 32), (33, 16), (96, 2), (256, 64)]
)
def test_head_sizes_and_partial_rotary(
    triton_on_device: str, dtype: torch.dtype, is_neox: bool, head_size: int, rot_dim: int
) -> None:
    d = triton_on_device
    q = _randn((3, 4 * head_size), dtype, d, 1)
    k = _randn((3, 1 * head_size), dtype, d, 2)
    _check(
        _positions((3,), d),
        q,
        k,
        head_size,
        cos_sin_cache(MAX_POSITION, rot_dim, device=d),
        is_neox,
    )


@pytest.mark.parametrize("is_neox", LAYOUTS, ids=["neox", "gptj"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_3d_query_and_key(triton_on_device: str, dtype: torch.dtype, is_neox: bool) -> None:
    d = triton_on_device
    q, k = _randn((5, 8, 64), dtype, d, 1), _randn((5, 2, 64), dtype, d, 2)
    _check(_positions((5,), d), q, k, 64, cos_sin_cache(MAX_POSITION, 32, device=d), is_neox)


@pytest.mark.parametrize("is_neox", LAYOUTS, ids=["neox", "gptj"])
def test_many_heads_take_several_tiles(triton_on_device: str, is_neox: bool) -> None:
    """More heads than one tile holds (64 pairs a head: 32 heads a tile), and a head count
    that leaves the last tile ragged."""
    d = triton_on_device
    cfg = _kernels().rotary_launch_config(128, 128, 40)
    assert cfg.head_block < 40 and 40 % cfg.head_block
    q, k = _randn((2, 40 * 128), torch.bfloat16, d, 1), _randn((2, 5 * 128), torch.bfloat16, d, 2)
    _check(_positions((2,), d), q, k, 128, cos_sin_cache(MAX_POSITION, 128, device=d), is_neox)


def test_batch_by_seq_positions(triton_on_device: str) -> None:
    d = triton_on_device
    q, k = _randn((2, 3, 4 * 32), torch.float16, d, 1), _randn((2, 3, 32), torch.float16, d, 2)
    cache = cos_sin_cache(MAX_POSITION, 32, device=d)
    _check(_positions((2, 3), d), q, k, 32, cache, True)
    # (batch, seq, heads, head_size)
    _check(_positions((2, 3), d), q.view(2, 3, 4, 32), k.view(2, 3, 1, 32), 32, cache, False)


def test_strided_views_reach_the_kernel_uncopied(triton_on_device: str, spy: LaunchSpy) -> None:
    """q and k as qkv.view(T, 3, H, hs).unbind(1) (3-D, heads hs apart, tokens 3*H*hs apart)
    and as column slices of the 2-D projection: each read in place, one launch per call."""
    d, t, h, hs = triton_on_device, 4, 2, 64
    qkv = _randn((t, 3 * h * hs), torch.bfloat16, d, 1)
    cache = cos_sin_cache(MAX_POSITION, hs, device=d)
    q3, k3, _ = qkv.view(t, 3, h, hs).unbind(1)
    q2, k2 = qkv[:, : h * hs], qkv[:, h * hs : 2 * h * hs]
    for q, k in ((q3, k3), (q2, k2)):
        _check(_positions((t,), d), q, k, hs, cache, True)
        triton_rotary.rotary_embedding(_positions((t,), d), q, k, hs, cache, True)
        grid, args = spy.launches[-1]
        assert grid == (t,)
        assert args[4].data_ptr() == q.data_ptr() and args[5:7] == (0, 3 * h * hs)
        assert args[11].data_ptr() == k.data_ptr()


def test_heads_with_their_own_stride(triton_on_device: str) -> None:
    """A (tokens, heads, head_size) view whose heads are not adjacent (a transposed
    (heads, tokens, head_size) buffer)."""
    d = triton_on_device
    q = _randn((4, 3, 32), torch.float32, d, 1).transpose(0, 1)  # (3 tokens, 4 heads, 32)
    k = _randn((3, 2, 32), torch.float32, d, 2)
    assert q.stride() == (32, 96, 1)
    _check(_positions((3,), d), q, k, 32, cos_sin_cache(MAX_POSITION, 16, device=d), False)


def test_mixed_dtypes_and_a_strided_cache(triton_on_device: str) -> None:
    """bf16 query, fp32 key, an fp16 cache that is a column-major copy; int32 positions that
    are a strided view."""
    d = triton_on_device
    cache = cos_sin_cache(MAX_POSITION, 64, torch.float16, d).t().contiguous().t()
    assert cache.stride() == (1, MAX_POSITION)
    positions = _positions((6,), d).to(torch.int32)[::2]
    q, k = _randn((3, 2 * 64), torch.bfloat16, d, 1), _randn((3, 64), torch.float32, d, 2)
    _check(positions, q, k, 64, cache, True)
    _check(positions, q, k, 64, cache, False)


def test_first_and_last_positions(triton_on_device: str) -> None:
    d = triton_on_device
    positions = torch.tensor([0, MAX_POSITION - 1, 0, 17], device=d)
    q, k = _randn((4, 2 * 64), torch.float32, d, 1), _randn((4, 64), torch.float32, d, 2)
    _check(positions, q, k, 64, cos_sin_cache(MAX_POSITION, 64, device=d), True)


def test_zero_tokens_launch_nothing(triton_on_device: str, spy: LaunchSpy) -> None:
    d = triton_on_device
    cache = cos_sin_cache(MAX_POSITION, 64, device=d)
    for dtype in DTYPES:
        q, k = _randn((0, 4 * 64), dtype, d, 1), _randn((0, 2, 64), dtype, d, 2)
        _check(_positions((0,), d), q, k, 64, cache, True)
    assert not spy.launches


def test_pass_through_channels_are_copied_bit_for_bit(triton_on_device: str) -> None:
    d = triton_on_device
    q, k = _randn((3, 2 * 80), torch.bfloat16, d, 1), _randn((3, 80), torch.bfloat16, d, 2)
    cache = cos_sin_cache(MAX_POSITION, 32, device=d)
    q_out, k_out = triton_rotary.rotary_embedding(_positions((3,), d), q, k, 80, cache, False)
    assert torch.equal(q_out.view(3, 2, 80)[..., 32:], q.view(3, 2, 80)[..., 32:])
    assert torch.equal(k_out[:, 32:], k[:, 32:])


def test_declines() -> None:
    p, cache = torch.arange(2), cos_sin_cache(8, 16)
    q, k = torch.randn(2, 32), torch.randn(2, 16)
    assert triton_rotary.rotary_embedding_supports(p, q, k, 16, cache, True)
    assert not triton_rotary.rotary_embedding_supports(p, q.double(), k, 16, cache, True)
    assert not triton_rotary.rotary_embedding_supports(p, q, k, 16, cache.double(), True)
    assert not triton_rotary.rotary_embedding_supports(p.to(torch.int16), q, k, 16, cache, True)
    assert not triton_rotary.rotary_embedding_supports(p, torch.randn(32, 2).t(), k, 16, cache)
    # (2, 3, 5) token dims whose strides need three levels
    p3 = torch.zeros(2, 3, 5, dtype=torch.int64)
    q3 = torch.randn(5, 3, 2, 17)[..., :16].permute(2, 1, 0, 3)
    k3 = torch.randn(2, 3, 5, 16)
    assert not triton_rotary.rotary_embedding_supports(p3, q3, k3, 16, cache)


def test_dispatch_picks_triton_under_set_priority(triton_on_device: str) -> None:
    d = triton_on_device
    args = (_positions((3,), d), _randn((3, 64), torch.float32, d, 1))
    args += (_randn((3, 32), torch.float32, d, 2), 32, cos_sin_cache(MAX_POSITION, 32, device=d))
    with ir_core.set_priority(rotary_embedding=["triton"]):
        assert ir_core.explain("rotary_embedding", *args).provider == "triton"
        got = ir_core.ops.rotary_embedding(*args)
    for a, b in zip(got, triton_rotary.rotary_embedding(*args)):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("head_size", "rot_dim"), [(64, 64), (128, 128), (80, 32), (33, 16), (576, 64)]
)
@pytest.mark.parametrize("heads", [1, 8, 64, 128])
def test_launch_config_invariants(head_size: int, rot_dim: int, heads: int) -> None:
    cfg = _kernels().rotary_launch_config(head_size, rot_dim, heads)
    for block in (cfg.half_block, cfg.head_block, cfg.pass_block):
        assert block >= 1 and block & (block - 1) == 0
    assert rot_dim // 2 <= cfg.half_block < max(rot_dim, 2), "every pair in one tile row"
    assert cfg.head_block <= _next_pow2(heads)
    assert cfg.head_block * cfg.half_block <= max(2048, cfg.half_block)
    assert cfg.num_warps in (4, 8)


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()
