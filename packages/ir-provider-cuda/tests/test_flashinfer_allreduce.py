"""The ``flashinfer`` impls of ir-fusions' all-reduce norm ops.

What they accept and why they are unavailable is checked everywhere (metadata only); the
kernels need at least two NVIDIA GPUs and flashinfer-python, so those tests are marked ``gpu``
and skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import ir_core
from ir_core import kit
from ir_provider_cuda import flashinfer_allreduce as fa

pytest.importorskip("ir_fusions", reason="the all-reduce norm ops are declared by ir-fusions")

EPS = 1e-6
H = 4096
BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32


def _x(*shape: int, dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


_W = _x(H)


@pytest.fixture
def ranks(monkeypatch: pytest.MonkeyPatch):
    """Pretend the group named in a call has ``n`` ranks (supports_args asks group_size)."""

    def set_size(n: int | None) -> None:
        monkeypatch.setattr(fa, "group_size", lambda name: n)

    set_size(2)
    return set_size


CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], bool]] = [
    ("bf16 2-D", (_x(8, H), "tp", _W, EPS), {}, True),
    ("fp16", (_x(8, H, dtype=FP16), "tp", _x(H, dtype=FP16), EPS), {}, True),
    ("3-D contiguous", (_x(2, 4, H), "tp", _W, EPS), {}, True),
    ("gemma weight_bias=1.0", (_x(8, H), "tp", _W, EPS), {"weight_bias": 1.0}, True),
    ("any weight_bias", (_x(8, H), "tp", _W, EPS), {"weight_bias": 0.5}, True),
    ("variance_size == H", (_x(8, H), "tp", _W, EPS), {"variance_size": H}, True),
    ("zero tokens", (_x(0, H), "tp", _W, EPS), {}, True),
    ("fp32", (_x(8, H, dtype=FP32), "tp", _x(H, dtype=FP32), EPS), {}, False),
    ("fp32 weight with bf16 x", (_x(8, H), "tp", _x(H, dtype=FP32), EPS), {}, False),
    ("weight None", (_x(8, H), "tp", None, EPS), {}, False),
    ("variance_size < H", (_x(8, H), "tp", _W, EPS), {"variance_size": 128}, False),
    ("H not a multiple of 8", (_x(8, 4092 + 3), "tp", _x(4095), EPS), {}, False),
    ("strided rows", (_x(8, H + 64)[:, :H], "tp", _W, EPS), {}, False),
    ("strided weight", (_x(8, H), "tp", _x(2 * H)[::2], EPS), {}, False),
    ("too many tokens", (_x(fa.MAX_TOKENS + 1, H), "tp", _W, EPS), {}, False),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_all_reduce_rms_norm_supports(ranks, args, kwargs, expected) -> None:
    assert fa.all_reduce_rms_norm_supports(*args, **kwargs) is expected


@pytest.mark.parametrize(
    ("size", "expected"), [(2, True), (8, True), (16, True), (3, False), (32, False), (None, False)]
)
def test_supported_world_sizes(ranks, size, expected) -> None:
    ranks(size)
    assert fa.all_reduce_rms_norm_supports(_x(8, H), "tp", _W, EPS) is expected
    reason = fa.unsupported_reason(_x(8, H), "tp", _W, 0.0, None)
    assert (reason is None) is expected
    if size is None:
        assert "no initialized process group named 'tp'" in reason


def test_fused_add_supports(ranks) -> None:
    x, r = _x(8, H), _x(8, H)
    assert fa.all_reduce_fused_add_rms_norm_supports(x, r, "tp", _W, EPS, 1.0) is True
    assert not fa.all_reduce_fused_add_rms_norm_supports(x, _x(8, H, dtype=FP32), "tp", _W, EPS)
    assert not fa.all_reduce_fused_add_rms_norm_supports(x, _x(8, H + 8)[:, :H], "tp", _W, EPS)
    assert not fa.all_reduce_fused_add_rms_norm_supports(x, r, "tp", None, EPS)


def test_unavailable_here_says_why() -> None:
    ok, reason = fa.available()
    if importlib.util.find_spec("flashinfer") is None:
        assert not ok and "flashinfer-python not installed" in reason
    if not torch.cuda.is_available() and torch.version.hip is None:
        assert not ok and "no CUDA device" in reason


def test_world_size_one_makes_the_provider_unavailable() -> None:
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ok, reason = fa.available()
        group = dist.group.WORLD.group_name
        assert fa.group_size(group) == 1
        assert "no initialized process group" in fa.unsupported_reason(
            _x(8, H), "nope", _W, 0.0, None
        )
    finally:
        dist.destroy_process_group()
    assert not ok and "world size 1" in reason


class RecordingRegistry:
    """Just what ``register_impls`` touches: a real Registry would define the torch ops again."""

    def __init__(self, op_names: list[str]) -> None:
        self._ops = [type("Op", (), {"name": name})() for name in op_names]
        self.impls: list[tuple[str, str, Any, dict[str, Any]]] = []

    def ops(self) -> list[Any]:
        return self._ops

    def register_impl(self, op: str, provider: str, fn: Any, **kwargs: Any) -> None:
        self.impls.append((op, provider, fn, kwargs))


def test_registers_both_ops_when_ir_fusions_declares_them() -> None:
    from ir_core.registry import check_signature

    without = RecordingRegistry(["rms_norm", "fused_add_rms_norm", "dual_rms_norm"])
    fa.register_impls(without)  # ir-fusions not loaded: nothing to register, and no error
    assert without.impls == []

    with_ops = RecordingRegistry(["rms_norm", *fa.OPS])
    fa.register_impls(with_ops)
    assert [(op, provider) for op, provider, _, _ in with_ops.impls] == [
        (name, fa.PROVIDER) for name in fa.OPS
    ]
    for name, _, fn, kwargs in with_ops.impls:
        assert kwargs["device_types"] == ("cuda",) and kwargs["available"] is fa.available
        # what Registry.register_impl checks: names, annotations, defaults, return type
        op = ir_core.get_op(name)
        check_signature(op, fn, what=name, check_types=True)
        check_signature(op, kwargs["supports_args"], what=name, check_types=False)


def test_user_priority_selects_flashinfer_for_both_ops() -> None:
    """Not in the plugin's default order yet: a user priority names it (an unknown provider or
    op there would be an error, so this also checks both ops and the provider are known)."""
    from ir_core.priority import normalize, parse

    spec = ";".join(f"{op}={','.join(order)}" for op, order in fa.CUDA_PRIORITY.items())
    assert normalize(parse(spec), source="test") == {op: (fa.PROVIDER,) for op in fa.OPS}


def test_installed_plugins_register_the_flashinfer_impls() -> None:
    ir_core.load_plugins()
    for name in fa.OPS:
        assert fa.PROVIDER in ir_core.get_op(name).impls


# -- the wrapper against a stand-in of flashinfer.comm ----------------------------------------

#: FlashInfer's one-shot choice when ``use_oneshot`` is None, as released in flashinfer-python
#: 0.6.12 and 0.7.4 (``comm/trtllm_ar.py``: ``_use_oneshot_heuristics`` and
#: ``_should_use_oneshot``, identical in every release from 0.6.11.post3 to 0.7.4): one-shot
#: while ``tokens * H * 2 * world_size * itemsize`` is at most this many MiB. No entry for 16.
FLASHINFER_0_6_12_ONESHOT_MIB = {2: 512, 4: 64, 8: 42}


def flashinfer_0_6_12_should_use_oneshot(tokens, hidden, dtype, world_size) -> bool:
    mib = tokens * hidden * 2 * world_size * dtype.itemsize / 1024 / 1024
    return mib <= FLASHINFER_0_6_12_ONESHOT_MIB[world_size]  # KeyError for 16 ranks


class StandInComm:
    """``flashinfer.comm`` as far as the wrapper uses it, mirroring flashinfer-python 0.6.12's
    ``create_allreduce_fusion_workspace`` and ``allreduce_fusion`` (same parameters and
    defaults; ``test_vendor_flashinfer`` compares them with the real ones) and what their
    trtllm path does before the kernel: the 2-D input, ``output = torch.empty_like(input)``
    when None (recorded in ``allocated``), the contiguity check (ValueError), the workspace
    metadata check, ``_should_use_oneshot`` when ``use_oneshot`` is None (a KeyError at 16
    ranks) and the two-shot assertion (more tokens than ranks). The kernel's arithmetic is one
    rank's (no reduction): ``residual_out = input + residual_in`` in the input dtype,
    ``norm_out`` its RMSNorm scaled by ``weight_bias + gamma``."""

    class AllReduceFusionPattern:
        kAllReduce = 0
        kARResidualRMSNorm = 1

    def __init__(self) -> None:
        self.workspaces: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.allocated: list[torch.Tensor] = []

    def create_allreduce_fusion_workspace(
        self,
        backend="auto",
        world_size=None,
        rank=None,
        max_token_num=None,
        hidden_dim=None,
        dtype=None,
        gpus_per_node=None,
        comm_backend=None,
        force_oneshot_support=False,
        group=None,
    ):
        arguments = dict(locals())
        arguments.pop("self")
        self.workspaces.append(arguments)
        return type("Workspace", (), {"world_size": world_size, "rank": rank, **arguments})()

    def allreduce_fusion(
        self,
        input,
        workspace,
        pattern,
        launch_with_pdl=False,
        trigger_completion_at_end=True,
        output=None,
        residual_out=None,
        norm_out=None,
        quant_out=None,
        scale_out=None,
        residual_in=None,
        rms_gamma=None,
        rms_eps=1e-6,
        scale_factor=None,
        layout_code=None,
        use_oneshot=None,
        fp32_acc=False,
        moe_reduction_device_num_experts=None,
        moe_reduction_scale_input=None,
        moe_reduction_active_experts_token_input=None,
        moe_reduction_token_input=None,
        expanded_idx_to_permuted_idx=None,
        expert_scale_factor=None,
        shared_expert_output=None,
        block_quant_group_size=None,
        weight_bias=0.0,
    ):
        call = dict(locals())
        call.pop("self")
        assert pattern == self.AllReduceFusionPattern.kARResidualRMSNorm
        tokens, hidden = input.shape
        if output is None:
            output = torch.empty_like(input)
            self.allocated.append(output)
        for name, t in (("input", input), ("output", output), ("residual_in", residual_in),
                        ("residual_out", residual_out), ("norm_out", norm_out)):  # fmt: skip
            if t is not None and not t.is_contiguous():
                raise ValueError(f"{name} must be contiguous")
        if tokens > workspace.max_token_num:
            raise ValueError("Workspace validation failed: token_num exceeds max_token_num")
        if use_oneshot is None:
            use_oneshot = flashinfer_0_6_12_should_use_oneshot(
                tokens, hidden, input.dtype, workspace.world_size
            )
        if not use_oneshot:
            assert tokens > workspace.world_size, "sequence length should be larger than tp_size"
        call["chosen_oneshot"] = use_oneshot
        self.calls.append(call)
        assert rms_gamma.dtype == input.dtype
        summed = (input.float() + residual_in.float()).to(input.dtype)  # one rank: no reduction
        residual_out.copy_(summed)
        r = summed.float()
        scale = torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + rms_eps)
        norm_out.copy_((r * scale * (weight_bias + rms_gamma.float())).to(input.dtype))
        return norm_out


@pytest.fixture
def one_rank_stand_in(monkeypatch: pytest.MonkeyPatch):
    """A real one-rank process group, and the stand-in where flashinfer.comm would be."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    comm = StandInComm()
    monkeypatch.setattr(fa, "COMM", kit.LazyVendor(fa.PROVIDER, lambda: (comm, "")))
    monkeypatch.setattr(fa, "_workspaces", {})
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield comm, dist.group.WORLD.group_name
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("dtype", [FP16, BF16], ids=str)
def test_wrapper_matches_native_through_the_stand_in(one_rank_stand_in, ranks, dtype) -> None:
    """Argument wiring, output wiring, no input written, native semantics (one rank, so the
    all-reduce is the identity), on every sample supports_args accepts (its group check is
    told 2 ranks: the real group has one, which the kernels would not take)."""
    from ir_core.testing import assert_matches_native

    comm, _ = one_rank_stand_in
    ran = 0
    for name, fn, supports in (
        (fa.OPS[0], fa.all_reduce_rms_norm, fa.all_reduce_rms_norm_supports),
        (fa.OPS[1], fa.all_reduce_fused_add_rms_norm, fa.all_reduce_fused_add_rms_norm_supports),
    ):
        for sample in ir_core.get_op(name).sample_inputs(dtype):
            if supports(*sample.args, **sample.kwargs):
                assert_matches_native(name, fn, sample)
                ran += 1
    assert ran >= 8
    assert all(call["fp32_acc"] and call["residual_in"] is not None for call in comm.calls)
    workspace = comm.workspaces[0]  # one per (group, dtype, hidden size)
    assert workspace["backend"] == "trtllm" and workspace["world_size"] == 1
    assert workspace["max_token_num"] == fa.MAX_TOKENS and workspace["dtype"] == dtype
    assert workspace["group"] is dist.group.WORLD
    assert len({(w["hidden_dim"], w["dtype"]) for w in comm.workspaces}) == len(comm.workspaces)


def test_plain_norm_runs_the_residual_pattern_with_a_zero_residual(one_rank_stand_in) -> None:
    comm, group = one_rank_stand_in
    x = torch.randn(2, 3, 64, dtype=BF16)  # 3-D: flattened to rows for the kernel
    w = torch.randn(64, dtype=BF16)
    out, reduced = fa.all_reduce_rms_norm(x, group, w, EPS, 1.0)
    (call,) = comm.calls
    assert call["input"].shape == (6, 64) and not call["residual_in"].any()
    assert call["weight_bias"] == 1.0 and call["rms_eps"] == EPS
    assert out.shape == reduced.shape == x.shape and torch.equal(reduced, x)


@pytest.mark.parametrize("world", [2, 4, 8])
def test_oneshot_choice_is_flashinfers_where_it_has_one(world: int) -> None:
    """For 2, 4 and 8 ranks the wrapper chooses as FlashInfer 0.6.12/0.7.4 would (the same
    test runs against the installed FlashInfer's own function in test_vendor_flashinfer)."""
    for dtype in (FP16, BF16):
        for hidden in (1024, 4096, 8192, 16384, 65536):
            for tokens in (1, 2, 4, 8, 16, 17, 64, 128, 512, 2048):
                expected = flashinfer_0_6_12_should_use_oneshot(tokens, hidden, dtype, world)
                assert fa.use_oneshot(tokens, hidden, dtype, world) is expected


@pytest.mark.parametrize("tokens", [1, 4, 16])
def test_oneshot_up_to_as_many_tokens_as_ranks(tokens: int) -> None:
    """Two-shot asserts more tokens than ranks, so those calls must be one-shot, at every rank
    count (FlashInfer's own choice raises KeyError at 16)."""
    for world in fa.WORLD_SIZES:
        assert fa.use_oneshot(min(tokens, world), 65536, BF16, world) is True
    with pytest.raises(KeyError):
        flashinfer_0_6_12_should_use_oneshot(tokens, 4096, BF16, 16)


@pytest.fixture
def stand_in_ranks(monkeypatch: pytest.MonkeyPatch):
    """The stand-in where flashinfer.comm would be, and a group of ``n`` ranks."""
    from cpu_vendor_kernels import FakeGroup

    comm = StandInComm()
    monkeypatch.setattr(fa, "COMM", kit.LazyVendor(fa.PROVIDER, lambda: (comm, "")))
    monkeypatch.setattr(fa, "_workspaces", {})

    def world(n: int) -> StandInComm:
        group = FakeGroup(n)
        monkeypatch.setattr(fa, "process_group", lambda name: group)
        return comm

    return world


@pytest.mark.parametrize("tokens", [1, 4, 16, 17, 512])
def test_sixteen_ranks_get_an_explicit_choice(stand_in_ranks, tokens: int) -> None:
    """Left to FlashInfer (``use_oneshot=None``), every call at 16 ranks is a KeyError."""
    comm = stand_in_ranks(16)
    x, r = torch.randn(tokens, H, dtype=BF16), torch.randn(tokens, H, dtype=BF16)
    w = torch.randn(H, dtype=BF16)
    assert fa.all_reduce_fused_add_rms_norm_supports(x, r, "tp", w, EPS)
    fa.all_reduce_fused_add_rms_norm(x, r, "tp", w, EPS)
    (call,) = comm.calls
    assert call["use_oneshot"] is fa.use_oneshot(tokens, H, BF16, 16)
    if tokens <= 16:
        assert call["use_oneshot"] is True


@pytest.mark.parametrize("tokens", [1, 8])
def test_plain_op_at_as_many_tokens_as_ranks(stand_in_ranks, tokens: int) -> None:
    comm = stand_in_ranks(8)
    fa.all_reduce_rms_norm(
        torch.randn(tokens, H, dtype=BF16), "tp", torch.randn(H, dtype=BF16), EPS
    )
    assert comm.calls[-1]["use_oneshot"] is True


def test_no_per_call_output_or_zero_residual(stand_in_ranks) -> None:
    """``output`` is the residual_out buffer (FlashInfer would allocate one per call; this
    pattern never writes it), and the plain op's zero residual is one buffer, reused."""
    comm = stand_in_ranks(8)
    w = torch.randn(H, dtype=BF16)
    for tokens in (3, 40):
        _, reduced = fa.all_reduce_rms_norm(torch.randn(tokens, H, dtype=BF16), "tp", w, EPS)
        call = comm.calls[-1]
        assert call["output"].data_ptr() == call["residual_out"].data_ptr() == reduced.data_ptr()
    assert comm.allocated == []
    first, second = (call["residual_in"] for call in comm.calls)
    assert first.data_ptr() == second.data_ptr() and not second.any()
    assert len(comm.workspaces) == 1


@pytest.mark.parametrize(
    ("hidden", "world", "reason"),
    [
        (4096, 16, None),
        (65536, 8, None),  # 8192 threads per token: a cluster of 8 blocks of 1024
        (12288, 8, None),  # 1536 threads: 8 x 192
        (64, 8, None),  # 8 threads, merged into one block of 8: one per rank
        (64, 16, "fewer than 16 ranks"),  # two-shot needs a thread per rank
        (12296, 8, "1537 threads"),  # an odd thread count: no cluster, one block > 1024
        (65544, 2, "8193 threads"),
    ],
)
def test_launch_limits(ranks, hidden: int, world: int, reason: str | None) -> None:
    """Hidden sizes FlashInfer's launcher (trtllm_allreduce_fusion.cuh, 0.6.12 and 0.7.4)
    cannot launch on sm_90+: a block over 1024 threads, or fewer threads than ranks."""
    ranks(world)
    got = fa.unsupported_reason(_x(8, hidden), "tp", _x(hidden), 0.0, None)
    assert got is None if reason is None else reason in got, got


# -- kernels on GPUs ---------------------------------------------------------------------------


def _ranks_module():
    """The GPU ranks' module, importable by name here and in the spawned children."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        return importlib.import_module("flashinfer_allreduce_ranks")
    finally:
        sys.path.pop(0)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices for an all-reduce")
def test_flashinfer_all_reduce_norms_match_native_on_two_gpus(monkeypatch) -> None:
    ok, reason = fa.available()
    if not ok:
        pytest.skip(f"flashinfer all-reduce unavailable: {reason}")
    import torch.multiprocessing as mp

    work = _ranks_module()
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # for the children to import it
    context = mp.start_processes(
        work.worker, args=(work.free_port(),), nprocs=work.WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + work.DEADLINE_S
    while not context.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the GPU ranks did not finish within {work.DEADLINE_S:.0f} s")
