"""rotary_embedding: native against an fp64 reference written from the formulas, and against
Hugging Face's own rotary code where transformers is installed (its validation errors:
test_validation.py)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ir_core
from ir_core.catalogue.rotary import cos_sin_cache
from ir_core.testing import mismatch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def reference_rotate(x, positions, head_size, cache, is_neox):
    """One head of one token at a time, in Python floats (fp64), with the cache's values."""
    heads = math.prod(x.shape[positions.dim() :]) // head_size
    flat = x.double().reshape(positions.numel(), heads, head_size).tolist()
    rows = cache.double().tolist()
    half = cache.shape[-1] // 2
    out = []
    for pos, heads in zip(positions.reshape(-1).tolist(), flat):
        cos, sin = rows[pos][:half], rows[pos][half:]
        token = []
        for v in heads:
            v = list(v)
            for i in range(half):
                a, b = (i, i + half) if is_neox else (2 * i, 2 * i + 1)
                x1, x2 = v[a], v[b]
                v[a], v[b] = x1 * cos[i] - x2 * sin[i], x2 * cos[i] + x1 * sin[i]
            token.append(v)
        out.append(token)
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def _assert_close(actual, expected_fp64, what="output"):
    op = ir_core.get_op("rotary_embedding")
    problem = mismatch(op, actual, expected_fp64.to(actual.dtype), what=what)
    assert problem is None, problem


def _check_against_reference(positions, q, k, head_size, cache, is_neox):
    q_out, k_out = ir_core.ops.rotary_embedding(positions, q, k, head_size, cache, is_neox)
    assert (q_out.shape, q_out.dtype, k_out.shape, k_out.dtype) == (
        q.shape,
        q.dtype,
        k.shape,
        k.dtype,
    )
    _assert_close(q_out, reference_rotate(q, positions, head_size, cache, is_neox), "query")
    _assert_close(k_out, reference_rotate(k, positions, head_size, cache, is_neox), "key")


@st.composite
def rotary_inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    tokens = draw(st.sampled_from([(0,), (1,), (5,), (2, 3)]))
    head_size = draw(st.integers(2, 40))
    rot_dim = 2 * draw(st.integers(1, head_size // 2))
    hq, hk = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    three_d = draw(st.booleans())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    max_position = draw(st.integers(1, 64))
    positions = torch.randint(0, max_position, tokens, generator=g)
    if draw(st.booleans()):
        positions = positions.to(torch.int32)
    cache_dtype = draw(st.sampled_from([torch.float32, dtype]))
    cache = cos_sin_cache(max_position, rot_dim, cache_dtype)

    def heads(n):
        shape = (*tokens, n, head_size) if three_d else (*tokens, n * head_size)
        if draw(st.booleans()):  # rows of a wider (fused qkv) buffer
            wide = torch.randn(*shape[:-1], shape[-1] + 8, generator=g) * 2
            return wide[..., 3 : 3 + shape[-1]].to(dtype)
        return (torch.randn(shape, generator=g) * 2).to(dtype)

    return positions, heads(hq), heads(hk), head_size, cache, draw(st.booleans())


@settings(max_examples=120, deadline=None)
@given(rotary_inputs())
def test_matches_fp64_reference(case):
    _check_against_reference(*case)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_catalogue_samples_match_the_reference(dtype):
    op = ir_core.get_op("rotary_embedding")
    samples = op.sample_inputs(dtype)
    labels = " | ".join(s.label for s in samples)
    for promised in ("3d", "partial rotary", "strided rows", "zero tokens", "gptj", "neox"):
        assert promised in labels
    for sample in samples:
        _check_against_reference(*op.bind(sample.args, sample.kwargs))


def test_pairs_of_each_layout():
    """One token at position 1 with a quarter-turn angle on its first pair: neox rotates
    channels (0, 2), GPT-J channels (0, 1); the unrotated pair and the tail pass through."""
    cache = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])  # pos 1: cos (0, 1)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    positions = torch.tensor([1])
    neox, _ = ir_core.ops.rotary_embedding(positions, x, x, 6, cache, True)
    gptj, _ = ir_core.ops.rotary_embedding(positions, x, x, 6, cache, False)
    # neox: (x1, x2) = (x0, x2) -> (-x2, x0); pair (x1, x3) has angle 0
    assert neox.tolist() == [[-3.0, 2.0, 1.0, 4.0, 5.0, 6.0]]
    # gptj: (x0, x1) -> (-x1, x0); pair (x2, x3) has angle 0
    assert gptj.tolist() == [[-2.0, 1.0, 3.0, 4.0, 5.0, 6.0]]


def test_is_functional():
    op = ir_core.get_op("rotary_embedding")
    sample = op.sample_inputs(torch.float32)[0]
    before = sample.clone()
    q_out, k_out = ir_core.ops.rotary_embedding(*sample.args, **sample.kwargs)
    for a, b in zip(sample.args, before.args):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    assert q_out.data_ptr() != sample.args[1].data_ptr()
    assert k_out.data_ptr() != sample.args[2].data_ptr()


def test_cache_builder_matches_the_closed_form():
    """``cos_sin_cache`` is vLLM's: [cos | sin] of pos * base^(-2i / rot_dim)."""
    cache = cos_sin_cache(40, 12, base=500.0)
    for pos in (0, 1, 39):
        for i in range(6):
            angle = pos * 500.0 ** (-2 * i / 12)
            assert math.isclose(cache[pos, i].item(), math.cos(angle), abs_tol=1e-7)
            assert math.isclose(cache[pos, 6 + i].item(), math.sin(angle), abs_tol=1e-7)


# -- against Hugging Face's rotary code ------------------------------------------------------

needs_transformers = pytest.mark.skipif(
    not HAS_TRANSFORMERS,
    reason="transformers is not installed (the default test session does not install it)",
)


def _hf_inputs(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t, hq, hk, hs = 7, 4, 2, 64
    positions = torch.randint(0, 100, (t,), generator=g)
    q = (torch.randn(t, hq, hs, generator=g) * 2).to(dtype)
    k = (torch.randn(t, hk, hs, generator=g) * 2).to(dtype)
    return positions, q, k, hs


@needs_transformers
@pytest.mark.parametrize("rot_dim", [64, 32], ids=["full", "partial"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_neox_matches_hf_llama(dtype, rot_dim):
    """Llama's ``apply_rotary_pos_emb`` (rotate_half) with cos/sin taken from the same cache;
    partial rotary as HF's partial-rotary models do it (rotate the first rot_dim channels,
    concatenate the rest)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    positions, q, k, hs = _hf_inputs(dtype)
    cache = cos_sin_cache(128, rot_dim)
    cos, sin = cache[positions].chunk(2, dim=-1)
    cos, sin = torch.cat((cos, cos), -1)[None], torch.cat((sin, sin), -1)[None]  # (1, T, rot)
    # HF's layout: (batch, heads, tokens, head_size), computed in fp32 here
    q_hf, k_hf = (t.double().transpose(0, 1)[None] for t in (q, k))
    q_rot, k_rot = apply_rotary_pos_emb(
        q_hf[..., :rot_dim], k_hf[..., :rot_dim], cos.double(), sin.double()
    )
    q_hf = torch.cat((q_rot, q_hf[..., rot_dim:]), -1)[0].transpose(0, 1)
    k_hf = torch.cat((k_rot, k_hf[..., rot_dim:]), -1)[0].transpose(0, 1)
    q_out, k_out = ir_core.ops.rotary_embedding(positions, q, k, hs, cache, True)
    _assert_close(q_out, q_hf, "query")
    _assert_close(k_out, k_hf, "key")


@needs_transformers
@pytest.mark.parametrize("rot_dim", [64, 16], ids=["full", "partial"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gptj_matches_hf_gptj(dtype, rot_dim):
    """GPT-J's interleaved ``apply_rotary_pos_emb`` (rotate_every_two) on its rotary_dim
    channels, with HF's own sinusoid table ([sin | cos]) turned into vLLM's [cos | sin]."""
    from transformers.models.gptj.modeling_gptj import (
        apply_rotary_pos_emb,
        create_sinusoidal_positions,
    )

    positions, q, k, hs = _hf_inputs(dtype, seed=1)
    table = create_sinusoidal_positions(128, rot_dim)
    sin_hf, cos_hf = table.chunk(2, dim=-1)
    cache = torch.cat((cos_hf, sin_hf), dim=-1)
    sin, cos = sin_hf[positions][None], cos_hf[positions][None]  # (1, T, rot / 2)

    def hf(x):  # GPT-J's layout: (batch, tokens, heads, head_size)
        x = x.double()[None]
        rotated = apply_rotary_pos_emb(x[..., :rot_dim], sin.double(), cos.double())
        return torch.cat((rotated, x[..., rot_dim:]), -1)[0]

    q_out, k_out = ir_core.ops.rotary_embedding(positions, q, k, hs, cache, False)
    _assert_close(q_out, hf(q), "query")
    _assert_close(k_out, hf(k), "key")


@needs_transformers
def test_cache_matches_hf_llama_rotary_embedding():
    """Our cache builder against LlamaRotaryEmbedding's default rope (cos/sin per position)."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=512)
    rope = LlamaRotaryEmbedding(config)
    positions = torch.tensor([[0, 1, 5, 100, 511]])
    cos_hf, sin_hf = rope(torch.zeros(1, dtype=torch.float32), positions)
    cache = cos_sin_cache(512, 64, base=config.rope_parameters["rope_theta"])
    cos, sin = cache[positions[0]].chunk(2, dim=-1)
    torch.testing.assert_close(cos_hf[0], torch.cat((cos, cos), -1), atol=2e-5, rtol=0)
    torch.testing.assert_close(sin_hf[0], torch.cat((sin, sin), -1), atol=2e-5, rtol=0)


def test_meta_device_arguments_validate():
    """``ir-core explain --device cuda`` stands meta tensors in for a missing device."""
    sample = ir_core.get_op("rotary_embedding").example_inputs(8, 512, torch.bfloat16, "meta")
    assert ir_core.explain("rotary_embedding", *sample.args).provider
