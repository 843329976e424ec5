"""``ir_core.integrations.transformers.patch``: which HF norm classes it replaces, with what, and
the eager logits of the patched models against the stock ones.

Tolerance: ``ONCE``, ``GEMMA`` and ``UNWEIGHTED`` norms are bitwise what HF computes, and so are
``LLAMA`` norms in fp32. In bf16 a ``LLAMA`` norm rounds twice in HF and once in ir-core, so
each norm output moves by at most one bf16 ulp; through two layers the bf16 logits stay within
the op's bf16 tolerance, rtol 1.6e-2, with atol 2e-2 for logits near zero.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from tiny_models import KINDS, build, input_ids, logits
from transformers.models.falcon_mamba.modeling_falcon_mamba import FalconMambaWeightlessRMSNorm
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
from transformers.models.idefics.modeling_idefics import IdeficsRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.moshi.modeling_moshi import MoshiRMSNorm
from transformers.models.nanochat.modeling_nanochat import NanoChatRMSNorm
from transformers.models.olmo2.modeling_olmo2 import Olmo2RMSNorm
from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextRMSNormGated

from ir_core.integrations.transformers import Form, IRRMSNorm, patch, unpatch

BF16_TOLERANCE = {"atol": 2e-2, "rtol": 1.6e-2}

#: The norm class each model family is written with, and the form it computes.
NORMS = {
    "llama": ("LlamaRMSNorm", Form.LLAMA),
    "qwen3": ("Qwen3RMSNorm", Form.LLAMA),
    "gemma3": ("Gemma3RMSNorm", Form.GEMMA),
    "deepseek_v3": ("DeepseekV3RMSNorm", Form.LLAMA),
}


def test_importing_ir_core_imports_no_transformers():
    code = (
        "import sys, ir_core, ir_core.integrations.transformers; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", KINDS)
def test_every_norm_of_the_model_is_patched_and_reported(kind):
    model = build(kind)
    norms = [name for name, m in model.named_modules() if type(m).__name__ == NORMS[kind][0]]
    report = patch(model)
    assert [p.path for p in report.patched] == norms and report.left_alone == []
    assert report.classes() == {NORMS[kind][0]: NORMS[kind][1].name}
    assert NORMS[kind][0] in str(report)
    assert all(isinstance(model.get_submodule(path), IRRMSNorm) for path in norms)
    assert patch(model).patched == []  # patching again finds nothing left to patch


@pytest.mark.parametrize("kind", KINDS)
def test_eager_logits_match_stock_and_unpatch_restores_them(kind):
    ids = input_ids()
    for dtype in (torch.float32, torch.bfloat16):
        model = build(kind, dtype)
        stock = logits(model, ids)
        keys = list(model.state_dict())
        report = patch(model)
        patched = logits(model, ids)
        assert list(model.state_dict()) == keys  # same parameters under the same names
        if dtype == torch.float32 or NORMS[kind][1] is not Form.LLAMA:
            assert torch.equal(patched, stock)
        else:
            torch.testing.assert_close(patched, stock, **BF16_TOLERANCE)
        assert unpatch(model) == len(report.patched)
        assert torch.equal(logits(model, ids), stock)


# -- single HF norm classes of each form, and some it must leave alone --------------------------

WIDTH = 48


def _weighted(cls):
    module = cls(WIDTH, eps=1e-5)
    with torch.no_grad():
        module.weight.copy_(torch.randn(WIDTH, generator=torch.Generator().manual_seed(3)))
    return module


KNOWN = [
    (lambda: _weighted(LlamaRMSNorm), Form.LLAMA),
    (lambda: _weighted(Gemma3RMSNorm), Form.GEMMA),
    (lambda: _weighted(Olmo2RMSNorm), Form.ONCE),  # (weight * normed).to(dtype)
    (lambda: _weighted(MoshiRMSNorm), Form.ONCE),  # (normed * weight.float()).type_as(x)
    (lambda: NanoChatRMSNorm(eps=1e-5), Form.UNWEIGHTED),
    (lambda: FalconMambaWeightlessRMSNorm(WIDTH, eps=1e-5), Form.UNWEIGHTED),  # dummy weight
]


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("make", "form"), KNOWN)
def test_each_form_is_replaced_by_an_equivalent_ir_norm(make, form, weight_dtype):
    container = torch.nn.ModuleDict({"norm": make()}).to(weight_dtype)
    original = container["norm"]
    x = (torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(4)) * 4).bfloat16()
    with torch.no_grad():
        expected = original(x)
        report = patch(container)
        got = container["norm"](x)
    assert [(p.cls, p.form, p.epsilon) for p in report.patched] == [
        (type(original).__name__, form, 1e-5)
    ]
    assert got.dtype == expected.dtype  # an fp32 weight makes LLAMA's output fp32
    if form is Form.LLAMA:
        # HF rounds the normed input to bf16 (and, with a bf16 weight, the product again);
        # ir-core rounds once, to the output dtype: at most one bf16 ulp (2^-7) apart
        torch.testing.assert_close(got, expected, atol=0, rtol=2**-7)
        exact = original.weight.double() * (
            x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + 1e-5)
        )
        assert (got.double() - exact).abs().sum() < (expected.double() - exact).abs().sum()
    else:
        assert torch.equal(got, expected)
    unpatch(container)
    assert container["norm"] is original


def test_norms_computing_something_else_are_left_alone_with_the_reason():
    container = torch.nn.ModuleDict(
        {"idefics": _weighted(IdeficsRMSNorm), "gated": Qwen3NextRMSNormGated(WIDTH)}
    )
    report = patch(container)
    assert report.patched == []
    reasons = {a.cls: a.reason for a in report.left_alone}
    assert "reproduces none of the known forms" in reasons["IdeficsRMSNorm"]
    assert "gate" in reasons["Qwen3NextRMSNormGated"]
    assert set(report.classes()) == {"IdeficsRMSNorm", "Qwen3NextRMSNormGated"}
    assert "left alone: IdeficsRMSNorm" in str(report)
    assert type(container["idefics"]) is IdeficsRMSNorm
