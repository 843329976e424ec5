"""``ir-core new-provider`` end to end: scaffold a provider, pip-install it, run its tests.

The package is installed with ``pip install --target`` into a temporary directory put on
``PYTHONPATH`` (entry points are found there like in site-packages), so the test environment
itself is never changed. Its own test runs the conformance kit
(``pytest --pyargs ir_core.conformance --ir-provider NAME``), which must pass as scaffolded.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

PROVIDER = "scaffold_e2e"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IR_CORE_", "PYTEST_"))}
    env.update(extra)
    return env


def test_scaffolded_provider_installs_and_passes_the_kit(tmp_path):
    created = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "new-provider", PROVIDER, "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    package = tmp_path / "ir-provider-scaffold-e2e"
    site = tmp_path / "site"
    # hatchling from this environment when it has one (no network); else pip fetches it
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation,
         "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )  # fmt: skip
    if installed.returncode != 0 and "No matching distribution found for hatchling" in (
        installed.stderr
    ):
        pytest.skip("hatchling is not installed and the package index cannot be reached")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (site / "ir_provider_scaffold_e2e" / "plugin.py").is_file()

    env = _env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    listed = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert f'"provider": "{PROVIDER}"' in listed.stdout

    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=package,
        timeout=600,
    )
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]
    assert "2 passed" in tested.stdout
