"""Discovery from installed distributions, in fresh processes as users run it.

The packages under ``tests/plugins/`` are installed into the test environment (``nox -s tests``
does it): a working ``example`` provider and three broken plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BROKEN = {"broken_import", "broken_hook", "broken_signature"}


def ir_core(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IR_CORE_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ir_core.cli", *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IR_CORE_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


@pytest.fixture(scope="module")
def listing() -> dict:
    result = ir_core("list-providers", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = {p["name"] for p in data["plugins"]}
    assert {"example", *BROKEN} <= names, (
        f"test plugins not installed ({sorted(names)}): pip install tests/plugins/*"
    )
    return data


def test_installed_plugin_is_discovered(listing):
    example = next(p for p in listing["plugins"] if p["name"] == "example")
    assert example["status"] == "loaded"
    assert example["distribution"] == "ir-example-plugin" and example["version"] == "0.1.0"
    assert example["providers"] == ["example"]
    provider = next(p for p in listing["providers"] if p["provider"] == "example")
    assert provider["status"] == "available" and provider["ops"] == ["rms_norm"]


@pytest.mark.parametrize(
    "name, reason",
    [
        (
            "broken_import",
            "import failed: ModuleNotFoundError: No module named "
            "'ir_example_missing_native_library'",
        ),
        (
            "broken_hook",
            "register_impls raised RuntimeError: vendor library handle is not initialised",
        ),
        ("broken_signature", "broken_signature impl of rms_norm"),
    ],
)
def test_broken_plugins_are_quarantined_with_reason(listing, name, reason):
    record = next(p for p in listing["plugins"] if p["name"] == name)
    assert record["status"] == "quarantined"
    assert reason in record["reason"]
    assert "Traceback" in record["traceback"]


def test_table_shows_quarantine_and_exits_0():
    result = ir_core("list-providers")
    assert result.returncode == 0, result.stderr
    assert "quarantined" in result.stdout and "broken_hook" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_strict_mode_exits_nonzero():
    result = ir_core("list-providers", IR_CORE_STRICT_PLUGINS="1")
    assert result.returncode == 1
    assert "failed to load" in result.stderr and "IR_CORE_STRICT_PLUGINS=1" in result.stderr


def test_allow_and_deny_lists():
    result = ir_core(
        "list-providers", "--json", IR_CORE_PLUGINS="example", IR_CORE_STRICT_PLUGINS="1"
    )
    assert result.returncode == 0, result.stderr
    status = {p["name"]: p["status"] for p in json.loads(result.stdout)["plugins"]}
    assert status["example"] == "loaded"
    assert {status[n] for n in BROKEN} == {"disabled"}
    result = ir_core("list-providers", "--json", IR_CORE_DISABLE_PLUGINS="example")
    status = {p["name"]: p["status"] for p in json.loads(result.stdout)["plugins"]}
    assert status["example"] == "disabled"


def test_no_load_runs_no_plugin_code():
    # broken_import would fail if its module were imported; --no-load lists it as installed
    result = ir_core("list-providers", "--no-load", "--json", IR_CORE_STRICT_PLUGINS="1")
    assert result.returncode == 0, result.stderr
    names = {p["name"]: p["status"] for p in json.loads(result.stdout)["plugins"]}
    assert names["broken_import"] == "not loaded"


def test_installed_provider_runs_when_prioritised():
    code = """
import torch, ir_core
from ir_example_plugin import plugin
x, w = torch.randn(4, 32), torch.randn(32)
with ir_core.set_priority(rms_norm=["example"]):
    out = ir_core.ops.rms_norm(x, w, 1e-6)
    strided = ir_core.explain("rms_norm", torch.randn(4, 40)[:, :32], w, 1e-6)
torch.testing.assert_close(out, ir_core.get_op("rms_norm").native(x, w, 1e-6))
print(plugin.CALLS["rms_norm"], strided.provider, dict(strided.skipped)["example"])
"""
    result = python(code, IR_CORE_PLUGINS="example")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "1",
        "native",
        "supports_args",
        "declined",
        "these",
        "arguments",
    ]


def test_env_priority_reaches_installed_provider_and_rejects_unknown():
    code = (
        "import torch, ir_core; print(ir_core.explain('rms_norm', torch.randn(2, 8), "
        "torch.randn(8), 1e-6).provider)"
    )
    ok = python(code, IR_CORE_PLUGINS="example", IR_CORE_OP_PRIORITY="rms_norm=example")
    assert ok.stdout.strip() == "example", ok.stderr
    bad = python(code, IR_CORE_PLUGINS="example", IR_CORE_OP_PRIORITY="rms_norm=exampel")
    assert bad.returncode != 0
    assert "unknown provider 'exampel'" in bad.stderr and "example" in bad.stderr


def test_detect_platform_hook_and_platform_priority():
    code = (
        "import ir_core, torch; from ir_core.platform import detect; print(detect()[0]);"
        "print(ir_core.explain('rms_norm', torch.randn(2, 8), torch.randn(8), 1e-6).provider)"
    )
    result = python(code, IR_CORE_PLUGINS="example", IR_EXAMPLE_CLAIM_PLATFORM="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["example-accelerator", "example"]
