"""Two real ranks (gloo on 127.0.0.1): a tensor-parallel Gemma-style block is rewritten to the
fused all-reduce norm ops and computes what it computed before, on both ranks.

The ranks run ``ir_fusions_two_ranks.worker`` in processes spawned by torch.multiprocessing,
bounded by a deadline; they save their results and the test process compares them.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(),
        reason="torch.distributed with the gloo backend is not built into this torch",
    ),
]


@pytest.fixture(scope="module")
def work() -> ModuleType:
    """The rank module, importable by name here and in the spawned children."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).parent))
        yield importlib.import_module("ir_fusions_two_ranks")


@pytest.fixture(scope="module")
def ranks(work: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    context = mp.start_processes(
        work.worker,
        args=(work.free_port(), str(out)),
        nprocs=work.WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + work.DEADLINE_S
    while not context.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the {work.WORLD} ranks did not finish within {work.DEADLINE_S:.0f} s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(work.WORLD)]


def _gemma_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm in fp32, written out here as the independent reference."""
    xf = x.float()
    return xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tp_block_is_rewritten_to_the_fused_all_reduce_ops(ranks, dtype):
    for rank, result in enumerate(ranks):
        got = result[str(dtype)]
        assert got["counts"] == {
            "fused_add_rms_norm": 0,
            "dual_rms_norm": 0,
            "all_reduce_rms_norm": 2,
            "fused_add_rms_norm_fp8_quant": 0,
            "rms_norm_fp8_quant": 0,
            "silu_and_mul_fp8_quant": 0,
        }, rank
        assert "ir_core.all_reduce_rms_norm.default" in got["targets"]
        assert "ir_core.all_reduce_fused_add_rms_norm.default" in got["targets"]
        assert not any("_c10d_functional" in t for t in got["targets"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_block_matches_the_unfused_block_on_both_ranks(ranks, dtype):
    for result in ranks:
        got = result[str(dtype)]
        for after, before in zip(got["after"], got["before"]):
            assert torch.equal(after, before)  # same collective, same norm: bitwise
    # every rank holds the same reduced values, so the same normalized outputs
    for a, b in zip(ranks[0][str(dtype)]["after"], ranks[1][str(dtype)]["after"]):
        assert torch.equal(a, b)


def test_fused_block_fp32_against_the_full_model(work, ranks):
    """Independent of any graph: the unsharded model on one process, written out in torch."""
    w = work.full_weights(torch.float32)
    h = w["attn"] @ w["w_o"].t()
    y = _gemma_norm(h, w["gamma1"], work.EPS)
    d = torch.relu(y @ w["w_up"].t()) @ w["w_down"].t()
    s = d + h
    out = _gemma_norm(s, w["gamma2"], work.EPS)
    got_out, got_residual, got_y = ranks[0][str(torch.float32)]["after"]
    # sharded partial sums + all-reduce sum in another order than the full matmul
    torch.testing.assert_close(got_y, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_residual, s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_out, out, atol=1e-5, rtol=1e-5)


def test_compiled_tp_block_reports_the_rewrites(ranks):
    for result in ranks:
        if "compiled" not in result:
            pytest.skip("ir-core's compile integration (ir_core.compile_report) is not here")
        compiled = result["compiled"]
        assert compiled["fusions"]["all_reduce_rms_norm"] == 2
        assert set(compiled["providers"]) == {
            "all_reduce_rms_norm",
            "all_reduce_fused_add_rms_norm",
        }
        for got, want in zip(compiled["outputs"], result[str(torch.float32)]["before"]):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_native_all_reduce_rms_norm_on_every_sample(ranks):
    for result in ranks:
        assert len(result["samples"]) >= 8
        assert "weight_bias=1.0" in result["samples"] and "zero tokens" in result["samples"]
