"""benchmarks/gpu_report.py (``nox -s gpu``) off a GPU: it must refuse to run, never pass, and
its test summary must read pytest's JUnit XML right."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_report.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without GPU")
def test_refuses_to_run_without_a_gpu(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "needs an NVIDIA or AMD GPU" in done.stderr and "Nothing was run" in done.stderr
    assert not out.exists()


def test_junit_summary(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "@pytest.mark.skip(reason='no device')\n"
        "def test_skipped(): pass\n"
    )
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
         str(tmp_path / "test_sample.py")],
        capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    summary = _module().summarize_junit(junit)
    assert summary["counts"] == {"passed": 1, "failed": 1, "errors": 0, "skipped": 1}
    assert summary["failures"][0]["test"].endswith("::test_bad")
    assert summary["skips"][0]["reason"] == "no device"


def test_grid_covers_norms_and_layer_ops() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        grid = _module().benchmark_grid()
    finally:
        sys.path.remove(str(SCRIPT.parent))
    ops = {op for op, *_ in grid}
    assert {"rms_norm", "fused_add_rms_norm", "silu_and_mul", "rotary_embedding"} <= ops
    assert len(grid) <= 80  # bounded: the whole run must fit 8 minutes on one H100/H200
