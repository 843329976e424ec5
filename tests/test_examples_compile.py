"""The decoder blocks of ``ir_core.examples.decoder_blocks`` compiled with both entry points.

Each block (Llama, Gemma, DeepSeek MLA, Qwen3-Next) is compiled with plain ``torch.compile``
(Inductor, ir_core's passes installed automatically) and with ``backend="ir_core"``, and must
match the eager model (which dispatches each IR op to native here) within tolerance, with
every IR node lowered -- the gated MLP activations, RoPE and the gated norm in context, among
the norms. When ir-fusions is installed, its passes must also have found the add + norm pairs
(and MLA's latent norm pair) the blocks are written with.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch._dynamo
from torch._functorch import config as functorch_config
from torch._inductor import config as inductor_config

import ir_core
from ir_core.compile import fusion_passes
from ir_core.examples.decoder_blocks import KINDS, make_block

#: fp32 tolerance for a 2-layer stack: Inductor reorders the reductions of norms, softmax and
#: matmuls (and the fused add + norm keeps its sum in fp32), so results differ in the last bits
#: of many ops in a row, not of one op (whose tolerance is 1e-5 / 1.3e-6).
ATOL = RTOL = 1e-4

#: Norms each block is written with, and the add + norm pairs ``fused_add_rms_norm`` finds:
#: every residual add is followed by a norm except the first layer's input (2 layers).
EXPECTED_FUSIONS = {
    "llama": {"fused_add_rms_norm": 4},
    "gemma": {"fused_add_rms_norm": 4},
    "deepseek_mla": {"fused_add_rms_norm": 4, "dual_rms_norm": 2},
    "qwen3_next": {"fused_add_rms_norm": 4},
}

#: The non-norm IR ops each block is written with, and how many nodes of each (2 layers).
EXPECTED_OPS = {
    "llama": {"silu_and_mul": 2, "rotary_embedding": 2},
    "gemma": {"gelu_and_mul": 2, "rotary_embedding": 2},
    "deepseek_mla": {"silu_and_mul": 2, "rotary_embedding": 2},
    "qwen3_next": {"silu_and_mul": 2, "gated_rms_norm": 2},
}


@pytest.fixture(autouse=True)
def _fresh_compiles() -> Iterator[None]:
    """Compile for real every time (a cache hit runs no pass and makes no report)."""
    torch._dynamo.reset()
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        yield
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
@pytest.mark.parametrize("kind", KINDS)
def test_block_compiles_to_the_eager_result_with_every_ir_node_lowered(kind, backend):
    block = make_block(kind, layers=2, hidden=32)
    x = block.example_input(tokens=7)
    with torch.no_grad():
        expected = block(x)
        out = torch.compile(block, backend=backend, fullgraph=True)(x)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=RTOL)

    report = ir_core.compile_report()
    assert report is not None
    assert report.unlowered == []
    assert report.lowered, "the block's IR nodes reached the passes"
    lowered = report.providers()
    for name, count in EXPECTED_OPS[kind].items():
        assert sum(lowered.get(name, {}).values()) == count, (name, lowered)
    registered = set(fusion_passes().names())
    for name, count in EXPECTED_FUSIONS[kind].items():
        if name in registered:
            assert report.fusions[name] == count, report


def test_gemma_bf16_activations_meet_fp32_norm_weights():
    """Gemma on bf16: every norm multiplies by ``1 + w`` with ``w`` kept in fp32."""
    block = make_block("gemma", layers=2, hidden=32)
    assert block.final_norm.dtype == torch.float32
    x = block.example_input(tokens=5, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = block(x)
        out = torch.compile(block, backend="ir_core", fullgraph=True)(x)
    assert out.dtype == torch.bfloat16
    # eager rounds to bf16 after every op, the fused kernels once: outputs of magnitude ~2
    # differ by a bf16 ulp or two (2^-7 relative) after two layers
    torch.testing.assert_close(out.float(), expected.float(), atol=3e-2, rtol=1.6e-2)
    assert ir_core.compile_report().unlowered == []
