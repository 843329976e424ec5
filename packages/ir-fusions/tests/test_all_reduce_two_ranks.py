"""Two real ranks (gloo on 127.0.0.1): a tensor-parallel Gemma-style block is rewritten to the
fused all-reduce norm ops and computes what it computed before, on both ranks.

The workers run in processes spawned by torch.multiprocessing, bounded by a deadline; they save
their results and the test process compares them.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

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

WORLD = 2
DEADLINE_S = 240.0
HIDDEN, FFN, TOKENS = 32, 64, 5
EPS = 1e-6


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gemma_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm in fp32, written out here as the independent reference."""
    xf = x.float()
    return xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight.float())


def _full_weights(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The unsharded model, identical on every rank (same seed)."""
    g = torch.Generator().manual_seed(1234)

    def rnd(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(shape, generator=g) * scale).to(dtype)

    return {
        "attn": rnd(TOKENS, HIDDEN, scale=1.0),  # attention output before o_proj
        "w_o": rnd(HIDDEN, HIDDEN, scale=HIDDEN**-0.5),
        "w_up": rnd(FFN, HIDDEN, scale=HIDDEN**-0.5),
        "w_down": rnd(HIDDEN, FFN, scale=FFN**-0.5),
        "gamma1": rnd(HIDDEN, scale=0.1),  # Gemma weights sit around 0: scale is 1 + weight
        "gamma2": torch.randn(HIDDEN, generator=g) * 0.1,  # an fp32 weight, as Gemma keeps it
    }


def _tp_block(group_name: str):
    """o_proj (row-parallel) -> all-reduce -> Gemma norm; MLP (column- then row-parallel) ->
    all-reduce -> Gemma fused add norm with the first all-reduce's output as residual."""
    import torch.distributed._functional_collectives as fc

    ir = torch.ops.ir_core

    def block(attn_shard, w_o_shard, w_up_shard, w_down_shard, gamma1, gamma2):
        h = fc.all_reduce(attn_shard @ w_o_shard.t(), "sum", group_name)
        y = ir.rms_norm(h, gamma1, EPS, 1.0)
        up = torch.relu(y @ w_up_shard.t())
        d = fc.all_reduce(up @ w_down_shard.t(), "sum", group_name)
        out, residual = ir.fused_add_rms_norm(d, h, gamma2, EPS, 1.0)
        return out, residual, y

    return block


def _shards(w: dict[str, torch.Tensor], rank: int) -> tuple[torch.Tensor, ...]:
    hh, ff = HIDDEN // WORLD, FFN // WORLD
    cols = slice(rank * hh, (rank + 1) * hh)
    return (
        w["attn"][:, cols].contiguous(),
        w["w_o"][:, cols].contiguous(),
        w["w_up"][rank * ff : (rank + 1) * ff].contiguous(),
        w["w_down"][:, rank * ff : (rank + 1) * ff].contiguous(),
        w["gamma1"],
        w["gamma2"],
    )


def _run_rank(rank: int) -> dict[str, object]:
    from torch.fx.experimental.proxy_tensor import make_fx

    import ir_core
    from ir_fusions import PASSES

    ir_core.load_plugins()
    group_name = dist.group.WORLD.group_name
    results: dict[str, object] = {}
    for dtype in (torch.float32, torch.bfloat16):
        weights = _full_weights(dtype)
        args = _shards(weights, rank)
        block = _tp_block(group_name)
        unfused = make_fx(block, tracing_mode="fake")(*args)
        fused = make_fx(block, tracing_mode="fake")(*args)
        counts = {p.name: p(fused) for p in PASSES}
        targets = [str(n.target) for n in fused.graph.nodes if n.op == "call_function"]
        before = unfused(*args)
        after = fused(*args)
        results[str(dtype)] = {
            "counts": counts,
            "targets": targets,
            "before": [t.clone() for t in before],
            "after": [t.clone() for t in after],
        }

    # Through torch.compile, where ir-core runs the passes post-grad (when it has that).
    if hasattr(ir_core, "compile_report"):
        from torch._inductor import config as inductor_config

        args = _shards(_full_weights(torch.float32), rank)
        with inductor_config.patch(fx_graph_cache=False):
            compiled = torch.compile(_tp_block(group_name), fullgraph=True)(*args)
        report = ir_core.compile_report()
        results["compiled"] = {
            "fusions": dict(report.fusions),
            "providers": report.providers(),
            "outputs": [t.clone() for t in compiled],
        }

    # The fused op's native semantics on every sample, against dist.all_reduce + the norm.
    op = ir_core.get_op("all_reduce_rms_norm")
    checked = []
    for sample in op.sample_inputs(torch.float32):
        out, reduced = ir_core.ops.all_reduce_rms_norm(*sample.args, **sample.kwargs)
        x, _, weight, eps = sample.args
        expected = x.clone()
        dist.all_reduce(expected)
        assert torch.equal(reduced, expected), sample.label
        bias = sample.kwargs.get("weight_bias", 0.0)
        vs = sample.kwargs.get("variance_size")
        xf = expected.float()
        var = xf[..., :vs].pow(2).mean(-1, keepdim=True) if vs else xf.pow(2).mean(-1, keepdim=True)
        norm = xf / torch.sqrt(var + eps)
        if weight is not None:
            norm = norm * (weight.float() + bias)
        torch.testing.assert_close(out, norm.to(x.dtype), atol=1e-5, rtol=1e-5, msg=sample.label)
        checked.append(sample.label)
    results["samples"] = checked
    return results


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=DEADLINE_S / 2)
    )
    try:
        torch.save(_run_rank(rank), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    context = mp.start_processes(
        _worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish within {DEADLINE_S:.0f} s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tp_block_is_rewritten_to_the_fused_all_reduce_ops(ranks, dtype):
    for rank, result in enumerate(ranks):
        got = result[str(dtype)]
        assert got["counts"] == {
            "fused_add_rms_norm": 0,
            "dual_rms_norm": 0,
            "all_reduce_rms_norm": 2,
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


def test_fused_block_fp32_against_the_full_model(ranks):
    """Independent of any graph: the unsharded model on one process, written out in torch."""
    w = _full_weights(torch.float32)
    h = w["attn"] @ w["w_o"].t()
    y = _gemma_norm(h, w["gamma1"], EPS)
    d = torch.relu(y @ w["w_up"].t()) @ w["w_down"].t()
    s = d + h
    out = _gemma_norm(s, w["gamma2"], EPS)
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
