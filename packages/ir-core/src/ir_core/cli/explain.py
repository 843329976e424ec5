"""``ir-core explain OP``: which impl an op would run here, and why the others would not;
``ir-core explain --trace FILE [OP]``: what ran, as a trace file (``IR_CORE_TRACE``) recorded."""

from __future__ import annotations

import argparse
from typing import Any

import ir_core
from ir_core.config import reference
from ir_core.platform import (
    ENV_PLATFORM,
    current_platform,
    device_usable,
    dtype_name,
    platform_device,
)

from .args import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    parse_device,
    parse_dtype,
    parse_op,
    parse_shape,
    split,
)
from .format import fit, print_json, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which impl an op would run, and why the others would not")
    p.add_argument("op", nargs="?", help="op name, e.g. rms_norm (with --trace: only this op)")
    p.add_argument("--device", default="cpu", help="device to dispatch for (default: cpu)")
    p.add_argument("--dtype", default="bfloat16", help="activation dtype (default: bfloat16)")
    p.add_argument("--shape", default="4,4096", help="N,H: tokens and hidden size (default 4,4096)")
    p.add_argument(
        "--require",
        action="append",
        metavar="CAP",
        help="capabilities every impl must have, e.g. batch_invariant (repeat or comma-separate)",
    )
    p.add_argument("--trace", metavar="FILE", help="print what ran, from a trace file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.trace:
        return _run_trace(args)
    if args.op is None:
        raise UsageError("explain needs an op name (or --trace FILE)")
    op = parse_op(args.op)
    dtype = parse_dtype(args.dtype)
    n, h = parse_shape(args.shape)
    device = parse_device(args.device)
    stand_in = not device_usable(device)
    platform = current_platform()
    other_platform = platform_device(platform) != device.type
    sample = op.example_inputs(n, h, dtype, "meta" if stand_in else device)
    mode = reference()
    failure = None
    try:
        with ir_core.set_priority(require=split(args.require)):
            result = ir_core.explain(op, *sample.args, device_type=device.type, **sample.kwargs)
    except ir_core.CapabilityError as exc:
        failure, result = exc, exc.explanation
    data = {
        **result.to_dict(),
        "device": str(device),
        "dtype": dtype_name(dtype),
        "shape": [n, h],
        "stand_in_tensors": "meta" if stand_in else None,
        "reference_mode": mode.source if mode.value else None,
        "require": sorted(split(args.require)),
        "priority_of_platform": platform,
    }
    chosen = op.impls.get(result.provider) if failure is None else None
    data["capabilities"] = sorted(chosen.capabilities) if chosen is not None else []
    if failure is not None:
        data["provider"] = None
        data["error"] = str(failure)
    if args.json:
        print_json(data)
    else:
        if failure is None:
            lines = str(result).splitlines()
            tags = ", ".join(data["capabilities"]) or "none declared"
            print("\n".join(fit("\n".join([lines[0], f"  capabilities: {tags}", *lines[1:]]))))
        else:  # the explanation's own lines, under a first line that says nothing runs
            print(f"{op.name}: no impl has the required capabilities {', '.join(data['require'])}")
            print("\n".join(fit("\n".join(str(result).splitlines()[1:]))))
        if mode.value:
            print(f"  reference mode is on ({mode.source}): every op runs native")
        if stand_in:
            print(f"  (no {device.type} device here: arguments were meta tensors standing in)")
        if other_platform:
            print(
                "\n".join(
                    fit(
                        f"  (the priority shown is this machine's platform's, {platform}, not "
                        f"{device.type}'s; {ENV_PLATFORM}={device.type} shows {device.type}'s)"
                    )
                )
            )
    return EXIT_OK if failure is None else EXIT_FAILURE


def _run_trace(args: argparse.Namespace) -> int:
    """What a trace file says ran, per op, signature and provider (``--json``: the file's
    records and compiled graphs)."""
    try:
        trace = ir_core.Trace.load(args.trace)
    except OSError as exc:
        raise UsageError(f"--trace: cannot read {args.trace}: {exc.strerror or exc}") from None
    except ir_core.TraceFileError as exc:
        raise UsageError(f"--trace {args.trace}: {exc}") from None
    records = [r for r in trace.records if args.op is None or r.op == args.op]
    compiled = trace.compiled
    if args.json:
        print_json({"records": [vars(r) for r in records], "compiled": compiled})
        return EXIT_OK
    if records:
        rows = [(r.op, r.provider, r.count, r.signature) for r in records]
        print(table(rows, ("op", "provider", "calls", "arguments")))
    else:
        print(f"no eager calls{f' of {args.op}' if args.op else ''} in {args.trace}")
    for report in compiled:
        chosen = sorted({(n["op"], n["provider"]) for n in report.get("lowered", [])})
        ops = ", ".join(f"{op} -> {p}" for op, p in chosen if args.op in (None, op))
        print(
            "\n".join(fit(f"compiled {report.get('graph') or 'a graph'}: {ops or 'no IR nodes'}"))
        )
    return EXIT_OK
