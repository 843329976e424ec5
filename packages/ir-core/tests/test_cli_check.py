"""``ir-core check``: the conformance kit from the command line (run in-process)."""

from __future__ import annotations

import io
import json

import pytest
import torch

import ir_core
from ir_core import cli
from ir_core.progress import Progress


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def shifted(plugin):
    """A provider whose rms_norm is off by 0.25 everywhere."""

    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        native = ir_core.get_op("rms_norm").native
        return native(x, weight, epsilon, weight_bias, variance_size) + 0.25

    def register_impls(registry):
        registry.register_impl("rms_norm", "shifted", rms_norm, device_types=("cpu",))

    plugin(register_impls=register_impls)
    return "shifted"


def test_check_passes_for_native_with_a_table(capsys):
    code, out, err = run(capsys, "check", "--provider", "native", "--checks", "numerics,mutation")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[:5] == ["op", "provider", "device", "dtype", "samples"]
    assert "numerics" in header and "mutation" in header and "opcheck" not in header
    rows = [line.split() for line in out.splitlines() if line.startswith("rms_norm ")]
    assert {r[3] for r in rows} == {"float32", "float16", "bfloat16"}
    assert all(r[-1] == "passed" for r in rows)
    assert out.rstrip().splitlines()[-1].startswith("OK: ")
    # stderr is not a terminal here: plain progress lines, no carriage returns
    assert "\r" not in err and "ok   rms_norm-native-cpu-float32" in err


def test_check_json(capsys):
    code, out, _ = run(
        capsys, "check", "--provider", "native", "--op", "rms_norm", "--dtype", "fp32",
        "--checks", "numerics", "--json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["providers"] == ["native"]
    samples = ir_core.get_op("rms_norm").sample_inputs(torch.float32)
    assert data["counts"] == {"passed": len(samples), "failed": 0, "skipped": 0}
    assert {r["check"] for r in data["results"]} == {"numerics"}
    assert [t["status"] for t in data["targets"]] == ["passed"]


def test_check_fails_with_exit_1_and_the_reason(capsys, shifted):
    code, out, _ = run(
        capsys, "check", "--provider", shifted, "--dtype", "bf16", "--checks", "numerics"
    )
    assert code == 1
    assert "FAIL" in out and "failures:" in out
    # each failure is one entry, its continuation lines wrapped under it
    entries = "\n".join(out.splitlines()).replace("\n    ", " ").splitlines()
    failure = next(line for line in entries if "[numerics]" in line and "[3d]" in line)
    assert "max error 0.25" in failure and "tolerance atol=0.001 rtol=0.016" in failure
    assert out.rstrip().splitlines()[-1].startswith("FAILED: ")
    code, out, _ = run(capsys, "check", "--provider", shifted, "--checks", "numerics", "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["counts"]["failed"] > 0


def test_unrunnable_providers_are_listed_not_failed(capsys):
    code, out, _ = run(capsys, "check", "--provider", "flashinfer", "--checks", "numerics")
    assert code == 0
    assert "nothing was checked" in out
    assert "flashinfer: unavailable:" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["check", "--provider", "nosuch"], ["unknown provider 'nosuch'", "known providers"]),
        (["check", "--op", "layer_norm"], ["unknown op 'layer_norm'"]),
        (["check", "--dtype", "int8"], ["--dtype", "unknown dtype 'int8'"]),
        (["check", "--checks", "speed"], ["unknown check 'speed'"]),
    ],
)
def test_check_usage_errors_exit_2(capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    for word in words:
        assert word in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere():
    tty = _Terminal()
    bar = Progress(stream=tty)
    bar.add_total(4)
    bar.step("first")
    bar.note("a milestone")
    bar.step("second")
    bar.close()
    text = tty.getvalue()
    assert "\r[######------------------] 1/4" in text and "first" in text
    assert "a milestone\n" in text and "2/4" in text
    assert text.endswith("\r")  # the bar is erased at the end

    plain = io.StringIO()
    lines = Progress(stream=plain)
    lines.add_total(2)
    lines.step("first")
    lines.note("a milestone")
    lines.close()
    assert plain.getvalue() == "a milestone\n"

    silent = io.StringIO()
    Progress(stream=silent, enabled=False).note("nothing")
    assert silent.getvalue() == ""


def test_check_defaults_to_the_fast_checks_and_full_runs_them_all(capsys, monkeypatch):
    code, out, _ = run(capsys, "check", "--provider", "native", "--op", "rms_norm", "--json")
    assert code == 0 and json.loads(out)["checks"] == ["numerics", "mutation", "supports_args"]
    code, out, _ = run(capsys, "check", "--provider", "native", "--op", "rms_norm")
    assert code == 0 and "not run: capabilities, opcheck, compile (ir-core check --full" in out
    asked = {}

    def fake_run(providers, **kwargs):
        asked.update(kwargs)
        raise KeyError("stop here: only the arguments matter")

    monkeypatch.setattr(ir_core.conformance, "run", fake_run)
    with pytest.raises(SystemExit):
        cli.main(["check", "--full"])
    assert asked["checks"] is None and asked["quick"] is False  # the runner's every check
    capsys.readouterr()


def test_full_is_not_combined_with_a_subset(capsys):
    for extra in (["--quick"], ["--checks", "numerics"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["check", "--full", *extra])
        assert info.value.code == 2
        assert "--full runs every check" in capsys.readouterr().err
