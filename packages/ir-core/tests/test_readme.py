"""README.md as a newcomer meets it: its first snippet runs with ir-core alone, and every
``ir-core`` flag is in it (and in docs/contract.md)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ir_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
CONTRACT = ROOT / "docs" / "contract.md"

pytestmark = pytest.mark.skipif(
    not README.is_file(), reason="README.md is in the repository, not in an installed ir-core"
)


def _flags() -> dict[str, list[list[str]]]:
    """Every option of every command (its spellings: ``-q``, ``--quiet``), ``-h`` aside."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: [a.option_strings for a in sub._actions if a.option_strings[:1] not in (["-h"], [])]
        for name, sub in commands.choices.items()
    }


@pytest.mark.parametrize("doc", [README, CONTRACT], ids=lambda p: p.name)
def test_every_cli_flag_is_documented(doc):
    text = doc.read_text()
    usage: dict[str, str] = {}  # a command may have several usage lines (explain OP, --trace)
    for line in re.findall(r"^ir-core [a-z-]+ .*(?:\n {4,}\S.*)*", text, re.M):
        command = line.split()[1]
        usage[command] = usage.get(command, "") + "\n" + line
    missing = []
    for command, flags in _flags().items():
        assert command in usage, f"{doc.name} has no usage line for ir-core {command}"
        missing += [
            f"{command} {spellings[-1]}"
            for spellings in flags
            # optional (``[--flag``) or the mode a usage line is about (``ir-core explain --trace``)
            if not any(
                re.search(rf"(\[|^ir-core {command} ){f}\b", usage[command], re.M)
                for f in spellings
            )
        ]
    assert not missing, f"flags missing from {doc.name}'s usage lines: {', '.join(missing)}"


def test_the_first_snippet_runs_with_native_only_and_shows_its_priority(tmp_path):
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IR_CORE_")}
    env["IR_CORE_PLUGINS"] = "no_such_plugin"  # an allow-list no plugin is on: ir-core alone
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("rms_norm -> ") and not first.startswith("rms_norm -> native")
