"""Eager dispatch overhead of ``ir_core.ops.rms_norm`` over calling the selected impl directly.

Run: ``python benchmarks/dispatch.py [--repeats N] [--json]``

Two kernels are measured, each with 1, 3 and 6 providers in the priority list where all but the
last decline the arguments (their ``supports_args`` returns False):

- ``pass-through``: a kernel that returns a preallocated tensor, so the difference between the
  dispatched call and the direct call is the dispatcher alone, free of the kernel's noise;
- ``native``: the real native rms_norm on a (1, 4096) bf16 input, for scale.

Also timed: the same call through ``torch.ops.ir_core.rms_norm`` (the torch custom op). Timings
are medians over interleaved runs of CPU thread time (other processes on this small, shared
machine do not count against a run); ratios come from one run.

Everything is measured twice: with the dispatcher's guarded body (``is_compiling()`` checked on
every call, the state before Dynamo is imported) and with its fast body (after Dynamo is
imported, tracing is handed to a Dynamo polyfill and the check disappears).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

import ir_core

OP = "rms_norm"


def _declining_plugin(names: list[str]) -> SimpleNamespace:
    """Providers that exist, are available, and decline every argument: the worst case for a
    dispatcher that re-runs predicates, and a cache hit for ours."""

    def decline(x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
        return False

    def register_impls(registry: ir_core.Registry) -> None:
        for name in names:
            registry.register_impl(
                OP, name, ir_core.get_op(OP).native, device_types=("cpu",), supports_args=decline
            )

    return SimpleNamespace(register_impls=ir_core.hookimpl(register_impls))


def _pass_through_plugin(out: torch.Tensor) -> SimpleNamespace:
    def pass_through(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return out

    def register_impls(registry: ir_core.Registry) -> None:
        registry.register_impl(OP, "bench_pass_through", pass_through, device_types=("cpu",))

    return SimpleNamespace(register_impls=ir_core.hookimpl(register_impls), fn=pass_through)


def _median_ns(fns: dict[str, Callable[[], Any]], repeats: int, number: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved, so drift hits every variant alike
            timer = timeit.Timer(fn, timer=time.thread_time)
            samples[name].append(timer.timeit(number=number) / number * 1e9)
    return {k: statistics.median(v) for k, v in samples.items()}


def run(repeats: int, number: int) -> list[dict[str, Any]]:
    x = torch.randn(1, 4096, dtype=torch.bfloat16)
    w = torch.randn(4096, dtype=torch.bfloat16)
    eps = 1e-6
    decliners = [f"bench_decline_{i}" for i in range(5)]
    ir_core.register_plugin(_declining_plugin(decliners), name="bench_decliners")
    pass_through = _pass_through_plugin(torch.empty_like(x))
    ir_core.register_plugin(pass_through, name="bench_pass_through")
    native = ir_core.get_op(OP).native
    dispatch, torch_op = ir_core.ops.rms_norm, torch.ops.ir_core.rms_norm

    rows = []
    for body in ("guarded", "fast"):
        if body == "fast":
            importlib.import_module("torch._dynamo")  # what an engine that compiles has loaded

            ir_core.ops.rms_norm(torch.randn(2, 8), None, eps)  # a miss enables the fast body
            assert "is_compiling" not in dispatch.__code__.co_names
        for kernel, target in (("pass-through", "bench_pass_through"), ("native", "native")):
            direct = pass_through.fn if kernel == "pass-through" else native
            for n_providers in (1, 3, 6):
                order = [*decliners[: n_providers - 1], target]
                with ir_core.set_priority({OP: order}):
                    chosen = ir_core.explain(OP, x, w, eps).provider
                    assert chosen == target, chosen
                    times = _median_ns(
                        {
                            "direct": lambda direct=direct: direct(x, w, eps),
                            "ir_core.ops": lambda: dispatch(x, w, eps),
                            "torch.ops": lambda: torch_op(x, w, eps),
                        },
                        repeats,
                        number if kernel == "pass-through" else max(number // 20, 200),
                    )
                rows.append(
                    {
                        "body": body,
                        "kernel": kernel,
                        "providers": n_providers,
                        "declining": n_providers - 1,
                        "direct_us": times["direct"] / 1e3,
                        "ops_us": times["ir_core.ops"] / 1e3,
                        "torch_ops_us": times["torch.ops"] / 1e3,
                        "ops_overhead_us": (times["ir_core.ops"] - times["direct"]) / 1e3,
                        "torch_ops_overhead_us": (times["torch.ops"] - times["direct"]) / 1e3,
                        "ops_ratio": times["ir_core.ops"] / times["direct"],
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.repeats, args.number)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"torch {torch.__version__}, ir_core {ir_core.__version__}; "
        f"medians of {args.repeats} interleaved runs"
    )
    header = (
        f"{'body':<9}{'kernel':<13}{'providers':>10}{'direct µs':>11}{'ops µs':>9}"
        f"{'overhead µs':>13}{'ratio':>8}{'torch.ops µs':>14}{'overhead µs':>13}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['body']:<9}{r['kernel']:<13}{r['providers']:>10}{r['direct_us']:>11.3f}{r['ops_us']:>9.3f}"
            f"{r['ops_overhead_us']:>13.3f}{r['ops_ratio']:>8.2f}{r['torch_ops_us']:>14.3f}"
            f"{r['torch_ops_overhead_us']:>13.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
