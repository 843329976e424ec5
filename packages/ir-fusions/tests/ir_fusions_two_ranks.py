"""The work of each rank in ``test_all_reduce_two_ranks.py``, in a module of its own.

Spawned processes import the function they run by module name; a test module imported by
pytest's importlib mode has a name no fresh interpreter can import, so the rank's code lives
here, on a path the test puts on ``sys.path`` (which spawned children inherit).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

WORLD = 2
DEADLINE_S = 240.0
HIDDEN, FFN, TOKENS = 32, 64, 5
EPS = 1e-6


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full_weights(dtype: torch.dtype) -> dict[str, torch.Tensor]:
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
        weights = full_weights(dtype)
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

        args = _shards(full_weights(torch.float32), rank)
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


def worker(rank: int, port: int, out_dir: str) -> None:
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
