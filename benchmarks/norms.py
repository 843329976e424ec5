"""Memory bandwidth of every available RMS norm implementation, side by side.

For ``rms_norm`` (without residual) and ``fused_add_rms_norm`` (with residual), bf16, tokens
{1, 16, 256, 4096, 16384} x hidden {2048, 4096, 8192}, each implementation is timed and its
achieved bandwidth reported as GB/s and as a percentage of this device's copy bandwidth
(measured here with a large device-to-device tensor copy, the practical ceiling for a
memory-bound kernel).

Bytes counted are the op's minimum traffic: every input read once, every output written once.
An implementation that moves more (FlashInfer's fused add copies x and residual first, to stay
out of place) shows that as lower GB/s.

Implementations: native eager, native under ``torch.compile``, then every impl registered with
ir-core (``torch_fused``, ``triton``, ``flashinfer``, other vendors' wheels), each where it is
available and accepts the arguments ("-" otherwise).

    python benchmarks/norms.py            # full sweep (meant for a GPU)
    python benchmarks/norms.py --quick    # tiny smoke run; on CPU: native + Triton interpreter

On CUDA, kernel time is measured with ``triton.testing.do_bench`` (L2 flushed between runs,
median of many), i.e. device time, not host launch overhead. Without a CUDA device the GPU
impls are skipped; in quick mode the Triton kernels run through Triton's interpreter, which
shows that they work, not how fast they are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

TOKENS = (1, 16, 256, 4096, 16384)
HIDDEN = (2048, 4096, 8192)
QUICK_TOKENS = (1, 16)
QUICK_HIDDEN = (2048,)
OPS = (("rms_norm", "no"), ("fused_add_rms_norm", "yes"))
PROVIDERS = ("torch_fused", "triton", "flashinfer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run (few shapes and reps)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--no-compile", action="store_true", help="skip native under torch.compile")
    return p.parse_args(argv)


# -- timing -----------------------------------------------------------------------------------


def time_ms(fn: Callable[[], Any], device: str, quick: bool) -> float:
    """Median milliseconds per call of ``fn`` on ``device``."""
    if device == "cuda":
        from triton.testing import do_bench

        return float(
            do_bench(fn, warmup=5 if quick else 25, rep=20 if quick else 100, return_mode="median")
        )
    fn()  # compile (torch.compile) or first launch (Triton), then settle caches and threads
    warm_until = time.perf_counter() + (0.1 if quick else 0.3)
    for _ in range(1000):
        fn()
        if time.perf_counter() > warm_until:
            break
    samples, budget, start = [], 0.2 if quick else 1.0, time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget and len(samples) < 50):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def copy_bandwidth_gbs(device: str, quick: bool) -> float:
    """GB/s of a large device-to-device copy (read + write), the memory ceiling we compare to."""
    n_bytes = (
        (64 if quick else 1024) * 2**20 if device == "cuda" else (32 if quick else 256) * 2**20
    )
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, quick)
    return 2 * n_bytes / (ms * 1e-3) / 1e9


def traffic_bytes(args: tuple[Any, ...], out: Any) -> int:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    tensors += list(out) if isinstance(out, tuple) else [out]
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_cells(
    op: Any, impls: list[tuple[str, Any]], sample: Any, device: str, quick: bool, ceiling: float
) -> list[str]:
    """One table row: per impl "GB/s  % of ceiling  us", or "-" where it declines the call."""
    args = op.bind(sample.args, sample.kwargs)
    cells = []
    for _, impl in impls:
        fn = getattr(impl, "fn", impl)
        predicate = getattr(impl, "supports_args", None)
        if predicate is not None and not predicate(*args):
            cells.append(f"{'-':>22}")
            continue
        out = fn(*args)
        ms = time_ms(lambda fn=fn: fn(*args), device, quick)
        gbs = traffic_bytes(args, out) / (ms * 1e-3) / 1e9
        cells.append(f"{gbs:>7.1f} {100 * gbs / ceiling:>5.1f}% {ms * 1e3:>8.1f}")
    return cells


# -- implementations --------------------------------------------------------------------------


def implementations(op: Any, device: str, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, impl-or-callable) for everything that can run here; impls keep their predicate."""
    found: list[tuple[str, Any]] = [("native", op.native)]
    if not args.no_compile and not (device == "cpu" and args.quick):
        found.append(("native+compile", torch.compile(op.native, dynamic=False)))
    for provider, impl in op.impls.items():
        if provider == "native":
            continue
        ok, _ = impl.status()
        # off a GPU, only Triton's interpreter runs here, and only in quick (smoke) mode
        if ok and impl.runs_on(device) and (device == "cuda" or args.quick):
            found.append((provider, impl))
    return found


def explain_missing(device: str, args: argparse.Namespace) -> list[str]:
    import ir_core

    notes = []
    if device != "cuda":
        notes.append(
            "no CUDA device: skipping GPU impls (torch_fused, flashinfer, compiled triton)"
        )
        if args.quick:
            notes.append("triton runs through Triton's interpreter: a smoke test, not a speed")
        else:
            notes.append("triton's interpreter is skipped in full sweeps (use --quick)")
    for provider in PROVIDERS:
        impl = ir_core.get_op("rms_norm").impls.get(provider)
        if impl is None:
            notes.append(f"{provider}: not registered (is ir-provider-cuda installed?)")
            continue
        ok, reason = impl.status()
        if not ok:
            notes.append(f"{provider}: unavailable: {reason}")
    return notes


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and args.quick:
        # Must be set before ir-core registers the plugin and Triton decorates the kernels.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 64  # one compile per shape, by design here
    import ir_core

    ir_core.load_plugins()
    dtype = getattr(torch, args.dtype)
    tokens, hidden = (QUICK_TOKENS, QUICK_HIDDEN) if args.quick else (TOKENS, HIDDEN)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    ceiling = copy_bandwidth_gbs(device, args.quick)
    print(f"device: {name}; torch {torch.__version__}; dtype {args.dtype}")
    print(f"copy bandwidth: {ceiling:.0f} GB/s (device-to-device tensor copy)")
    for note in explain_missing(device, args):
        print(f"note: {note}")

    for op_name, with_residual in OPS:
        op = ir_core.get_op(op_name)
        impls = implementations(op, device, args)
        labels = [label for label, _ in impls]
        print(f"\n{op_name} (residual: {with_residual}); per impl: GB/s, % of copy bandwidth, us")
        header = f"{'tokens':>7} {'hidden':>7} " + " ".join(f"{lb:>22}" for lb in labels)
        print(header)
        print("-" * len(header))
        for n in tokens:
            for h in hidden:
                sample = op.example_inputs(n, h, dtype, device)
                cells = measure_cells(op, impls, sample, device, args.quick, ceiling)
                print(f"{n:>7} {h:>7} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
