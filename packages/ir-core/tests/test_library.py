"""Every op is a torch custom op that FakeTensor, FX and opcheck accept."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import ir_core

OPS = ["rms_norm", "fused_add_rms_norm", "dual_rms_norm"]


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck_passes_on_every_sample(name, dtype):
    op = ir_core.get_op(name)
    samples = op.sample_inputs(dtype)
    assert samples
    for sample in samples:
        if any(
            isinstance(a, torch.Tensor) and a.numel() == 0 and a._base is not None
            for a in sample.args
        ):
            continue  # opcheck's own input cloning cannot copy zero-size strided views
        torch.library.opcheck(
            getattr(torch.ops.ir_core, name).default,
            sample.args,
            sample.kwargs,
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
        )


@pytest.mark.parametrize("name", OPS)
def test_torch_op_matches_native(name):
    op = ir_core.get_op(name)
    sample = op.example_inputs(5, 32, torch.float32)
    expected = op.native(*sample.args)
    actual = getattr(torch.ops.ir_core, name)(*sample.args)
    torch.testing.assert_close(actual, expected)


def test_kernel_is_not_tied_to_a_device_dispatch_key():
    # Registered for CompositeExplicitAutograd, so any backend (PrivateUse1, XPU, ...) reaches it.
    assert torch._C._dispatch_has_kernel_for_dispatch_key(
        "ir_core::rms_norm", "CompositeExplicitAutograd"
    )
    for key in ("CPU", "CUDA"):
        assert not torch._C._dispatch_has_kernel_for_dispatch_key("ir_core::rms_norm", key)


def test_meta_tensors_work():
    x = torch.empty(4, 16, device="meta", dtype=torch.bfloat16)
    w = torch.empty(16, device="meta", dtype=torch.float32)
    out = torch.ops.ir_core.rms_norm(x, w, 1e-6)
    assert out.device.type == "meta" and out.dtype == torch.bfloat16 and out.shape == x.shape


def test_fake_tensors_dispatch_to_the_semantics():
    with FakeTensorMode():
        x = torch.empty(7, 32, dtype=torch.float16)
        out, res = ir_core.ops.fused_add_rms_norm(x, torch.empty(7, 32), torch.empty(32), 1e-6)
    assert out.shape == (7, 32) and out.dtype == torch.float16 and res.dtype == torch.float32


def test_ops_are_opaque_in_graphs():
    def f(x, w):
        return ir_core.ops.rms_norm(x, w, 1e-6) * 2

    gm = torch.fx.experimental.proxy_tensor.make_fx(
        lambda x, w: torch.ops.ir_core.rms_norm(x, w, 1e-6) * 2
    )(torch.randn(2, 8), torch.randn(8))
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert torch.ops.ir_core.rms_norm.default in targets
    compiled = torch.compile(f, backend="eager", fullgraph=True)
    x, w = torch.randn(3, 8), torch.randn(8)
    torch.testing.assert_close(compiled(x, w), f(x, w))


def test_fast_path_still_records_the_op_in_dynamo_graphs():
    import torch._dynamo  # Dynamo loaded: the next miss enables the fast body

    dispatcher = ir_core.ops.rms_norm
    dispatcher(torch.randn(3, 24), None, 1e-6)  # a new key: a miss
    assert "is_compiling" not in dispatcher.__code__.co_names
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(lambda x: dispatcher(x, None, 1e-6), backend=capture, fullgraph=True)
    x = torch.randn(3, 24)
    torch.testing.assert_close(compiled(x), ir_core.get_op("rms_norm").native(x, None, 1e-6))
    targets = [n.target for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.ir_core.rms_norm.default]


def test_non_strict_export_records_the_op_after_the_fast_path():
    import torch._dynamo  # Dynamo loaded: the next miss enables the fast body

    dispatcher = ir_core.ops.rms_norm
    dispatcher(torch.randn(5, 40), None, 1e-6)  # a new key: a miss
    assert "is_compiling" not in dispatcher.__code__.co_names

    class Norm(torch.nn.Module):
        def forward(self, x):
            return dispatcher(x, None, 1e-6)

    exported = torch.export.export(Norm(), (torch.randn(5, 40),), strict=False)
    targets = [n.target for n in exported.graph.nodes if n.op == "call_function"]
    assert torch.ops.ir_core.rms_norm.default in targets
