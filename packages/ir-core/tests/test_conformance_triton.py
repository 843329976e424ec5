"""The conformance kit on a real provider: ir-provider-cuda's ``triton`` kernels.

Without a GPU the kernels run on CPU tensors through Triton's interpreter; ``TRITON_INTERPRET``
must be set before the plugin registers its impls, so the kit runs in a fresh process with it.
bf16 only (every op, every sample, every check): the interpreter is slow, and bf16 is the
dtype with the tightest rounding story (fp32 math, one rounding at the end).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import ir_core

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ir_provider_cuda") is None,
    reason="ir-provider-cuda is not installed: no triton provider to check",
)


def test_kit_passes_for_triton(tmp_path):
    pytest.importorskip("triton", reason="triton is not installed (it ships Linux wheels only)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IR_CORE_", "PYTEST_"))}
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "ir_core.conformance",
         "--ir-provider", "triton", "--ir-dtype", "bf16", "-p", "no:cacheprovider", "-q", "-rs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary
    # every op the provider implements was checked on this machine's device
    quant = [op.name for op in ir_core.registry.ops() if "fp8_quant" in op.name]
    assert len(quant) == 9
    for op in (
        "rms_norm",
        "fused_add_rms_norm",
        "dual_rms_norm",
        "silu_and_mul",
        "gelu_and_mul",
        "rotary_embedding",
        "gated_rms_norm",
        *quant,
    ):
        assert f"not checked {op}-triton-cpu" not in result.stdout
