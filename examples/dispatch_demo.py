"""A short tour of eager dispatch: what runs, why, and what the dispatcher costs.

Run: ``python examples/dispatch_demo.py`` (after installing ir-core and any providers).
"""

from __future__ import annotations

import statistics
import time

import torch

import ir_core


def median_us(fn, *args, number: int = 2000, repeats: int = 7) -> float:
    runs = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(number):
            fn(*args)
        runs.append((time.thread_time() - start) / number * 1e6)
    return statistics.median(runs)


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

    print("\n== dispatch cost (CPU thread time, median)")
    small = torch.randn(1, 64, dtype=torch.bfloat16), torch.randn(64, dtype=torch.bfloat16)
    direct = median_us(ir_core.get_op("rms_norm").native, *small, 1e-6)
    dispatched = median_us(ir_core.ops.rms_norm, *small, 1e-6)
    via_op = median_us(torch.ops.ir_core.rms_norm, *small, 1e-6)
    print(f"native called directly  {direct:8.2f} µs")
    print(f"ir_core.ops.rms_norm    {dispatched:8.2f} µs  (+{dispatched - direct:.2f})")
    print(f"torch.ops.ir_core       {via_op:8.2f} µs  (+{via_op - direct:.2f})")
    print("\npriority_hash:", ir_core.priority_hash())


if __name__ == "__main__":
    main()
