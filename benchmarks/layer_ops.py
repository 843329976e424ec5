"""Memory bandwidth of every available implementation of the decoder-layer ops beside the
norms: ``silu_and_mul``, ``gelu_and_mul`` (tanh), ``rotary_embedding``, ``gated_rms_norm``.

The companion of ``benchmarks/norms.py`` (same timing, same copy-bandwidth ceiling, same
columns): for each op, tokens {1, 16, 256, 4096, 16384} at model-like widths, each
implementation is timed and its achieved bandwidth reported as GB/s, as a percentage of this
device's copy bandwidth, and in microseconds.

Shapes, from each op's ``example_inputs`` (so ``ir-core bench`` times the same calls):
- silu_and_mul / gelu_and_mul: ``(tokens, 2d) -> (tokens, d)`` with Llama-3-8B's d = 14336
  and a smaller d = 4096;
- rotary_embedding: a query of 32 (or 64) heads of 128 channels, a quarter as many key heads
  (GQA), full rotary, neox; positions a permutation of the tokens and a cache of as many rows,
  so every byte of every argument is read once;
- gated_rms_norm: Qwen3-Next's linear-attention output norm, ``(tokens * 32 heads, 128)`` rows
  gated by z, and a whole-row variant of 4096 channels.

Bytes counted are each op's minimum traffic: every argument read once, every output written
once. Implementations: native eager, native under ``torch.compile``, then every registered
provider (``triton`` and whatever vendor wheels are installed) where it is available and
accepts the arguments ("-" otherwise).

    python benchmarks/layer_ops.py            # full sweep (meant for a GPU)
    python benchmarks/layer_ops.py --quick    # tiny smoke run; on CPU: native + Triton interpreter
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from norms import copy_bandwidth_gbs, implementations, measure_cells

TOKENS = (1, 16, 256, 4096, 16384)
QUICK_TOKENS = (1, 16)
#: op -> (label, rows per token, width given to example_inputs) for each width.
SHAPES: dict[str, list[tuple[str, int, int]]] = {
    "silu_and_mul": [("d=4096", 1, 4096), ("d=14336", 1, 14336)],
    "gelu_and_mul": [("d=4096", 1, 4096), ("d=14336", 1, 14336)],
    "rotary_embedding": [("q 32x128", 1, 4096), ("q 64x128", 1, 8192)],
    "gated_rms_norm": [("32 heads x 128", 32, 128), ("H=4096", 1, 4096)],
}
QUICK_SHAPES = {op: shapes[:1] for op, shapes in SHAPES.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run (few shapes and reps)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--no-compile", action="store_true", help="skip native under torch.compile")
    p.add_argument("--ops", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    return p.parse_args(argv)


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
    tokens = QUICK_TOKENS if args.quick else TOKENS
    shapes = QUICK_SHAPES if args.quick else SHAPES
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    ceiling = copy_bandwidth_gbs(device, args.quick)
    print(f"device: {name}; torch {torch.__version__}; dtype {args.dtype}")
    print(f"copy bandwidth: {ceiling:.0f} GB/s (device-to-device tensor copy)")
    if device != "cuda":
        print("note: no CUDA device: GPU impls skipped" + (
            "; triton runs through Triton's interpreter: a smoke test, not a speed"
            if args.quick else " (use --quick to smoke-test triton through its interpreter)"
        ))  # fmt: skip

    for op_name in args.ops:
        op = ir_core.get_op(op_name)
        impls = implementations(op, device, args)
        print(f"\n{op_name}; per impl: GB/s, % of copy bandwidth, us")
        header = f"{'tokens':>7} {'shape':>15} " + " ".join(f"{lb:>22}" for lb, _ in impls)
        print(header)
        print("-" * len(header))
        for n in tokens:
            for label, rows_per_token, width in shapes[op_name]:
                sample = op.example_inputs(n * rows_per_token, width, dtype, device)
                cells = measure_cells(op, impls, sample, device, args.quick, ceiling)
                print(f"{n:>7} {label:>15} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
