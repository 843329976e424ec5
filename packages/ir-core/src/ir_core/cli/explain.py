"""``ir-core explain OP``: which impl an op would run here, and why the others would not."""

from __future__ import annotations

import argparse
from typing import Any

import ir_core
from ir_core.platform import (
    ENV_PLATFORM,
    current_platform,
    device_usable,
    dtype_name,
    platform_device,
)

from .args import EXIT_OK, parse_device, parse_dtype, parse_op, parse_shape
from .format import fit, print_json


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which impl an op would run, and why the others would not")
    p.add_argument("op", help="op name, e.g. rms_norm")
    p.add_argument("--device", default="cpu", help="device to dispatch for (default: cpu)")
    p.add_argument("--dtype", default="bfloat16", help="activation dtype (default: bfloat16)")
    p.add_argument("--shape", default="4,4096", help="N,H: tokens and hidden size (default 4,4096)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    op = parse_op(args.op)
    dtype = parse_dtype(args.dtype)
    n, h = parse_shape(args.shape)
    device = parse_device(args.device)
    stand_in = not device_usable(device)
    platform = current_platform()
    other_platform = platform_device(platform) != device.type
    sample = op.example_inputs(n, h, dtype, "meta" if stand_in else device)
    result = ir_core.explain(op, *sample.args, device_type=device.type, **sample.kwargs)
    data = {
        **result.to_dict(),
        "device": str(device),
        "dtype": dtype_name(dtype),
        "shape": [n, h],
        "stand_in_tensors": "meta" if stand_in else None,
        "priority_of_platform": platform,
    }
    if args.json:
        print_json(data)
    else:
        print("\n".join(fit(str(result))))
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
    return EXIT_OK
