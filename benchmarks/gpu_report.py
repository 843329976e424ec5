"""One GPU run, one JSON file: every GPU-marked test of every package, then the bandwidth of
every implementation of the norms and the decoder-layer ops (``norms.py``, ``layer_ops.py``).

    python benchmarks/gpu_report.py [--output gpu-report.json] [--budget-s 480]
    nox -s gpu                        # the same, in a venv with CUDA torch and the vendors

Designed for one H100/H200 in at most 8 minutes (``--budget-s``): the tests get at most half
the budget (their own pytest run; a timeout is recorded as such), the benchmarks a bounded grid
and whatever time is left: cells that no longer fit are recorded as skipped, never run late.
Bandwidth cells: GB/s of each op's minimum traffic, % of this device's measured copy
bandwidth, microseconds (``triton.testing.do_bench``, L2 flushed, median), with the same
timing and byte counts as ``norms.py``. The JSON also records the device, the versions, every
provider's status and the elapsed time; the script prints its own elapsed time at the end.

It refuses to run without a GPU (exit 2), so a CPU machine cannot "pass" it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
#: tokens x hidden for rms_norm / fused_add_rms_norm (decode, small and large prefill).
NORM_TOKENS = (1, 64, 1024, 16384)
NORM_HIDDEN = (2048, 4096, 8192)
#: tokens for the decoder-layer ops, at the widths ``layer_ops.SHAPES`` names.
LAYER_TOKENS = (1, 1024, 16384)
#: Seconds kept back at the end for writing the report.
MARGIN_S = 15.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default=str(ROOT / "gpu-report.json"), help="the JSON file")
    p.add_argument("--budget-s", type=float, default=480.0, help="total wall-clock budget")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    return p.parse_args(argv)


def require_gpu() -> dict[str, Any]:
    """The device, or exit 2 saying why there is none."""
    if not torch.cuda.is_available():
        build = torch.version.cuda or torch.version.hip or "none (a CPU-only build)"
        print(
            "gpu_report: needs an NVIDIA or AMD GPU, and torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA/ROCm build: {build}). Nothing was run.",
            file=sys.stderr,
        )
        sys.exit(2)
    major, minor = torch.cuda.get_device_capability()
    return {
        "name": torch.cuda.get_device_name(),
        "capability": f"{major}.{minor}",
        "count": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": torch.version.hip,
    }


# -- tests ------------------------------------------------------------------------------------


def test_paths() -> list[str]:
    return [str(p) for p in sorted(ROOT.glob("packages/*/tests"))] + [str(ROOT / "tests")]


def run_tests(timeout_s: float) -> dict[str, Any]:
    """``pytest -m gpu`` over every package, as a subprocess (its own TRITON_INTERPRET, its own
    plugin loading); the JUnit XML it writes is summarized here."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", f"--junitxml={junit}"]
        command += ["-p", "no:cacheprovider", *test_paths()]
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout_s, text=True,
                                  capture_output=True)  # fmt: skip
            exit_code, tail = done.returncode, (done.stdout + done.stderr)[-4000:]
        except subprocess.TimeoutExpired as timeout:
            output = (timeout.stdout or "") + (timeout.stderr or "")
            exit_code = None
            tail = f"timed out after {timeout_s:.0f} s\n" + str(output)[-4000:]
        result: dict[str, Any] = {
            "command": command,
            "exit_code": exit_code,
            "duration_s": round(time.perf_counter() - start, 1),
            "output_tail": tail,
        }
        if junit.exists():
            result.update(summarize_junit(junit))
    print(f"tests: exit {exit_code}, {result.get('counts')}, {result['duration_s']} s")
    return result


def summarize_junit(path: Path) -> dict[str, Any]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips = [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = ("failure", "error", "skipped")
        outcome = next((child for child in case if child.tag in tags), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            skips.append({"test": name, "reason": outcome.get("message", "")})
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            failures.append({"test": name, "message": (outcome.get("message") or "")[:2000]})
    return {"counts": counts, "failures": failures, "skips": skips}


# -- benchmarks -------------------------------------------------------------------------------


def benchmark_grid() -> list[tuple[str, int, int, str]]:
    """(op, rows, width, label) for every benchmark shape, norms first."""
    from layer_ops import SHAPES

    grid = [
        (op, n, h, f"{n}x{h}")
        for op in ("rms_norm", "fused_add_rms_norm")
        for n in NORM_TOKENS
        for h in NORM_HIDDEN
    ]
    for op, shapes in SHAPES.items():
        for n in LAYER_TOKENS:
            for label, rows_per_token, width in shapes:
                grid.append((op, n * rows_per_token, width, f"{n} tokens, {label}"))
    return grid


def run_benchmarks(dtype: torch.dtype, deadline: float) -> dict[str, Any]:
    from norms import copy_bandwidth_gbs, implementations, time_ms, traffic_bytes

    import ir_core

    options = argparse.Namespace(quick=False, no_compile=False)
    ceiling = copy_bandwidth_gbs("cuda", False)
    print(f"copy bandwidth: {ceiling:.0f} GB/s")
    cells: list[dict[str, Any]] = []
    impls_of: dict[str, list[tuple[str, Any]]] = {}
    for op_name, rows, width, label in benchmark_grid():
        op = ir_core.get_op(op_name)
        if op_name not in impls_of:
            impls_of[op_name] = implementations(op, "cuda", options)
        sample = op.example_inputs(rows, width, dtype, "cuda")
        args = op.bind(sample.args, sample.kwargs)
        for impl_label, impl in impls_of[op_name]:
            cell: dict[str, Any] = {"op": op_name, "shape": label, "impl": impl_label}
            cell.update(rows=rows, width=width)
            cells.append(cell)
            if time.monotonic() > deadline:
                cell["skipped"] = "time budget"
                continue
            fn = getattr(impl, "fn", impl)
            predicate = getattr(impl, "supports_args", None)
            if predicate is not None and not predicate(*args):
                cell["declined"] = True
                continue
            try:
                out = fn(*args)
                ms = time_ms(lambda fn=fn, args=args: fn(*args), "cuda", False)
            except Exception as exc:  # one impl failing must not lose the others' figures
                cell["error"] = f"{type(exc).__name__}: {exc}"[:500]
                continue
            gbs = traffic_bytes(args, out) / (ms * 1e-3) / 1e9
            cell.update(gbs=round(gbs, 1), pct_of_copy=round(100 * gbs / ceiling, 1))
            cell["us"] = round(ms * 1e3, 2)
        shown = [c for c in cells if c["shape"] == label and c["op"] == op_name]
        print(f"{op_name:>20} {label:>24} " + "  ".join(
            f"{c['impl']}={c['gbs']:.0f}GB/s({c['pct_of_copy']:.0f}%)" if "gbs" in c
            else f"{c['impl']}={'-' if c.get('declined') else c.get('skipped') or 'error'}"
            for c in shown
        ))  # fmt: skip
    return {"copy_bandwidth_gbs": round(ceiling, 1), "dtype": str(dtype), "cells": cells}


def provider_status() -> dict[str, str]:
    import ir_core

    ir_core.load_plugins()
    status = {}
    for op_name in ("rms_norm", "silu_and_mul", "rotary_embedding"):
        for provider, impl in ir_core.get_op(op_name).impls.items():
            ok, reason = impl.status()
            status.setdefault(provider, "available" if ok else f"unavailable: {reason}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    deadline = start + args.budget_s - MARGIN_S
    device = require_gpu()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # norms.py, layer_ops.py
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 256  # one compile per shape, by design here
    report: dict[str, Any] = {"device": device, "budget_s": args.budget_s}
    if not args.skip_tests:
        report["tests"] = run_tests(timeout_s=args.budget_s / 2)
    report["providers"] = provider_status()
    report["benchmarks"] = run_benchmarks(getattr(torch, args.dtype), deadline)
    report["elapsed_s"] = round(time.monotonic() - start, 1)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(f"gpu_report: wrote {args.output}; elapsed {report['elapsed_s']} s")
    tests = report.get("tests", {})
    return 0 if args.skip_tests or tests.get("exit_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
