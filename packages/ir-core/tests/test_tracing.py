"""``ir_core.trace()``, ``IR_CORE_TRACE`` and ``ir-core explain --trace``: what ran, counted.

Every test runs on both hit paths: a trace swaps either one out for the recording path, and
swaps the same one back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from kernels import scaled_rms_norm
from torch.fx.experimental.proxy_tensor import make_fx

import ir_core
from ir_core import cli, dispatch, tracing
from ir_core.compile.pipeline import run_passes

X, W = torch.randn(4, 16), torch.randn(16)
SIG = "x=float32[4, 16]@cpu, weight=float32[16]@cpu, epsilon=1e-06, weight_bias=0.0, variance_size=None"


#: every test on both hit paths (the conftest's ``hit_path`` fixture)
pytestmark = pytest.mark.usefixtures("hit_path")


@pytest.fixture
def doubled(plugin):
    """A provider ``doubled`` (native times 2) that takes float32 only."""

    rms_norm = scaled_rms_norm(2)

    def supports(x, weight, epsilon, weight_bias=0.0, variance_size=None):
        return x.dtype == torch.float32

    def register_impls(registry):
        registry.register_impl(
            "rms_norm", "doubled", rms_norm, device_types=("cpu",), supports_args=supports
        )

    plugin(
        register_impls=register_impls,
        platform_priority=lambda platform: {"rms_norm": ["doubled"]},
    )


def rms_paths():
    return next(p for p in dispatch._hit_paths if p.namespace["op"].name == "rms_norm")


def test_a_trace_counts_each_provider_per_signature(doubled):
    half = (X.half(), W.half(), 1e-6)
    with ir_core.trace() as t:
        for _ in range(3):
            ir_core.ops.rms_norm(X, W, 1e-6)
        ir_core.ops.rms_norm(*half)
    ir_core.ops.rms_norm(X, W, 1e-6)  # after the block: not counted
    assert t.records == [
        ir_core.TraceRecord("rms_norm", SIG.replace("float32", "float16"), "native", 1),
        ir_core.TraceRecord("rms_norm", SIG, "doubled", 3),
    ]
    assert "rms_norm  doubled         3  x=float32[4, 16]@cpu" in t.summary()


def test_tracing_swaps_the_hit_path_in_and_back_out(hit_path):
    paths = rms_paths()
    usual = paths.namespace["hit"]
    assert usual is (paths.compiled if hit_path == "compiled" else paths.python)
    with ir_core.trace():
        assert paths.namespace["hit"] is paths.namespace["recording_hit"]
        with ir_core.trace():
            pass
        assert paths.namespace["hit"] is paths.namespace["recording_hit"]  # outer still on
    assert paths.namespace["hit"] is usual


def test_nested_traces_each_count_the_calls_made_while_they_are_active():
    with ir_core.trace() as outer:
        ir_core.ops.rms_norm(X, W, 1e-6)
        with ir_core.trace() as inner:
            ir_core.ops.rms_norm(X, W, 1e-6)
        ir_core.ops.rms_norm(X, W, 1e-6)
    assert [r.count for r in outer.records] == [3]
    assert [r.count for r in inner.records] == [1]


def test_counts_from_concurrent_threads_are_exact():
    threads, calls = 4, 200
    start = threading.Barrier(threads)

    def work():
        start.wait()
        for _ in range(calls):
            ir_core.ops.rms_norm(X, W, 1e-6)

    with ir_core.trace() as t:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    assert [(r.provider, r.count) for r in t.records] == [("native", threads * calls)]


def test_bound_calls_are_counted_while_tracing_and_cost_nothing_after(doubled):
    bound = ir_core.bind("rms_norm", X, W, 1e-6)
    plain_kernel = bound.kernel
    with ir_core.trace() as t:
        bound(X, W, 1e-6)
        bound(X, W, 1e-6)
        late = ir_core.bind("rms_norm", X, W, 1e-6)  # bound inside the trace
        late(X, W, 1e-6)
    bound(X, W, 1e-6)
    late(X, W, 1e-6)
    assert t.records == [ir_core.TraceRecord("rms_norm", SIG, "doubled", 3)]
    assert bound.kernel is plain_kernel
    assert bound.__globals__["kernel"] is plain_kernel  # rebound to the kernel itself


def test_a_failing_kernel_is_still_counted_and_keeps_its_note(plugin):
    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        raise RuntimeError("kernel bug")

    plugin(
        register_impls=lambda registry: registry.register_impl(
            "rms_norm", "broken", rms_norm, device_types=("cpu",)
        )
    )
    with ir_core.set_priority(rms_norm=["broken"]), ir_core.trace() as t:
        with pytest.raises(RuntimeError, match="kernel bug") as caught:
            ir_core.ops.rms_norm(X, W, 1e-6)
    assert any("provider 'broken'" in n for n in caught.value.__notes__)
    assert [(r.provider, r.count) for r in t.records] == [("broken", 1)]


def test_a_priority_change_while_tracing_is_recorded_under_the_new_provider(doubled):
    with ir_core.trace() as t:
        ir_core.ops.rms_norm(X, W, 1e-6)
        with ir_core.set_priority(rms_norm=["native"]):
            ir_core.ops.rms_norm(X, W, 1e-6)
    assert [(r.provider, r.count) for r in t.records] == [("doubled", 1), ("native", 1)]


def test_save_and_load_round_trip_with_a_versioned_schema(tmp_path, doubled):
    with ir_core.trace() as t:
        ir_core.ops.rms_norm(X, W, 1e-6)
    path = tmp_path / "trace.json"
    t.save(path)
    data = json.loads(path.read_text())
    assert data["schema"] == "ir_core.trace" and data["version"] == tracing.VERSION
    assert data["records"] == [
        {"op": "rms_norm", "signature": SIG, "provider": "doubled", "count": 1}
    ]
    assert ir_core.Trace.load(path).records == t.records


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "not JSON"),
        ('{"records": []}', "not an ir-core trace"),
        ('{"schema": "ir_core.trace", "version": 99, "records": []}', "version 99"),
        ('{"schema": "ir_core.trace", "version": 1, "records": [{"op": "x"}]}', "malformed"),
    ],
)
def test_a_file_that_is_not_a_trace_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(ir_core.TraceFileError, match=words):
        ir_core.Trace.load(path)


def test_compile_reports_made_while_tracing_are_kept(monkeypatch):
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")
    ir_op = torch.ops.ir_core.rms_norm
    gm = make_fx(lambda x, w: ir_op(x, w, 1e-6), tracing_mode="symbolic")(X, W)
    with ir_core.trace() as t:
        report = run_passes(gm)
    assert report is not None
    assert t.compiled == [report.to_dict()]
    assert t.compiled[0]["lowered"][0]["provider"] == "native"
    assert "compiled " in t.summary() and "rms_norm -> native*1" in t.summary()


def test_the_environment_traces_the_whole_process_and_writes_at_exit(tmp_path):
    path = tmp_path / "process.json"
    code = (
        "import torch, ir_core\n"
        "x, w = torch.randn(4, 16), torch.randn(16)\n"
        "for _ in range(5): ir_core.ops.rms_norm(x, w, 1e-6)\n"
        "ir_core.bind('rms_norm', x, w, 1e-6)(x, w, 1e-6)\n"
    )
    env = {**os.environ, "IR_CORE_TRACE": str(path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    records = ir_core.Trace.load(path).records
    assert [(r.op, r.provider, r.count) for r in records] == [("rms_norm", "native", 6)]


def test_an_unwritable_trace_file_is_a_warning_at_exit_not_a_traceback(tmp_path):
    path = tmp_path / "no-such-dir" / "t.json"
    code = "import torch, ir_core; ir_core.ops.silu_and_mul(torch.randn(2, 8))"
    env = {**os.environ, "IR_CORE_TRACE": str(path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert "the trace could not be written" in done.stderr and "Traceback" not in done.stderr
    assert not path.exists()


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_reads_a_trace_file(tmp_path, capsys, doubled):
    with ir_core.trace() as t:
        ir_core.ops.rms_norm(X, W, 1e-6)
        ir_core.ops.rms_norm(X, W, 1e-6)
        ir_core.ops.silu_and_mul(torch.randn(4, 16))
    path = tmp_path / "t.json"
    t.save(path)
    code, out, _ = run(capsys, "explain", "--trace", str(path))
    assert code == 0
    # a row's first line starts with its op; the arguments cell may wrap onto indented lines
    lines = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert lines[0].split() == ["op", "provider", "calls", "arguments"]
    assert lines[2].split()[:3] == ["rms_norm", "doubled", "2"]
    assert lines[3].split()[:3] == ["silu_and_mul", "native", "1"]
    code, out, _ = run(capsys, "explain", "rms_norm", "--trace", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["records"] == [
        {"op": "rms_norm", "signature": SIG, "provider": "doubled", "count": 2}
    ]


def usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


def test_explain_trace_errors_are_usage_errors(tmp_path, capsys):
    assert "cannot read" in usage_error(capsys, "explain", "--trace", str(tmp_path / "no.json"))
    (tmp_path / "bad.json").write_text("[]")
    err = usage_error(capsys, "explain", "--trace", str(tmp_path / "bad.json"))
    assert "not an ir-core trace" in err
    assert "needs an op name" in usage_error(capsys, "explain")


def test_explain_require_says_what_lacks_the_capability(capsys):
    code, out, _ = run(capsys, "explain", "rms_norm", "--require", "batch_invariant")
    assert code == 1
    assert out.splitlines()[0] == "rms_norm: no impl has the required capabilities batch_invariant"
    assert "  skipped native: lacks capability batch_invariant" in out.splitlines()
    code, out, _ = run(capsys, "explain", "rms_norm", "--require", "deterministic", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["provider"] == "native" and data["require"] == ["deterministic"]
    code, _, err = run(capsys, "explain", "rms_norm", "--require", "batch_invariants")
    assert code == 1 and "did you mean 'batch_invariant'" in err
