"""The work of each GPU rank in ``test_flashinfer_allreduce.py``, in a module of its own.

Spawned processes import the function they run by module name; a test module imported by
pytest's importlib mode has a name no fresh interpreter can import, so the rank's code lives
here, on a path the test puts on ``sys.path`` (which spawned children inherit).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist

WORLD = 2
DEADLINE_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int) -> None:
    """One rank: every catalogue sample FlashInfer accepts must match native (NCCL + norm)."""
    import ir_core
    from ir_core.testing import assert_matches_native
    from ir_provider_cuda import flashinfer_allreduce as fa

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl", rank=rank, world_size=WORLD, timeout=timedelta(seconds=DEADLINE_S / 2)
    )
    try:
        ir_core.load_plugins()
        ran = 0
        for name, fn, supports in (
            (fa.OPS[0], fa.all_reduce_rms_norm, fa.all_reduce_rms_norm_supports),
            (
                fa.OPS[1],
                fa.all_reduce_fused_add_rms_norm,
                fa.all_reduce_fused_add_rms_norm_supports,
            ),
        ):
            for dtype in (torch.float16, torch.bfloat16):
                for sample in ir_core.get_op(name).sample_inputs(dtype, "cuda"):
                    if supports(*sample.args, **sample.kwargs):
                        assert_matches_native(name, fn, sample)
                        ran += 1
        assert ran >= 8, ran
    finally:
        dist.destroy_process_group()
