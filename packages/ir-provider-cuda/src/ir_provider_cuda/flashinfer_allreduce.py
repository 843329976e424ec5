"""The ``flashinfer`` provider of ir-fusions' all-reduce norm ops: FlashInfer's allreduce fusion.

Ops (declared by the ir-fusions wheel; nothing is registered when it is not installed)::

    all_reduce_rms_norm(x, group_name, weight, epsilon, weight_bias=0.0, variance_size=None)
        -> (out, reduced)
    all_reduce_fused_add_rms_norm(x, residual, group_name, weight, epsilon, weight_bias=0.0,
                                  variance_size=None) -> (out, residual_out)

Wrapped API, ``flashinfer.comm`` of flashinfer-python >= 0.6.12 (checked against that release's
wheel; ``weight_bias`` is what 0.6.12 added, for Gemma/Qwen3.5's ``1 + weight``):

- ``create_allreduce_fusion_workspace(backend, world_size, rank, max_token_num, hidden_dim,
  dtype, ..., group=ProcessGroup)``: a collective; allocates IPC/symmetric buffers for up to
  ``max_token_num * hidden_dim`` elements; ``group`` is the process group of the rendezvous.
- ``allreduce_fusion(input, workspace, pattern, launch_with_pdl, trigger_completion_at_end,
  output, residual_out, norm_out, ..., residual_in, rms_gamma, rms_eps, ..., fp32_acc, ...,
  weight_bias)`` with ``pattern=AllReduceFusionPattern.kARResidualRMSNorm`` (1):
  ``residual_out = all_reduce(input) + residual_in``, ``norm_out = rms_norm(residual_out)``
  scaled by ``weight_bias + rms_gamma``.

Facts from the 0.6.12 and 0.7.4 releases (``comm/trtllm_ar.py``, ``comm/allreduce.py``,
``trtllm_allreduce_fusion.cuh``; the same in both) that shape this wrapper:

- The kernels are instantiated for 2, 4, 8 and 16 ranks; ``rms_gamma`` is read in the input's
  dtype (not checked); ``hidden_dim`` must be a multiple of the 16-byte vector (8 fp16/bf16
  elements); input and outputs are flattened with ``view(-1)`` and must be contiguous, and
  their starts 16-byte aligned (not checked: a fault); the norm is taken of ``residual_out``
  rounded to the input dtype (native normalizes the fp32 sum: at most one ulp apart, within
  tolerance).
- Launch (sm_90+): ``H / 8`` threads per token, split over a cluster of up to 8 blocks; a block
  must not exceed 1024 threads, and the two-shot kernel needs one thread per rank at least
  (:func:`block_threads`).
- ``use_oneshot=None`` makes FlashInfer choose from ``_use_oneshot_heuristics[world_size]``, a
  table of 2, 4 and 8 ranks only: a KeyError on every rank of a 16-rank group. The two-shot
  kernel asserts more tokens than ranks. So this wrapper always passes the choice
  (:func:`use_oneshot`).
- ``output=None`` allocates ``torch.empty_like(input)`` on every call, although the residual
  pattern never writes it; ``residual_out``'s buffer is passed as ``output`` instead. The plain
  op's zero residual is one buffer per workspace, sliced per call (the kernel only reads it).

``all_reduce_rms_norm`` has no FlashInfer pattern of its own; as vLLM does, it runs the residual
pattern with a zero residual, so ``residual_out`` is the reduced tensor the op also returns.

One workspace per (group, dtype, hidden size, device), created on first use. Creating it is a
collective; it happens inside the first call, which every rank of the group makes together
(the op is a collective), so it must not be first reached inside CUDA-graph capture: run one
eager step first, as engines do for warm-up.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from ir_core import kit
from ir_core.kit import known

from . import flashinfer_lib
from .vendor_layout import aligned, dense_rows

PROVIDER = "flashinfer"
OPS = ("all_reduce_rms_norm", "all_reduce_fused_add_rms_norm")

#: Rank counts the TRT-LLM allreduce-fusion kernels are instantiated for.
WORLD_SIZES = (2, 4, 8, 16)
#: 16-bit only: what vLLM and SGLang run and FlashInfer benchmarks (fp32 needs another
#: workspace protocol and has no measured benefit over NCCL + a norm).
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
#: Hopper and newer, where FlashInfer's allreduce fusion is tuned (vLLM enables it there too).
MIN_CAPABILITY = (9, 0)
#: Tokens one workspace holds (times the hidden size); larger batches fall back to native,
#: whose NCCL all-reduce is as fast there. The size of a workspace is this times H times the
#: element size, per buffer.
MAX_TOKENS = 2048
_VECTOR_BYTES = 16
#: Threads of one block of the fusion kernels, at most.
_MAX_BLOCK_THREADS = 1024
#: One-shot up to this many MiB of ``tokens * H * 2 * world_size * element size``: FlashInfer's
#: own thresholds for 2, 4 and 8 ranks (measured by FlashInfer on B200; the same in every
#: release from 0.6.11.post3 to 0.7.4). FlashInfer has none for 16 ranks; there the 8-rank
#: threshold applies (unmeasured: one-shot traffic per rank grows with the rank count, so the
#: 16-rank threshold is not larger than this).
ONESHOT_MAX_MIB = {2: 512, 4: 64, 8: 42}

#: The order proposed for NVIDIA GPUs. Not yet merged into the plugin's ``platform_priority``
#: (its owner decides, from measurements); until then select it with ``IR_CORE_OP_PRIORITY=
#: "all_reduce_rms_norm=flashinfer;all_reduce_fused_add_rms_norm=flashinfer"``.
CUDA_PRIORITY = {op: [PROVIDER] for op in OPS}


@dataclass
class _Workspace:
    """FlashInfer's workspace of one (group, dtype, hidden size, device), and the zero residual
    of the plain op (created on its first call)."""

    handle: Any
    world_size: int
    zeros: torch.Tensor | None = None


_workspaces: dict[tuple[str, torch.dtype, int, int], _Workspace] = {}


def _import_comm() -> tuple[ModuleType | None, str]:
    """``flashinfer.comm`` with the allreduce-fusion API of 0.6.12, or why not."""
    comm, reason = kit.import_module("flashinfer.comm")
    if comm is None:  # installed but broken (ABI mismatch, CUDA libraries)
        return None, reason
    missing = [
        name
        for name in (
            "allreduce_fusion",
            "create_allreduce_fusion_workspace",
            "AllReduceFusionPattern",
        )
        if not hasattr(comm, name)
    ]
    if missing:
        return None, f"flashinfer.comm has no {', '.join(missing)} (needs flashinfer >= 0.6.12)"
    if "weight_bias" not in inspect.signature(comm.allreduce_fusion).parameters:
        return None, "flashinfer.comm.allreduce_fusion has no weight_bias (needs >= 0.6.12)"
    return comm, ""


#: ``flashinfer.comm``, imported the first time the provider is found usable.
COMM = kit.LazyVendor(PROVIDER, _import_comm)


def available() -> tuple[bool, str]:
    """FlashInfer >= 0.6.12 on an NVIDIA GPU >= sm_90, with torch.distributed, more than one rank.

    Every missing condition is named. The world size is judged when this runs (the first
    time the provider is considered, i.e. at the first all-reduce norm call): a process group of
    one rank makes the provider unavailable ("world size 1"); each call's own group is checked
    again by ``supports_args``.
    """
    reasons = flashinfer_lib.environment_problems(MIN_CAPABILITY, "the allreduce fusion")
    dist = torch.distributed
    if not dist.is_available():
        reasons.append("torch.distributed is not built into this torch")
    elif dist.is_initialized() and dist.get_world_size() == 1:
        reasons.append("world size 1: there is nothing to all-reduce across")
    if reasons:
        return False, "; ".join(reasons)
    return COMM.available()


# --------------------------------------------------------------------------------------------
# supports_args
# --------------------------------------------------------------------------------------------


def process_group(group_name: str) -> Any | None:
    """The initialized process group called ``group_name``, or None."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return dist.distributed_c10d._resolve_process_group(group_name)
    except Exception:  # an unknown name: not ours to reduce over
        return None


def group_size(group_name: str) -> int | None:
    """Ranks in the process group called ``group_name``; None when there is no such group."""
    group = process_group(group_name)
    return None if group is None else group.size()


def block_threads(hidden: int, element_size: int) -> int:
    """Threads per block FlashInfer's launcher gives a token of ``hidden`` elements on sm_90+.

    A token takes ``hidden / vector`` threads, split over the largest cluster (8, 4, 2 or 1
    blocks) that divides them evenly, merged back while a block has fewer than 128 threads.
    """
    per_token = hidden // (_VECTOR_BYTES // element_size)
    cluster = 8
    while per_token % cluster:
        cluster //= 2
    block = per_token // cluster
    while block < 128 and cluster >= 2:
        block, cluster = block * 2, cluster // 2
    return block


def use_oneshot(tokens: int, hidden: int, dtype: torch.dtype, world_size: int) -> bool:
    """The one-shot (True) or two-shot kernel for this call, as FlashInfer would choose where
    it can (:data:`ONESHOT_MAX_MIB`), and one-shot whenever two-shot cannot run (it needs more
    tokens than ranks). Within this wrapper's limits (H <= 64K, MAX_TOKENS) the one-shot
    buffers never exceed FlashInfer's MAX_COMM_SIZE, so FlashInfer keeps this choice."""
    if tokens <= world_size:
        return True
    threshold = ONESHOT_MAX_MIB.get(world_size, ONESHOT_MAX_MIB[8])
    return tokens * hidden * 2 * world_size * dtype.itemsize / (1 << 20) <= threshold


def unsupported_reason(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
    residual: torch.Tensor | None = None,
) -> str | None:
    """Why FlashInfer's kernel cannot run these arguments, or None when it can.

    Reads only metadata and the group's size; works on FakeTensors and symbolic token counts.
    """
    hidden = x.shape[-1]
    if x.dtype not in SUPPORTED_DTYPES:
        return f"dtype {x.dtype}: FlashInfer's allreduce fusion runs fp16/bf16 here"
    if weight is None or weight.dtype != x.dtype or weight.dim() != 1:
        return "needs a 1-D weight of x's dtype (the kernel reads gamma in x's dtype)"
    if not (known(weight.shape[0] == 1) or known(weight.stride(0) == 1)):
        return "weight is not contiguous"
    if variance_size is not None and not known(variance_size == hidden):
        return "variance_size other than H"
    if not isinstance(hidden, int):
        return "a symbolic hidden size (the kernel's launch shape depends on it)"
    if hidden % (_VECTOR_BYTES // x.element_size()):
        return f"hidden size {hidden} is not a multiple of the 16-byte vector"
    if not dense_rows(x):
        return "x does not view as a contiguous (N, H) matrix"
    if residual is not None and (
        residual.dtype != x.dtype or tuple(residual.shape) != tuple(x.shape)
    ):
        return "residual of another dtype or shape than x"
    if residual is not None and not dense_rows(residual):
        return "residual does not view as a contiguous (N, H) matrix"
    rows = x.numel() // hidden if hidden != 0 else None
    if rows is None or not known(rows <= MAX_TOKENS):
        return f"more than {MAX_TOKENS} tokens (or a token count not known to fit)"
    size = group_size(group_name)
    if size is None:
        return f"no initialized process group named {group_name!r}"
    if size not in WORLD_SIZES:
        return f"world size {size}: the kernels exist for {WORLD_SIZES} ranks"
    block = block_threads(hidden, x.element_size())
    if block > _MAX_BLOCK_THREADS:
        return f"hidden size {hidden}: a block of {block} threads (the kernels launch <= 1024)"
    if block < size:
        return f"hidden size {hidden}: {block} threads per block, fewer than {size} ranks"
    return None


def all_reduce_rms_norm_supports(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """See :func:`unsupported_reason`."""
    return unsupported_reason(x, group_name, weight, weight_bias, variance_size) is None


def all_reduce_fused_add_rms_norm_supports(
    x: torch.Tensor,
    residual: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """See :func:`unsupported_reason`; the residual must have x's dtype and shape."""
    return unsupported_reason(x, group_name, weight, weight_bias, variance_size, residual) is None


# --------------------------------------------------------------------------------------------
# Impls
# --------------------------------------------------------------------------------------------


def _workspace(
    group_name: str, hidden: int, dtype: torch.dtype, device: torch.device
) -> _Workspace:
    """The workspace of this group, dtype, hidden size and device; created (collectively) once."""
    key = (group_name, dtype, hidden, device.index if device.index is not None else -1)
    workspace = _workspaces.get(key)
    if workspace is None:
        group = process_group(group_name)
        assert group is not None  # supports_args
        handle = COMM.require().create_allreduce_fusion_workspace(
            backend="trtllm",  # single-node NVLink, up to 16 ranks: what the sizes above assume
            world_size=group.size(),
            rank=group.rank(),
            max_token_num=MAX_TOKENS,
            hidden_dim=hidden,
            dtype=dtype,
            group=group,
        )
        workspace = _workspaces[key] = _Workspace(handle, group.size())
    return workspace


def _run(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    group_name: str,
    weight: torch.Tensor,
    epsilon: float,
    weight_bias: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``kARResidualRMSNorm`` into fresh outputs: (norm of x reduced + residual, that sum);
    ``residual`` None: a zero residual (the plain op)."""
    hidden = x.shape[-1]
    out, residual_out = kit.empty_output(x), kit.empty_output(x)
    if x.numel() == 0:  # every rank has the same shape, so every rank skips together
        return out, residual_out
    comm = COMM.require()
    workspace = _workspace(group_name, hidden, x.dtype, x.device)
    rows = x.reshape(-1, hidden)
    tokens = rows.shape[0]
    if residual is None:
        if workspace.zeros is None:
            workspace.zeros = torch.zeros((MAX_TOKENS, hidden), dtype=x.dtype, device=x.device)
        residual_in = workspace.zeros[:tokens]
    else:
        residual_in = aligned(residual.reshape(-1, hidden))
    residual_rows = residual_out.view(-1, hidden)
    comm.allreduce_fusion(
        input=aligned(rows),
        workspace=workspace.handle,
        pattern=comm.AllReduceFusionPattern.kARResidualRMSNorm,
        launch_with_pdl=False,
        trigger_completion_at_end=True,
        output=residual_rows,  # never written by this pattern; FlashInfer would allocate one
        residual_out=residual_rows,
        norm_out=out.view(-1, hidden),
        residual_in=residual_in,
        rms_gamma=aligned(weight),
        rms_eps=float(epsilon),
        use_oneshot=use_oneshot(tokens, hidden, x.dtype, workspace.world_size),
        fp32_acc=True,  # sum the ranks in fp32, round once
        weight_bias=float(weight_bias),
    )
    return out, residual_out


def all_reduce_rms_norm(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashInfer's residual pattern with a zero residual: returns ``(out, reduced)``.

    ``x`` (..., H) fp16/bf16 viewing as contiguous rows, ``weight`` (H,) of x's dtype, as
    :func:`all_reduce_rms_norm_supports` allows. Nothing is written to the inputs.
    """
    assert weight is not None  # supports_args
    return _run(x, None, group_name, weight, epsilon, weight_bias)


def all_reduce_fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashInfer's ``kARResidualRMSNorm``: returns ``(out, residual_out)``.

    ``residual_out = all_reduce(x) + residual`` in x's dtype, ``out`` its norm. Nothing is
    written to the inputs.
    """
    assert weight is not None  # supports_args
    return _run(x, residual, group_name, weight, epsilon, weight_bias)


def register_impls(registry: Any) -> None:
    """Register both impls when the ops exist (the ir-fusions wheel declares them)."""
    impls = {
        OPS[0]: (all_reduce_rms_norm, all_reduce_rms_norm_supports),
        OPS[1]: (all_reduce_fused_add_rms_norm, all_reduce_fused_add_rms_norm_supports),
    }
    declared = {op.name for op in registry.ops()}
    kit.register_impls(
        registry,
        PROVIDER,
        {op: row for op, row in impls.items() if op in declared},
        device_types=("cuda",),
        available=available,
    )
