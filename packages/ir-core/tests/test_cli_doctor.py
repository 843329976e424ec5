"""``ir-core doctor``: the whole picture, as text and JSON (run in-process)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

import ir_core
from ir_core import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_doctor_json_sections(capsys):
    code, out, _ = run(capsys, "doctor", "--json", "--no-blocks")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["problems"] == []
    assert data["versions"]["torch"] == torch.__version__
    status = ir_core.fastpath.status()
    assert data["versions"]["dispatch"] == str(status)  # which hit path, and why
    assert data["versions"]["dispatch_compiled"] is status.active
    assert data["platform"]["name"] == "cpu" and data["platform"]["source"] == "torch"
    assert data["platform"]["devices"][0]["type"] == "cpu"
    plugins = {p["name"]: p for p in data["plugins"]}
    # the installed broken test plugins are reported with their reasons, and are not problems
    assert plugins["broken_import"]["status"] == "quarantined"
    assert "ModuleNotFoundError" in plugins["broken_import"]["reason"]
    assert any("quarantined" in note for note in data["notes"])
    ops = {o["op"]: o for o in data["ops"]}
    assert ops["rms_norm"]["provider"] == "native" and ops["rms_norm"]["priority"][-1] == "native"
    quick = data["quick_check"]
    assert quick["ok"] is True and quick["providers"]["native"]["passed"] > 0
    assert quick["providers"]["example"]["failed"] == 0
    assert "decoder_blocks" not in data


def test_doctor_text_report(capsys):
    code, out, _ = run(capsys, "doctor", "--no-blocks", "--no-check")
    assert code == 0
    for heading in ("platform\n========", "plugins\n=======", "providers\n=========", "verdict"):
        assert heading in out
    assert "cpu  (torch " in out
    assert "broken_hook: register_impls raised RuntimeError" in out
    assert out.rstrip().splitlines()[-1].startswith("OK (doctor took")


def test_a_failing_provider_makes_doctor_exit_1(capsys, plugin):
    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return x.clone()  # not normalized

    def register_impls(registry):
        registry.register_impl("rms_norm", "identity", rms_norm, device_types=("cpu",))

    plugin(register_impls=register_impls)
    code, out, _ = run(capsys, "doctor", "--no-blocks")
    assert code == 1
    assert "PROBLEM: quick check [numerics] rms_norm-identity-cpu" in out
    assert "max error" in out
    assert "PROBLEMS FOUND" in out


TINY_BLOCKS = """
import torch
import ir_core

KINDS = ("tiny",)


class Tiny(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        self.weight = torch.nn.Parameter(torch.ones(hidden), requires_grad=False)

    def forward(self, h):
        residual = h
        h = ir_core.ops.rms_norm(h, self.weight, 1e-6)
        return residual + h

    def example_input(self, tokens, dtype=torch.float32, seed=1):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(tokens, self.hidden, generator=g).to(dtype)


def make_block(kind, layers=2, hidden=64):
    return Tiny(hidden).eval()
"""


@pytest.fixture
def tiny_blocks(tmp_path):
    path = tmp_path / "decoder_blocks.py"
    path.write_text(textwrap.dedent(TINY_BLOCKS))
    return path


def test_decoder_blocks_eager_and_compiled(capsys, tiny_blocks):
    code, out, _ = run(capsys, "doctor", "--json", "--no-check", "--blocks", str(tiny_blocks))
    data = json.loads(out)
    assert code == 0, data["problems"]
    blocks = data["decoder_blocks"]
    (row,) = blocks["rows"]
    assert row["block"] == "tiny" and row["eager_ms"] > 0 and row["compiled_ms"] > 0
    assert row["compile_s"] > 0 and row["max_abs_diff"] < 0.05
    # lowered by ir_core inside plain torch.compile, or served from Inductor's cache
    assert row["lowered"].startswith(("rms_norm: native", "from Inductor's cache"))


def test_decoder_blocks_respect_the_budget_and_a_missing_file(capsys, tiny_blocks, tmp_path):
    code, out, _ = run(
        capsys, "doctor", "--json", "--no-check", "--blocks", str(tiny_blocks), "--budget", "0"
    )
    (row,) = json.loads(out)["decoder_blocks"]["rows"]
    assert code == 0 and row["eager_ms"] > 0 and "compiled_ms" not in row
    assert row["compiled"].startswith("not compiled: doctor's time budget is spent")
    code, out, _ = run(capsys, "doctor", "--no-check", "--blocks", str(tmp_path / "nope.py"))
    assert code == 0 and "skipped: not found:" in out and "nope.py" in out


def test_doctor_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["doctor", "--budget", "-1"])
    assert info.value.code == 2 and "--budget must be >= 0" in capsys.readouterr().err
    assert ir_core.registry.get_op("rms_norm")  # the registry is untouched by doctor


def test_the_blocks_come_from_the_wheel_by_default(capsys):
    code, out, _ = run(capsys, "doctor", "--json", "--no-check", "--budget", "0")
    blocks = json.loads(out)["decoder_blocks"]
    assert code == 0 and blocks["path"] == "ir_core.examples.decoder_blocks"
    assert [r["block"] for r in blocks["rows"]] == ["llama", "gemma", "deepseek_mla", "qwen3_next"]
    assert all(r["eager_ms"] > 0 for r in blocks["rows"])
    assert all("a larger --budget compiles it" in r["compiled"] for r in blocks["rows"])
