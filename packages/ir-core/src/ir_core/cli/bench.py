"""``ir-core bench OP``: every impl of an op timed side by side (exit 1 if one is wrong)."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ir_core.bench import bench_op, default_shape, noisy_warning, table_rows, untimed_lines
from ir_core.platform import current_platform, device_usable, dtype_name, platform_device

from .args import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    parse_device,
    parse_dtype,
    parse_op,
    parse_shape,
    progress,
)
from .format import print_json, table, wrapped


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="time every impl of an op side by side")
    p.add_argument("op", help="op name, e.g. rms_norm")
    p.add_argument(
        "--shape",
        default=None,
        help="N,H: tokens and hidden size (default 256,4096 on cpu, 4096,4096 on cuda)",
    )
    p.add_argument("--dtype", default="bfloat16", help="activation dtype (default: bfloat16)")
    p.add_argument("--device", default=None, help="device (default: the platform's)")
    p.add_argument(
        "--min-time", type=float, default=0.2, help="seconds to time each impl (default 0.2)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    op = parse_op(args.op)
    dtype = parse_dtype(args.dtype)
    if args.device:
        device = parse_device(args.device)
    else:
        device = torch.device(platform_device(current_platform()))
    if not device_usable(device):
        raise UsageError(f"--device {device}: no such device on this machine")
    n, h = parse_shape(args.shape) if args.shape else default_shape(device.type)
    if args.min_time <= 0:
        raise UsageError("--min-time must be > 0")
    shown = progress(args)
    shown.note(f"ir-core bench {op.name}: shape {n},{h} {dtype_name(dtype)} on {device}")
    rows = bench_op(
        op,
        num_tokens=n,
        hidden_size=h,
        dtype=dtype,
        device=str(device),
        min_time=args.min_time,
        progress=shown,
    )
    failed = any(r.status == "failed" or r.matches_native is False for r in rows)
    if args.json:
        print_json(
            {
                "op": op.name,
                "shape": [n, h],
                "dtype": dtype_name(dtype),
                "device": str(device),
                "impls": [r.to_dict() for r in rows],
                "noisy": any(r.noisy for r in rows),
            }
        )
    else:
        header, body = table_rows(rows)
        print(f"{op.name}  shape {n},{h}  {dtype_name(dtype)}  on {device}\n")
        print(table(body, header) if body else "no impl could be timed")
        untimed = untimed_lines(rows)
        if untimed:
            print("\nnot timed:")
            for line in untimed:
                print("\n".join(wrapped(line, indent="  ")))
        legend = (
            "min, median and max of repeated calls; GB/s (from the median) counts each "
            "argument read once and each output written once"
        )
        print()
        print("\n".join(wrapped(legend, indent="")))
        warning = noisy_warning(rows)
        if warning:
            print("\n".join(wrapped(warning, indent="")))
    return EXIT_FAILURE if failed else EXIT_OK
