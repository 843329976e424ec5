"""The catalogue-II ops (gated activations, rotary embedding, gated RMSNorm) through
torch.library, torch.compile (both entry points), the conformance kit and the command line.

rotary_embedding is the first op with an integer tensor argument (positions) and, with
fused_add_rms_norm, returns a tuple: both must pass opcheck, lower (native inlined so Inductor
fuses it), keep a symbolic token count shared by positions and query, and differentiate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo
from torch._functorch import config as functorch_config
from torch._inductor import config as inductor_config

import ir_core
from ir_core import cli
from ir_core.catalogue.rotary import cos_sin_cache
from ir_core.compile import compile_report
from ir_core.conformance import plan, run
from ir_core.testing import mismatch

NEW_OPS = ("silu_and_mul", "gelu_and_mul", "rotary_embedding", "gated_rms_norm")
EPS = 1e-6


@pytest.fixture(autouse=True)
def _compile_env(monkeypatch) -> Iterator[None]:
    """Fresh compiles (a cache hit runs no pass and makes no report); the dispatchers called
    once after Dynamo is loaded, so their faster body is in place before the first compile."""
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")
    for name in NEW_OPS:
        sample = ir_core.get_op(name).sample_inputs(torch.float32)[0]
        getattr(ir_core.ops, name)(*sample.args, **sample.kwargs)
    torch._dynamo.reset()
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        yield
    torch._dynamo.reset()


def _inputs(tokens: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "gate_up": torch.randn(tokens, 2 * 48, generator=g).to(dtype),
        "positions": torch.randint(0, 64, (tokens,), generator=g),
        "qkv": torch.randn(tokens, 3, 4, 32, generator=g).to(dtype),
        "x": torch.randn(tokens, 64, generator=g).to(dtype),
        "z": torch.randn(tokens, 64, generator=g).to(dtype),
        "w": torch.randn(64, generator=g),
    }


CACHE = cos_sin_cache(64, 16)  # partial rotary: 16 of 32 channels


def _layer(ops, a: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Each new op between ordinary torch ops, so lowering has neighbours to fuse with.
    ``ops`` is ``ir_core.ops`` (compiled and eager) or a namespace of the native functions.

    The neighbours are exact in any dtype (scaling by powers of two, negation): Inductor
    keeps a fused chain in fp32 where eager rounds after each op, which would otherwise show
    as differences that are not the ops'.
    """
    silu = ops.silu_and_mul(a["gate_up"] * 2) * 0.5
    gelu = ops.gelu_and_mul(-a["gate_up"], "tanh") * 4
    q, k, _ = a["qkv"].unbind(1)  # (T, 4, 32) views with rows 3 * 4 * 32 apart
    q, k = ops.rotary_embedding(a["positions"], q * 2, k, 32, CACHE, False)
    gated = ops.gated_rms_norm(a["x"] * 0.25, a["w"], -a["z"], EPS, group_size=16) * 2
    return silu, gelu, q * 0.5, -k, gated


class _Native:
    def __getattr__(self, name: str):
        return ir_core.get_op(name).native


def _check_outputs(got: tuple[torch.Tensor, ...], a: dict[str, torch.Tensor]) -> None:
    expected = _layer(_Native(), a)
    names = ("silu_and_mul", "gelu_and_mul", "rotary_embedding", "rotary_embedding")
    for name, o, e in zip((*names, "gated_rms_norm"), got, expected, strict=True):
        problem = mismatch(ir_core.get_op(name), o, e, what=name)
        assert problem is None, problem


def _lowered() -> dict[str, dict[str, int]]:
    report = compile_report()
    assert report is not None and report.unlowered == [], report and report.unlowered
    return report.providers()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["inductor", "ir_core"])
def test_every_op_lowers_in_context(backend, dtype):
    a = _inputs(7, dtype)
    with torch.no_grad():
        got = torch.compile(lambda a: _layer(ir_core.ops, a), backend=backend, fullgraph=True)(a)
    _check_outputs(got, a)
    assert _lowered() == {name: {"native": 1} for name in NEW_OPS}


def test_one_graph_serves_every_token_count():
    """Dynamic token count: positions and query share one symbol and nothing specializes it
    (one graph for 5, 7, 9 and 13 tokens; none equals another dim, which duck sizing would
    share). rotary_embedding alone: the op whose int64 positions carry the token count."""

    def rope(positions: torch.Tensor, qkv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, _ = qkv.unbind(1)
        return ir_core.ops.rotary_embedding(positions, q, k, 32, CACHE, True)

    compiled = torch.compile(rope, dynamic=True, fullgraph=True)
    op = ir_core.get_op("rotary_embedding")
    reports = set()
    with torch.no_grad():
        for tokens in (5, 7, 9, 13):
            a = _inputs(tokens, torch.float16, seed=tokens)
            q, k, _ = a["qkv"].unbind(1)
            expected = op.native(a["positions"], q, k, 32, CACHE, True)
            for got, want in zip(compiled(a["positions"], a["qkv"]), expected, strict=True):
                assert mismatch(op, got, want) is None
            reports.add(id(compile_report()))
    assert len(reports) == 1
    assert _lowered() == {"rotary_embedding": {"native": 1}}


def test_grad_mode_differentiates_through_native():
    g = torch.Generator().manual_seed(1)
    positions = torch.randint(0, 64, (5,), generator=g)
    q = torch.randn(5, 2 * 32, generator=g, requires_grad=True)
    k = torch.randn(5, 32, generator=g, requires_grad=True)
    x = torch.randn(5, 2 * 64, generator=g, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(64, generator=g))

    def loss(q, k, x):
        q2, k2 = ir_core.ops.rotary_embedding(positions, q, k, 32, CACHE)
        h = ir_core.ops.gated_rms_norm(ir_core.ops.silu_and_mul(x), w, x[:, 64:], EPS)
        return (q2 * q2).sum() + (k2 * 3).sum() + ir_core.ops.gelu_and_mul(x).sum() + h.sum()

    torch.compile(loss, fullgraph=True)(q, k, x).backward()
    compiled = [t.grad.clone() for t in (q, k, x, w)]
    assert compile_report().unlowered == []
    for t in (q, k, x, w):
        t.grad = None
    loss(q, k, x).backward()
    for got, t in zip(compiled, (q, k, x, w)):
        torch.testing.assert_close(got, t.grad)


# -- the conformance kit and the command line --------------------------------------------------


def test_kit_checks_native_on_every_sample_with_opcheck():
    """numerics and input mutation on every sample of every new op in fp32/fp16/bf16, and
    torch.library.opcheck (schema, fake impl, autograd registration, AOT dispatch, static and
    dynamic) on every bf16 sample. opcheck tests the op's registration, which the dtype does
    not change, and costs about half a second a sample: once per sample, not per dtype."""
    report = run(["native"], ops=list(NEW_OPS), checks=["numerics", "mutation"])
    opcheck = run(["native"], ops=list(NEW_OPS), dtypes=[torch.bfloat16], checks=["opcheck"])
    report.plans += opcheck.plans
    report.results += opcheck.results
    assert report.ok, [r.message for r in report.failures][:5]
    for p in report.plans:
        assert not p.skip and len(p.claimed_cases) == len(p.cases) > 0, p.target.id
    assert {p.target.op for p in report.plans} == set(NEW_OPS)
    assert len({(p.target.op, p.target.dtype) for p in report.plans}) == 3 * len(NEW_OPS)
    opchecked = [r for r in report.results if r.check == "opcheck"]
    assert all(r.outcome == "passed" for r in opchecked)
    assert len(opchecked) == sum(len(p.cases) for p in opcheck.plans)


def test_ir_core_check_compiles_each_op(capsys):
    code = cli.main(
        ["check", "--provider", "native", "--dtype", "bf16", "--checks", "compile", "--json"]
        + [arg for name in NEW_OPS for arg in ("--op", name)]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ok"], data["results"]
    compiled = {r["op"] for r in data["results"] if r["check"] == "compile"}
    assert compiled == set(NEW_OPS)
    assert all(r["outcome"] == "passed" for r in data["results"])


def test_pytest_kit_parametrizes_the_new_ops(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IR_CORE_", "PYTEST_"))}
    env.pop("TRITON_INTERPRET", None)
    ops = [arg for name in NEW_OPS for arg in ("--ir-op", name)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "ir_core.conformance", "--ir-provider",
         "native", *ops, "--ir-dtype", "fp16", "-k", "numerics or supports_args or claims",
         "-p", "no:cacheprovider", "-rs", "-v"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for name in NEW_OPS:
        assert f"test_claims[{name}-native-cpu-float16] PASSED" in result.stdout
        assert f"test_numerics[{name}-native-cpu-float16-" in result.stdout


def test_plan_covers_each_new_op_for_native():
    targets = {(p.target.op, p.target.dtype) for p in plan("native", ops=list(NEW_OPS))}
    assert len(targets) == 12


def test_list_ops_shows_the_new_ops(capsys):
    assert cli.main(["list-ops", "--json"]) == 0
    ops = {o["op"]: o for o in json.loads(capsys.readouterr().out)["ops"]}
    assert set(NEW_OPS) <= set(ops)
    assert ops["rotary_embedding"]["schema"] == (
        "ir_core::rotary_embedding(Tensor positions, Tensor query, Tensor key, SymInt head_size, "
        "Tensor cos_sin_cache, bool is_neox=True) -> (Tensor, Tensor)"
    )
    assert ops["gelu_and_mul"]["schema"].startswith("ir_core::gelu_and_mul(Tensor x, str approx")
    assert cli.main(["list-ops"]) == 0
    out = capsys.readouterr().out
    assert all(f"ir_core::{name}(" in out for name in NEW_OPS)


@pytest.mark.parametrize("name", NEW_OPS)
def test_explain_and_bench_build_example_inputs(capsys, name):
    assert cli.main(["explain", name, "--shape", "4,256", "--device", "cuda", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provider"] == "native"
    assert cli.main(["bench", name, "--shape", "4,256", "--min-time", "0.01", "-q", "--json"]) == 0
    native = json.loads(capsys.readouterr().out)["impls"][0]
    assert (native["provider"], native["status"], native["matches_native"]) == (
        "native",
        "ok",
        True,
    )
