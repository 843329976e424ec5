"""``ir-core new-provider``: the scaffold's files, its name rules, and its impl passing the kit
in-process (the pip-installed round trip is in the top-level tests/test_new_provider.py)."""

from __future__ import annotations

import configparser
import importlib
import sys

import pytest
import torch

import ir_core
from ir_core import cli
from ir_core.conformance import run


def test_scaffold_files_and_metadata(tmp_path, capsys):
    code = cli.main(["new-provider", "acme", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    root = tmp_path / "ir-provider-acme"
    assert code == 0 and f"created {root}/" in out and "pytest" in out
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/ir_provider_acme/__init__.py",
        "src/ir_provider_acme/plugin.py",
        "src/ir_provider_acme/rms_norm.py",
        "tests/test_conformance.py",
        "tox.ini",
    ]
    from ir_core.config import tomllib  # the standard library's, or tomli on Python 3.10

    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "ir-provider-acme"
    assert meta["project"]["entry-points"]["ir_core.plugins"] == {"acme": "ir_provider_acme.plugin"}
    assert any(d.startswith("ir-core>=") for d in meta["project"]["dependencies"])
    assert not any(d.startswith("torch") for d in meta["project"]["dependencies"])
    test = (root / "tests" / "test_conformance.py").read_text()
    assert 'PROVIDER = "acme"' in test
    assert '"--pyargs", "ir_core.conformance", "--ir-provider", PROVIDER' in test


def test_scaffold_tox_covers_each_supported_torch(tmp_path):
    assert cli.main(["new-provider", "acme", "--output", str(tmp_path)]) == 0
    tox = configparser.ConfigParser()
    tox.read(tmp_path / "ir-provider-acme" / "tox.ini")
    assert tox["tox"]["env_list"] == "torch2.{6,7,8,9,10,11,12,13}"
    deps = [line.strip() for line in tox["testenv"]["deps"].strip().splitlines()]
    assert deps == [f"torch2.{minor}: torch==2.{minor}.*" for minor in range(6, 14)]
    commands = tox["testenv"]["commands"]
    assert "pytest tests" in commands and "ir-core check --provider acme" in commands
    assert tox["testenv"]["extras"] == "test"


def test_scaffolded_provider_passes_the_kit_in_process(tmp_path, plugin, monkeypatch):
    assert cli.main(["new-provider", "scaffolded", "--output", str(tmp_path)]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "ir-provider-scaffolded" / "src"))
    module = importlib.import_module("ir_provider_scaffolded.plugin")
    try:
        record = ir_core.register_plugin(module, name="scaffolded_test")
        assert record.status == "loaded", record.reason
        report = run(["scaffolded"], checks=["numerics", "mutation", "supports_args", "opcheck"])
        assert report.ok, [r.message for r in report.failures]
        checked = {p.target.dtype for p in report.plans if not p.skip}
        assert checked == {torch.float32, torch.float16, torch.bfloat16}
        # every sample of every dtype is claimed: the template supports the whole op
        assert all(c.claimed for p in report.plans for c in p.cases)
    finally:
        ir_core.unregister_plugin("scaffolded_test")
        for name in [m for m in sys.modules if m.startswith("ir_provider_scaffolded")]:
            del sys.modules[name]


def test_scaffolded_files_are_lint_clean(tmp_path):
    ruff = pytest.importorskip("ruff", reason="ruff is not installed in this environment")
    import subprocess

    cli.main(["new-provider", "a_rather_long_vendor_name", "--output", str(tmp_path)])
    root = tmp_path / "ir-provider-a-rather-long-vendor-name"
    binary = ruff.find_ruff_bin()
    for args in (["check", "--no-cache", "--isolated"], ["format", "--check", "--isolated"]):
        result = subprocess.run([binary, *args, str(root)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "name, words",
    [
        ("Acme", ["must be a lowercase identifier"]),
        ("my-vendor", ["must be a lowercase identifier"]),
        ("class", ["must be a lowercase identifier"]),
        ("native", ["'native' is each op's own semantics"]),
    ],
)
def test_bad_names_exit_2(capsys, tmp_path, name, words):
    with pytest.raises(SystemExit) as info:
        cli.main(["new-provider", name, "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    for word in words:
        assert word in err
    assert not any(tmp_path.iterdir())


def test_an_existing_directory_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "ir-provider-acme").mkdir()
    (tmp_path / "ir-provider-acme" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as info:
        cli.main(["new-provider", "acme", "--output", str(tmp_path)])
    assert info.value.code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "ir-provider-acme" / "keep.txt").read_text() == "mine"
