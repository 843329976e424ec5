"""A short tour of eager dispatch: what runs, why, and what the dispatcher costs.

Run: ``python examples/dispatch_demo.py`` (after installing ir-core and any providers).
"""

from __future__ import annotations

import statistics
import time

import torch

import ir_core


def medians_us(fns: dict, *args, number: int = 500, repeats: int = 15) -> dict:
    """Median CPU thread time per call of each fn, measured in interleaved rounds so that the
    machine's drift hits every variant alike."""
    runs: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.thread_time()
            for _ in range(number):
                fn(*args)
            runs[name].append((time.thread_time() - start) / number * 1e6)
    return {name: statistics.median(r) for name, r in runs.items()}


def main() -> None:
    x = torch.randn(8, 4096, dtype=torch.bfloat16)
    weight = torch.randn(4096, dtype=torch.float32)  # Gemma-style fp32 weight, 1 + weight
    residual = torch.randn_like(x)

    print("== what each op resolves to on this machine")
    for name, args in (
        ("rms_norm", (x, weight, 1e-6, 1.0)),
        ("fused_add_rms_norm", (x, residual, weight, 1e-6, 1.0)),
        ("dual_rms_norm", ir_core.get_op("dual_rms_norm").example_inputs(8, 1536, x.dtype).args),
    ):
        print(ir_core.explain(name, *args))

    print("\n== the same call, three ways")
    out = ir_core.ops.rms_norm(x, weight, 1e-6, weight_bias=1.0)
    via_torch = torch.ops.ir_core.rms_norm(x, weight, 1e-6, 1.0)
    native = ir_core.get_op("rms_norm").native(x, weight, 1e-6, 1.0)
    print(
        f"ir_core.ops == torch.ops.ir_core == native: "
        f"{torch.equal(out, via_torch) and torch.equal(out, native)}"
    )

    print("\n== a priority for one block only (thread- and task-local)")
    providers = [p for p in ir_core.registry.providers() if p != "native"]
    with ir_core.set_priority(rms_norm=[*providers, "native"]):
        print(ir_core.explain("rms_norm", x, weight, 1e-6))

    print("\n== dispatch cost (CPU thread time, medians of interleaved rounds)")
    small = torch.randn(1, 64, dtype=torch.bfloat16), torch.randn(64, dtype=torch.bfloat16)
    t = medians_us(
        {
            "native called directly": ir_core.get_op("rms_norm").native,
            "ir_core.ops.rms_norm": ir_core.ops.rms_norm,
            "torch.ops.ir_core.rms_norm": torch.ops.ir_core.rms_norm,
        },
        *small,
        1e-6,
    )
    base = t["native called directly"]
    for name, us in t.items():
        print(f"{name:28s} {us:8.2f} µs  ({us - base:+.2f})")
    print("(a tiny CPU kernel's own time varies by several µs; benchmarks/dispatch.py isolates")
    print(" the dispatcher's cost with a pass-through kernel)")
    print("\npriority_hash:", ir_core.priority_hash())


if __name__ == "__main__":
    main()
