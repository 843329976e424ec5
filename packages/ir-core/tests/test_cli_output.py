"""What every ``ir-core`` command prints fits the terminal, folds repeated reasons into notes,
and carries no warning torch raises about a missing NumPy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import ir_core
from ir_core import cli
from ir_core.cli.format import Notes, table, terminal_width

WIDTH = 100

#: Each command in a form that runs in seconds here.
COMMANDS = [
    ("list-providers",),
    ("list-ops",),
    ("config",),
    ("explain", "rms_norm"),
    ("explain", "fused_add_rms_norm", "--device", "cuda"),
    ("check", "--op", "rms_norm", "--checks", "numerics,mutation", "-q"),
    ("doctor", "--no-check", "--no-blocks", "-q"),
    ("bench", "dual_rms_norm", "--shape", "8,64", "--min-time", "0.01", "-q"),
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a))
def test_every_line_fits_100_columns(capsys, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    code = cli.main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    too_long = [line for line in out.splitlines() if len(line) > WIDTH]
    assert not too_long, "\n".join(too_long)


def test_unavailable_providers_share_numbered_notes(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert cli.main(["list-providers"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if " unavailable [" in line]
    assert rows, out  # this machine has GPU-only providers installed
    for line in rows:
        number = line.split("unavailable [", 1)[1].split("]", 1)[0]
        notes = [n for n in out.splitlines() if n.startswith(f"[{number}] ")]
        assert len(notes) == 1, (number, out)


def test_terminal_width_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "123")
    assert terminal_width() == 123
    monkeypatch.setenv("COLUMNS", "10")  # too narrow to wrap usefully
    assert terminal_width() == 40


def test_table_wraps_its_widest_column_to_the_limit():
    ops = ", ".join(f"op_number_{i}" for i in range(12))
    text = table(
        [("native", "available", ops), ("x", "no", "one")], ("a", "b", "ops"), max_width=50
    )
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 50
    assert len(lines) > 4  # the long cell went onto several lines
    # every op survives the wrapping, in order
    cells = " ".join(line[len("native  available  ") :] for line in lines[2:-1])
    assert cells.split() == ops.split()


def test_a_table_that_fits_is_unchanged():
    assert table([("a", "bb")], ("x", "y"), max_width=100).splitlines() == [
        "x  y",
        "-  --",
        "a  bb",
    ]


def test_notes_number_each_text_once(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    notes = Notes()
    refs = [
        notes.ref("no CUDA device"),
        notes.ref("not installed " * 6),
        notes.ref("no CUDA device"),
    ]
    assert refs == ["[1]", "[2]", "[1]"]
    lines = notes.render()
    assert lines[0] == "[1] no CUDA device"
    assert lines[1].startswith("[2] not installed") and len(lines) > 2
    assert all(len(line) <= 40 for line in lines)
    assert all(line.startswith("    ") for line in lines[2:])  # under the text, not the mark
    assert not Notes()


# -- torch's NumPy warning -------------------------------------------------------------------

#: A numpy that cannot be imported, as on a machine where it is missing.
NO_NUMPY = 'raise ModuleNotFoundError("No module named \'numpy\'", name="numpy")\n'


def _without_numpy(tmp_path, code: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "numpy").mkdir(exist_ok=True)
    (tmp_path / "numpy" / "__init__.py").write_text(NO_NUMPY)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": ""}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_console_script_silences_only_torchs_numpy_warning(tmp_path):
    # torch itself warns without numpy: what the console script must hide
    plain = _without_numpy(tmp_path, "import torch")
    assert "Failed to initialize NumPy" in plain.stderr
    # the console script's main(), --help and a real command: no warning, other warnings shown
    script = _without_numpy(
        tmp_path,
        """
        import sys, warnings
        import _ir_core_cli
        warnings.warn("another warning")
        try:
            _ir_core_cli.main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        sys.exit(_ir_core_cli.main(["explain", "rms_norm"]))
        """,
    )
    assert script.returncode == 0, script.stderr
    assert "NumPy" not in script.stderr
    assert "another warning" in script.stderr
    assert "rms_norm ->" in script.stdout


def test_explain_for_a_device_of_another_platform_says_whose_priority(capsys, monkeypatch):
    monkeypatch.delenv("IR_CORE_PLATFORM", raising=False)
    assert cli.main(["explain", "rms_norm", "--device", "meta", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["priority_of_platform"] == "cpu"
    assert cli.main(["explain", "rms_norm", "--device", "meta"]) == 0
    out = capsys.readouterr().out
    assert "the priority shown is this machine's platform's, cpu, not meta's" in out
    assert cli.main(["explain", "rms_norm"]) == 0  # cpu on cpu: nothing to say
    assert "platform's" not in capsys.readouterr().out


def test_a_trace_table_fits_100_columns(tmp_path, capsys, monkeypatch):
    x, w = torch.randn(3, 64), torch.randn(64)
    with ir_core.trace() as t:
        ir_core.ops.rms_norm(x, w, 1e-6)
        ir_core.ops.fused_add_rms_norm(x, torch.randn(3, 64), w, 1e-6)
    t.save(tmp_path / "t.json")
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert cli.main(["explain", "--trace", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "fused_add_rms_norm" in out
    assert max(len(line) for line in out.splitlines()) <= WIDTH
