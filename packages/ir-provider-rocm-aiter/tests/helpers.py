"""Shared by the aiter tests: tensors, and running a mapping over an op's catalogue samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from recording_aiter import RecordingAiter

import ir_core
from ir_core.testing import assert_matches_native
from ir_provider_rocm_aiter import aiter_api

EPS = 1e-6


def probe(rec: RecordingAiter) -> aiter_api.AiterApi:
    """What the provider reads from this recorder (its prebuilt modules as "importable")."""
    return aiter_api.probe(rec, rec.generation, built=rec.prebuilt.__contains__)


def t(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.float32).to(dtype)


def e(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype)


def same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def matches_native_on_samples(
    op_name: str,
    dtype: torch.dtype,
    supported: Callable[..., bool],
    call: Callable[..., Any],
) -> int:
    """Every catalogue sample of ``op_name`` in ``dtype`` that ``supported(*args)`` admits,
    run through ``call(*args)`` and compared with native (values and no input written);
    returns how many were admitted."""
    op = ir_core.get_op(op_name)
    admitted = 0
    for sample in op.sample_inputs(dtype):
        args = op.bind(sample.args, sample.kwargs)
        if supported(*args):
            admitted += 1
            assert_matches_native(op, call, ir_core.Sample(args, label=sample.label))
    return admitted
