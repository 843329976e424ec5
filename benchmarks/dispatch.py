"""Eager dispatch overhead of ``ir_core.ops.rms_norm`` over calling the selected impl directly.

Run: ``python benchmarks/dispatch.py [--repeats N] [--json]``

Two kernels are measured, each with 1, 3 and 6 providers in the priority list where all but the
last decline the arguments (their ``supports_args`` returns False):

- ``pass-through``: a kernel that returns a preallocated tensor, so the difference between the
  dispatched call and the direct call is the dispatcher alone, free of the kernel's noise;
- ``native``: the real native rms_norm on a (1, 4096) bf16 input, for scale.

Two call patterns: ``1 shape`` repeats one call; ``3 shapes`` cycles through the norms of a
Qwen3-style layer (hidden states (8, 4096) with a 4096 weight, q heads (256, 128) and k heads
(64, 128) with 128 weights), the case where a dispatcher remembering only its last decision
would thrash. Figures are per call.

``control`` (native rows): the direct call after as much unrelated pure-Python work as the
dispatcher's pass-through overhead in the same body. Any Python work between two calls of a
small CPU kernel slows the kernel itself by a multiple of that work's own time on this machine,
so the native rows' overhead is read against this column, not against zero.

Also timed: the same call through ``torch.ops.ir_core.rms_norm`` (the torch custom op). Timings
are medians over interleaved runs of CPU thread time (other processes on this small, shared
machine do not count against a run); ratios come from one run.

Bodies: ``guarded`` checks ``is_compiling()`` on every call (the state before Dynamo is
imported); ``fast`` is the body after Dynamo is imported (tracing handed to a Dynamo polyfill).
Matchers: ``C++`` is torch's ``TensorGuards`` checking every tensor's metadata at once;
``python`` is the comparison the dispatcher falls back to where a torch lacks it.
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


def _qwen3_layer_norms(dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, weight) of the three rms_norm shapes one Qwen3-8B layer calls, 8 tokens."""
    return [
        (torch.randn(8, 4096, dtype=dtype), torch.randn(4096, dtype=dtype)),
        (torch.randn(8 * 32, 128, dtype=dtype), torch.randn(128, dtype=dtype)),
        (torch.randn(8 * 8, 128, dtype=dtype), torch.randn(128, dtype=dtype)),
    ]


def _cycle(fn: Callable[..., Any], calls: list[tuple[torch.Tensor, torch.Tensor]], eps: float):
    if len(calls) == 1:
        ((x, w),) = calls
        return lambda: fn(x, w, eps)
    (x0, w0), (x1, w1), (x2, w2) = calls
    return lambda: (fn(x0, w0, eps), fn(x1, w1, eps), fn(x2, w2, eps))


def _busy_then(direct: Callable[..., Any], ns: float) -> Callable[..., Any]:
    """``direct`` after about ``ns`` of unrelated pure-Python work: the control for the native
    rows. On this machine any Python work between two calls of a small CPU kernel slows the
    kernel itself by a multiple of that work's own time, so the native rows' overhead is to be
    read against this one, not against zero."""
    per_iteration = timeit.timeit("for _ in r: pass", globals={"r": range(1000)}, number=2000)
    iterations = range(max(1, round(ns / (per_iteration / 2000 / 1000 * 1e9))))

    def call(x: torch.Tensor, w: torch.Tensor, eps: float) -> Any:
        for _ in iterations:
            pass
        return direct(x, w, eps)

    return call


def run(repeats: int, number: int) -> list[dict[str, Any]]:
    dtype, eps = torch.bfloat16, 1e-6
    patterns = {
        "1 shape": [(torch.randn(1, 4096, dtype=dtype), torch.randn(4096, dtype=dtype))],
        "3 shapes": _qwen3_layer_norms(dtype),
    }
    decliners = [f"bench_decline_{i}" for i in range(5)]
    ir_core.register_plugin(_declining_plugin(decliners), name="bench_decliners")
    pass_through = _pass_through_plugin(torch.empty(1, 4096, dtype=dtype))
    ir_core.register_plugin(pass_through, name="bench_pass_through")
    native = ir_core.get_op(OP).native
    dispatch, torch_op = ir_core.ops.rms_norm, torch.ops.ir_core.rms_norm
    guards = ir_core.dispatch._TensorGuards

    configs = [  # (body, matcher, kernel, pattern)
        *[
            ("guarded", "C++", k, p)
            for k, p in (("pass-through", "1 shape"), ("native", "1 shape"))
        ],
        *[("fast", "C++", "pass-through", p) for p in patterns],
        ("fast", "C++", "native", "1 shape"),
        *[("fast", "python", "pass-through", p) for p in patterns],
    ]
    rows = []
    pass_through_overhead_ns: dict[tuple[str, int], float] = {}
    for body, matcher, kernel, pattern in configs:
        if body == "fast" and "torch._dynamo" not in sys.modules:
            importlib.import_module("torch._dynamo")  # what an engine that compiles has loaded

            ir_core.ops.rms_norm(torch.randn(2, 8), None, eps)  # a miss enables the fast body
            assert "is_compiling" not in dispatch.__code__.co_names
        ir_core.dispatch._TensorGuards = guards if matcher == "C++" else None
        ir_core.dispatch._clear_caches()
        calls = patterns[pattern]
        target = "bench_pass_through" if kernel == "pass-through" else "native"
        direct = pass_through.fn if kernel == "pass-through" else native
        for n_providers in (1, 3, 6):
            order = [*decliners[: n_providers - 1], target]
            with ir_core.set_priority({OP: order}):
                for x, w in calls:
                    chosen = ir_core.explain(OP, x, w, eps).provider
                    assert chosen == target, chosen
                variants = {
                    "direct": _cycle(direct, calls, eps),
                    "ir_core.ops": _cycle(dispatch, calls, eps),
                    "torch.ops": _cycle(torch_op, calls, eps),
                }
                control_ns = pass_through_overhead_ns.get((body, n_providers))
                if kernel == "native" and control_ns is not None:
                    variants["control"] = _cycle(_busy_then(direct, control_ns), calls, eps)
                times = _median_ns(
                    variants,
                    repeats,
                    number if kernel == "pass-through" else max(number // 20, 200),
                )
            per_call = {k: v / len(calls) / 1e3 for k, v in times.items()}
            if kernel == "pass-through" and pattern == "1 shape" and matcher == "C++":
                pass_through_overhead_ns[body, n_providers] = times["ir_core.ops"] - times["direct"]
            rows.append(
                {
                    "body": body,
                    "matcher": matcher,
                    "kernel": kernel,
                    "pattern": pattern,
                    "providers": n_providers,
                    "declining": n_providers - 1,
                    "direct_us": per_call["direct"],
                    "ops_us": per_call["ir_core.ops"],
                    "torch_ops_us": per_call["torch.ops"],
                    "ops_overhead_us": per_call["ir_core.ops"] - per_call["direct"],
                    "torch_ops_overhead_us": per_call["torch.ops"] - per_call["direct"],
                    "ops_ratio": per_call["ir_core.ops"] / per_call["direct"],
                    "control_overhead_us": (
                        per_call["control"] - per_call["direct"] if "control" in per_call else None
                    ),
                }
            )
    ir_core.dispatch._TensorGuards = guards
    ir_core.dispatch._clear_caches()
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
        f"{'body':<9}{'matcher':<9}{'kernel':<14}{'calls':<10}{'providers':>9}{'direct µs':>11}"
        f"{'ops µs':>9}{'overhead µs':>13}{'ratio':>8}{'control µs':>12}"
        f"{'torch.ops µs':>14}{'overhead µs':>13}"
    )
    print(header)
    for r in rows:
        control = "" if r["control_overhead_us"] is None else f"{r['control_overhead_us']:.3f}"
        print(
            f"{r['body']:<9}{r['matcher']:<9}{r['kernel']:<14}{r['pattern']:<10}"
            f"{r['providers']:>9}{r['direct_us']:>11.3f}{r['ops_us']:>9.3f}"
            f"{r['ops_overhead_us']:>13.3f}{r['ops_ratio']:>8.2f}{control:>12}"
            f"{r['torch_ops_us']:>14.3f}{r['torch_ops_overhead_us']:>13.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
