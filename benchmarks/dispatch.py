"""Eager dispatch overhead of ``ir_core.ops.rms_norm``, and its native path against plain eager.

Run: ``python benchmarks/dispatch.py [--repeats N] [--number N] [--json]``

Part 1, the dispatcher alone: a ``pass-through`` kernel returns a preallocated tensor, so what a
call costs beyond calling that kernel directly is the dispatcher's. 1, 3 and 6 providers are in
the priority, all but the last declining (their ``supports_args`` returns False): the worst case
for a dispatcher that asks predicates on every call. Two call patterns: ``1 shape`` repeats one
call; ``3 shapes`` cycles through the norms of a Qwen3-style layer (hidden states (8, 4096), q
heads (256, 128), k heads (64, 128)), where a dispatcher remembering only its last decision
would thrash. Timed side by side in the same interleaved rounds:

- ``compiled`` / ``python``: ``ir_core.ops.rms_norm`` on each hit path (``ir_core._fastpath``,
  or the pure-Python one used where the extension is not loaded);
- ``bound``: ``ir_core.bind(...)`` call sites, one per shape;
- ``torch.ops``: ``torch.ops.ir_core.rms_norm``, the torch custom op;
- ``vllm-ir`` / ``vllm-ir+op``: a re-model of vLLM IR's eager dispatch (``vllm/ir/op.py``), which
  binds the arguments to the signature and asks each provider's predicate on every call,
  called directly and through its torch custom op (how vLLM calls it); ``bare loop`` is that
  loop with nothing else (arguments already complete and positional, no binding or logging),
  the floor of any design that asks predicates per call;
- ``declared``: the design not taken, a pure-Python dispatcher whose key holds only what
  predicates would declare they read -- here nothing but the device and the scalars, its best
  case (real predicates read dtypes, shapes and strides: a longer key).

Part 2, the native path: ``ir_core.ops.rms_norm`` with its native impl selected (dispatch
included) against vLLM's old eager ``RMSNorm.forward_native`` arithmetic, at (1, 8) fp32 and
(1, 4096) bf16, on one thread; ``previous`` is ir-core's native formulation before it dropped the
work that leaves the result unchanged (``weight.float() + 0.0`` and separate roundings).

Timings are medians over interleaved runs of CPU thread time (other processes on a small, shared
machine do not count against a run); ratios come from one run. Figures are per call.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch.compiler import is_compiling

import ir_core
from ir_core import dispatch, fastpath, priority

OP = "rms_norm"
EPS = 1e-6


# -- the reference designs ---------------------------------------------------------------------


class _Lazy:
    """What vLLM hands its debug log for the arguments: formatted only if the line is emitted."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return str(self.fn())


_log = logging.getLogger("bench.vllm_ir")


class VllmIrStyleOp:
    """A re-model of vLLM IR's eager dispatch, to time it next to ir-core's.

    Per call: the arguments are bound to the native signature with defaults applied, then each
    provider of the priority list is asked ``supports_args`` (binding the arguments again, as an
    impl's own ``supports_args`` wrapper does) and a skipped one is logged at debug level; the
    first that accepts runs. ``call_op`` goes through the op's torch custom op first, as
    ``IrOp.__call__`` does.
    """

    _library = torch.library.Library("bench_vllm_ir", "FRAGMENT")

    def __init__(self, native: Callable[..., Any]) -> None:
        self.name = native.__name__
        self.signature = inspect.signature(native)
        self.priority: list[tuple[str, Callable[..., Any], Callable[..., bool] | None]] = []
        self._library.define(self.name + torch.library.infer_schema(native, mutates_args=()))
        self._library.impl(self.name, self._inner_call, dispatch_key="CPU")
        self.torch_op = getattr(torch.ops.bench_vllm_ir, self.name).default

    def _bound(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.args, bound.kwargs

    def dispatch(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        args, kwargs = self._bound(args, kwargs)
        for provider, fn, supports_args in self.priority:
            if supports_args is None:
                return fn
            a, k = self._bound(args, kwargs)
            if supports_args(*a, **k):
                return fn
            _log.debug(
                "Skipping provider %s because it does not support %s with args=%s kwargs=%s",
                provider,
                self.name,
                _Lazy(lambda: args),
                _Lazy(lambda: kwargs),
            )
        raise RuntimeError("the last provider must support all arguments")

    def _inner_call(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatch(*args, **kwargs)(*args, **kwargs)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner_call(*args, **kwargs)

    def call_op(self, *args: Any, **kwargs: Any) -> Any:
        return self.torch_op(*args, **kwargs)

    def bare_loop(self, *args: Any) -> Any:
        """The loop alone, arguments complete and positional: no binding, no logging."""
        for _, fn, supports_args in self.priority:
            if supports_args is None or supports_args(*args):
                return fn(*args)
        raise RuntimeError("the last provider must support all arguments")


def _declared_key_dispatcher(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """The pure-Python dispatcher of a design where predicates declare what they read: its key
    is the scope, the device and the scalars (what predicates reading nothing else leave)."""
    cache: dict[Any, Callable[..., Any]] = {}
    scope = priority.current_scope.get

    def rms_norm(x, weight, epsilon, weight_bias=0.0, variance_size=None):
        if is_compiling():
            raise RuntimeError("not for tracing")
        key = (
            scope(),
            x.device.type,
            weight is None,
            type(epsilon),
            epsilon,
            type(weight_bias),
            weight_bias,
            type(variance_size),
            variance_size,
        )
        try:
            fn = cache[key]
        except KeyError:
            fn = cache[key] = kernel
        return fn(x, weight, epsilon, weight_bias, variance_size)

    return rms_norm


# -- plugins for the benchmark ---------------------------------------------------------------


def _decline(x, weight, epsilon, weight_bias=0.0, variance_size=None) -> bool:
    return False


def _declining_plugin(names: list[str]) -> SimpleNamespace:
    """Providers that exist, are available, and decline every argument."""

    def register_impls(registry: ir_core.Registry) -> None:
        for name in names:
            registry.register_impl(
                OP, name, ir_core.get_op(OP).native, device_types=("cpu",), supports_args=_decline
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


# -- timing ------------------------------------------------------------------------------------

#: A variant: how to set the process up for it (the hit path), and the call to time.
Variant = tuple[Callable[[], None], Callable[[], Any]]


def _on_path(compiled: bool) -> Callable[[], None]:
    def prepare() -> None:
        if dispatch.hit_path() != ("compiled" if compiled else "python"):
            dispatch._use_compiled(compiled)

    return prepare


def _median_ns(variants: dict[str, Variant], repeats: int, number: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, (prepare, fn) in variants.items():  # interleaved: drift hits all alike
            prepare()
            fn()  # a miss after switching paths, never timed
            timer = timeit.Timer(fn, timer=time.thread_time)
            samples[name].append(timer.timeit(number=number) / number * 1e9)
    return {k: statistics.median(v) for k, v in samples.items()}


def _cycle(fn: Callable[..., Any], calls: list[tuple[torch.Tensor, torch.Tensor]]):
    if len(calls) == 1:
        ((x, w),) = calls
        return lambda: fn(x, w, EPS)
    (x0, w0), (x1, w1), (x2, w2) = calls
    return lambda: (fn(x0, w0, EPS), fn(x1, w1, EPS), fn(x2, w2, EPS))


def _cycle_bound(calls: list[tuple[torch.Tensor, torch.Tensor]]):
    """One ``ir_core.bind`` call site per shape, as an engine holds one per norm."""
    sites = [(ir_core.bind(OP, x, w, EPS), x, w) for x, w in calls]
    if len(sites) == 1:
        ((b, x, w),) = sites
        return lambda: b(x, w, EPS)
    (b0, x0, w0), (b1, x1, w1), (b2, x2, w2) = sites
    return lambda: (b0(x0, w0, EPS), b1(x1, w1, EPS), b2(x2, w2, EPS))


def _qwen3_layer_norms(dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, weight) of the three rms_norm shapes one Qwen3-8B layer calls, 8 tokens."""
    return [
        (torch.randn(8, 4096, dtype=dtype), torch.randn(4096, dtype=dtype)),
        (torch.randn(8 * 32, 128, dtype=dtype), torch.randn(128, dtype=dtype)),
        (torch.randn(8 * 8, 128, dtype=dtype), torch.randn(128, dtype=dtype)),
    ]


PASS_THROUGH_VARIANTS = (
    "compiled",
    "python",
    "bound",
    "torch.ops",
    "vllm-ir",
    "vllm-ir+op",
    "bare loop",
    "declared",
)


def run_pass_through(repeats: int, number: int) -> list[dict[str, Any]]:
    dtype = torch.bfloat16
    patterns = {
        "1 shape": [(torch.randn(1, 4096, dtype=dtype), torch.randn(4096, dtype=dtype))],
        "3 shapes": _qwen3_layer_norms(dtype),
    }
    decliners = [f"bench_decline_{i}" for i in range(5)]
    ir_core.register_plugin(_declining_plugin(decliners), name="bench_decliners")
    pass_through = _pass_through_plugin(torch.empty(1, 4096, dtype=dtype))
    ir_core.register_plugin(pass_through, name="bench_pass_through")
    vllm = VllmIrStyleOp(ir_core.get_op(OP).native)
    declared = _declared_key_dispatcher(pass_through.fn)
    compiled = fastpath.status().active
    rows = []
    for pattern, calls in patterns.items():
        for n_providers in (1, 3, 6):
            order = [*decliners[: n_providers - 1], "bench_pass_through"]
            vllm.priority = [(p, ir_core.get_op(OP).native, _decline) for p in order[:-1]]
            vllm.priority.append(("bench_pass_through", pass_through.fn, None))
            with ir_core.set_priority({OP: order}):
                for x, w in calls:
                    assert ir_core.explain(OP, x, w, EPS).provider == "bench_pass_through"
                usual = _on_path(compiled)  # what every variant but "python" runs on
                variants: dict[str, Variant] = {
                    "direct": (usual, _cycle(pass_through.fn, calls)),
                    "python": (_on_path(False), _cycle(ir_core.ops.rms_norm, calls)),
                    "bound": (usual, _cycle_bound(calls)),
                    "torch.ops": (usual, _cycle(torch.ops.ir_core.rms_norm, calls)),
                    "vllm-ir": (usual, _cycle(vllm.call, calls)),
                    "vllm-ir+op": (usual, _cycle(vllm.call_op, calls)),
                    "bare loop": (
                        usual,
                        _cycle(lambda x, w, e: vllm.bare_loop(x, w, e, 0.0, None), calls),
                    ),
                    "declared": (usual, _cycle(declared, calls)),
                }
                if compiled:
                    variants["compiled"] = (usual, _cycle(ir_core.ops.rms_norm, calls))
                times = _median_ns(variants, repeats, number)
            per_call = {k: v / len(calls) / 1e3 for k, v in times.items()}
            row: dict[str, Any] = {
                "pattern": pattern,
                "providers": n_providers,
                "direct_us": per_call["direct"],
            }
            for name in PASS_THROUGH_VARIANTS:
                if name in per_call:
                    row[f"{name}_overhead_us"] = per_call[name] - per_call["direct"]
            rows.append(row)
    if compiled:
        dispatch._use_compiled(True)
    return rows


# -- part 2: the native path -------------------------------------------------------------------


def vllm_forward_native(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """vLLM's old ``RMSNorm.forward_native`` arithmetic, the plainest eager RMSNorm."""
    orig_dtype = x.dtype
    x = x.float()
    var = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(var + eps)
    return x.to(orig_dtype) * weight


def previous_native(x, weight, epsilon, weight_bias=0.0, variance_size=None):
    """ir-core's native rms_norm before it dropped the work that changes nothing."""
    xf = x.float()
    xv = xf if variance_size is None else xf[..., :variance_size]
    out = xf * torch.rsqrt(xv.pow(2).mean(dim=-1, keepdim=True) + epsilon)
    if weight is not None:
        out = out * (weight.float() + weight_bias)
    return out.to(x.dtype)


NATIVE_CASES = (((1, 8), torch.float32), ((1, 4096), torch.bfloat16))


def run_native(repeats: int, number: int) -> list[dict[str, Any]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for shape, dtype in NATIVE_CASES:
            x, w = torch.randn(shape, dtype=dtype), torch.randn(shape[-1], dtype=dtype)
            usual = _on_path(fastpath.status().active)
            with ir_core.set_priority({OP: ["native"]}):
                assert ir_core.explain(OP, x, w, EPS).provider == "native"
                variants: dict[str, Variant] = {
                    "vllm eager": (usual, _cycle(vllm_forward_native, [(x, w)])),
                    "ir_core.ops": (usual, _cycle(ir_core.ops.rms_norm, [(x, w)])),
                    "bound": (usual, _cycle_bound([(x, w)])),
                    "native alone": (usual, _cycle(ir_core.get_op(OP).native, [(x, w)])),
                    "previous": (usual, _cycle(previous_native, [(x, w)])),
                }
                times = _median_ns(variants, repeats, number)
            base = times["vllm eager"]
            rows.append(
                {
                    "shape": list(shape),
                    "dtype": str(dtype).removeprefix("torch."),
                    "hit_path": dispatch.hit_path(),
                    **{f"{k}_us": v / 1e3 for k, v in times.items()},
                    **{f"{k}_ratio": v / base for k, v in times.items() if k != "vllm eager"},
                }
            )
    finally:
        torch.set_num_threads(threads)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    pass_through = run_pass_through(args.repeats, args.number)
    native = run_native(args.repeats, max(args.number // 20, 200))
    if args.json:
        json.dump({"pass_through": pass_through, "native": native}, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"torch {torch.__version__}, ir_core {ir_core.__version__}, hit path: "
        f"{fastpath.status()}; medians of {args.repeats} interleaved runs"
    )
    print("\ndispatch overhead over calling the pass-through kernel directly, µs per call")
    present = [v for v in PASS_THROUGH_VARIANTS if f"{v}_overhead_us" in pass_through[0]]
    print(f"{'calls':<10}{'providers':>9}{'direct':>9}" + "".join(f"{v:>12}" for v in present))
    for r in pass_through:
        print(
            f"{r['pattern']:<10}{r['providers']:>9}{r['direct_us']:>9.3f}"
            + "".join(f"{r[f'{v}_overhead_us']:>12.3f}" for v in present)
        )
    if "compiled" in present:
        one = next(r for r in pass_through if r["pattern"] == "1 shape" and r["providers"] == 1)
        print(
            f"compiled / vllm-ir (1 shape, 1 provider): "
            f"{one['compiled_overhead_us'] / one['vllm-ir_overhead_us']:.3f}"
        )
    print("\nnative rms_norm, one thread, µs per call (ratio to vLLM's eager arithmetic)")
    names = ["vllm eager", "ir_core.ops", "bound", "native alone", "previous"]
    print(f"{'shape':<12}{'dtype':<10}" + "".join(f"{n:>20}" for n in names))
    for r in native:
        cells = [f"{r['vllm eager_us']:.2f}"] + [
            f"{r[f'{n}_us']:.2f} ({r[f'{n}_ratio']:.3f}x)" for n in names[1:]
        ]
        print(
            f"{'x'.join(map(str, r['shape'])):<12}{r['dtype']:<10}"
            + "".join(f"{c:>20}" for c in cells)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
