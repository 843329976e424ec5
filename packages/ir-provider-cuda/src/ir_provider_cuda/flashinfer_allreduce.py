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

Facts from the 0.6.12 kernels (``trtllm_allreduce_fusion.cuh``) that shape ``supports_args``:
the TRT-LLM kernels are instantiated for 2, 4, 8 and 16 ranks; ``rms_gamma`` is read in the
input's dtype; ``hidden_dim`` must be a multiple of the 16-byte vector (8 fp16/bf16 elements);
input and outputs are flattened with ``view(-1)`` and must be contiguous; the norm is taken of
``residual_out`` rounded to the input dtype (native normalizes the fp32 sum in the fused add
case: at most one ulp apart, within tolerance).

``all_reduce_rms_norm`` has no FlashInfer pattern of its own; as vLLM does, it runs the residual
pattern with a zero residual, so ``residual_out`` is the reduced tensor the op also returns.

One workspace per (group, dtype, hidden size, device), created on first use. Creating it is a
collective; it happens inside the first call, which every rank of the group makes together
(the op is a collective), so it must not be first reached inside CUDA-graph capture: run one
eager step first, as engines do for warm-up.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import torch

from ir_core import kit
from ir_core.kit import has_unit_last_stride, known, row_layout

from . import flashinfer_norm

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

#: The order proposed for NVIDIA GPUs. Not yet merged into the plugin's ``platform_priority``
#: (its owner decides, from measurements); until then select it with ``IR_CORE_OP_PRIORITY=
#: "all_reduce_rms_norm=flashinfer;all_reduce_fused_add_rms_norm=flashinfer"``.
CUDA_PRIORITY = {op: [PROVIDER] for op in OPS}

_workspaces: dict[tuple[str, torch.dtype, int, int], Any] = {}


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
    reasons = flashinfer_norm.environment_problems(MIN_CAPABILITY, "the allreduce fusion")
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


def group_size(group_name: str) -> int | None:
    """Ranks in the process group called ``group_name``; None when there is no such group."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return dist.distributed_c10d._resolve_process_group(group_name).size()
    except Exception:  # an unknown name: not ours to reduce over
        return None


def _dense_rows(t: torch.Tensor) -> bool:
    """``t`` (..., H) views as a contiguous (N, H) matrix, decided without adding guards."""
    if not has_unit_last_stride(t):
        return False
    layout = row_layout(t)
    if layout is None or not layout.single_level:
        return False
    return layout.levels == 0 or known(layout.stride_inner == t.shape[-1])


def unsupported_reason(
    x: torch.Tensor,
    group_name: str,
    weight: torch.Tensor | None,
    weight_bias: float,
    variance_size: int | None,
    residual: torch.Tensor | None = None,
) -> str | None:
    """Why FlashInfer's kernel cannot run these arguments, or None when it can.

    Reads only metadata and the group's size; works on FakeTensors and symbolic shapes.
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
    if not known(hidden % (_VECTOR_BYTES // x.element_size()) == 0):
        return f"hidden size {hidden} is not a multiple of the 16-byte vector"
    if not _dense_rows(x):
        return "x does not view as a contiguous (N, H) matrix"
    if residual is not None and (
        residual.dtype != x.dtype or tuple(residual.shape) != tuple(x.shape)
    ):
        return "residual of another dtype or shape than x"
    if residual is not None and not _dense_rows(residual):
        return "residual does not view as a contiguous (N, H) matrix"
    rows = x.numel() // hidden if known(hidden != 0) else None
    if rows is None or not known(rows <= MAX_TOKENS):
        return f"more than {MAX_TOKENS} tokens (or a token count not known to fit)"
    size = group_size(group_name)
    if size is None:
        return f"no initialized process group named {group_name!r}"
    if size not in WORLD_SIZES:
        return f"world size {size}: the kernels exist for {WORLD_SIZES} ranks"
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


def _workspace(group_name: str, hidden: int, dtype: torch.dtype, device: torch.device) -> Any:
    """The workspace of this group, dtype, hidden size and device; created (collectively) once."""
    key = (group_name, dtype, hidden, device.index if device.index is not None else -1)
    workspace = _workspaces.get(key)
    if workspace is None:
        group = torch.distributed.distributed_c10d._resolve_process_group(group_name)
        workspace = COMM.require().create_allreduce_fusion_workspace(
            backend="trtllm",  # single-node NVLink, up to 16 ranks: what the sizes above assume
            world_size=group.size(),
            rank=group.rank(),
            max_token_num=MAX_TOKENS,
            hidden_dim=hidden,
            dtype=dtype,
            group=group,
        )
        _workspaces[key] = workspace
    return workspace


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``t``, or a copy of it when its start is not 16-byte aligned (FlashInfer's vector loads)."""
    return t if t.data_ptr() % _VECTOR_BYTES == 0 else t.clone()


def _run(
    x: torch.Tensor,
    residual: torch.Tensor,
    group_name: str,
    weight: torch.Tensor,
    epsilon: float,
    weight_bias: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``kARResidualRMSNorm`` into fresh outputs: (norm of x reduced + residual, that sum)."""
    hidden = x.shape[-1]
    out, residual_out = kit.empty_output(x), kit.empty_output(x)
    if x.numel() == 0:  # every rank has the same shape, so every rank skips together
        return out, residual_out
    comm = COMM.require()
    comm.allreduce_fusion(
        input=_aligned(x.reshape(-1, hidden)),
        workspace=_workspace(group_name, hidden, x.dtype, x.device),
        pattern=comm.AllReduceFusionPattern.kARResidualRMSNorm,
        launch_with_pdl=False,
        trigger_completion_at_end=True,
        residual_out=residual_out.view(-1, hidden),
        norm_out=out.view(-1, hidden),
        residual_in=_aligned(residual.reshape(-1, hidden)),
        rms_gamma=_aligned(weight),
        rms_eps=float(epsilon),
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
    return _run(x, torch.zeros_like(x), group_name, weight, epsilon, weight_bias)


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
