"""Every task a developer or CI runs: ``nox`` (default sessions) or ``nox -s NAME``.

Default sessions: ``tests``, ``lint``, ``wheels``, ``transformers``. Others: ``demo`` (the main
job: what runs here and a dispatch demo), ``ipex`` (the XPU provider against real IPEX on its own
torch).
torch is pinned by ``constraints.txt`` for development and CI only, never in package metadata.
"""

from __future__ import annotations

import glob
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
PACKAGES = sorted(str(p.parent) for p in ROOT.glob("packages/*/pyproject.toml"))
TEST_PLUGINS = sorted(str(p.parent) for p in ROOT.glob("tests/plugins/*/pyproject.toml"))
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "numpy"]
#: The newest transformers release tested (patch releases admitted); installed with torch pinned
#: by constraints.txt, so it never brings another torch. Its tests run in their own session.
TRANSFORMERS = "transformers>=5.24,<5.25"
HF_TESTS = "tests/huggingface"

nox.options.sessions = ["tests", "lint", "wheels", "transformers"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


def _install_torch(session: nox.Session) -> None:
    session.install("-c", CONSTRAINTS, "torch")


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the cross-package tests (Triton through its interpreter on CPU),
    but those of HF models (the ``transformers`` session)."""
    _install_torch(session)
    session.install("-c", CONSTRAINTS, *TEST_TOOLS)
    # the packages editable, so tests see the working tree; the test plugins as real installs
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, "-e", package)
    session.install("-c", CONSTRAINTS, *TEST_PLUGINS)
    # TRITON_INTERPRET=1 is set by ir-provider-cuda's conftest only where no GPU is present,
    # so a GPU runner tests the compiled kernels
    default = [*sorted(glob.glob("packages/*/tests")), "tests", f"--ignore={HF_TESTS}"]
    session.run("pytest", *(session.posargs or default))


@nox.session
def transformers(session: nox.Session) -> None:
    """``ir_core.integrations.transformers`` and the fusion passes on tiny HF models built from
    configs (Llama, Qwen3, Gemma3, DeepSeek-V3; no hub access): patch/unpatch, eager numerics,
    fusion counts and numerics under ``torch.compile``. A default session: on the 2-core dev
    machine it takes 3.3 minutes from a cold venv (2 of them installing torch and
    transformers), 1.5 minutes reused."""
    _install_torch(session)
    session.install("-c", CONSTRAINTS, "pytest>=8", TRANSFORMERS)
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, "-e", package)
    session.run("pytest", *(session.posargs or [HF_TESTS]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting) and import-linter (ir-core's layers, see ``.importlinter``)."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the sources only: ir-core (and torch) need not be installed
    session.run(
        "lint-imports", "--no-cache", env={"PYTHONPATH": str(ROOT / "packages/ir-core/src")}
    )


WHEEL_CHECK = (
    "import ir_core, ir_core.fastpath as f; s = f.status(); print('eager dispatch:', s); "
    "assert s.active, s"
)


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every package's wheel, install them (not editable) in a fresh env, list providers."""
    out = ROOT / "dist"
    out.mkdir(exist_ok=True)
    for stale in out.glob("*.whl"):
        stale.unlink()
    session.install("build")
    for package in PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(out), package)
    built = sorted(str(p) for p in out.glob("*.whl"))
    session.log("built: " + ", ".join(Path(p).name for p in built))
    _install_torch(session)
    session.install("-c", CONSTRAINTS, *built)
    # ir-core's wheel carries its compiled dispatch extension, and it loads on this torch
    session.run("python", "-c", WHEEL_CHECK)
    session.run("ir-core", "list-providers", "--json")
    session.run("ir-core", "list-providers")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job, ``ir-core doctor`` (platform, plugins, what each op runs, a quick check,
    the example decoder blocks eager vs compiled), then a dispatch demo."""
    _install_torch(session)
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, package)
    session.run("ir-core", "doctor")
    session.run("python", str(ROOT / "examples" / "dispatch_demo.py"))


@nox.session
def benchmarks(session: nox.Session) -> None:
    """The dispatch-overhead benchmark (add ``-- --json`` for machine-readable output)."""
    _install_torch(session)
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, package)
    session.run("python", str(ROOT / "benchmarks" / "dispatch.py"), *session.posargs)


#: IPEX X.Y runs only on torch X.Y.*, and 2.8 is IPEX's last release (it is archived upstream).
IPEX_PINS = ["torch==2.8.*", "intel-extension-for-pytorch==2.8.*"]


@nox.session
def ipex(session: nox.Session) -> None:
    """ir-provider-xpu's tests with IPEX's real CPU kernels, in a venv of torch 2.8 + IPEX 2.8.

    PyPI has no CPU-only torch 2.8 for Linux x86_64 (the CPU wheel index is not reachable from
    here or CI), so this installs PyPI's torch 2.8 with its CUDA libraries: 3.7 GB to download,
    6.6 GB installed. Measured on the 2-core dev machine: 7 minutes for the whole session on a
    cold pip cache (6 of them installing), 1.5 minutes when the venv is reused. IPEX's CPU build
    imports and runs on that torch without a GPU. IR_XPU_REQUIRE_IPEX=1 turns the IPEX tests'
    "skipped: IPEX not usable" into a failure, so this session cannot pass without running IPEX.
    """
    local = [str(ROOT / "packages/ir-core"), str(ROOT / "packages/ir-provider-xpu")]
    session.install(*IPEX_PINS, "pytest>=8")
    # not editable; torch pinned again so that resolving ir-core's deps keeps torch 2.8, then
    # reinstalled without deps so that a reused venv always tests the working tree
    session.install(IPEX_PINS[0], *local)
    session.install("--no-deps", "--force-reinstall", *local)
    session.run("python", "-m", "pip", "list")
    session.run(
        "pytest",
        *(session.posargs or [str(ROOT / "packages/ir-provider-xpu/tests")]),
        env={"IR_XPU_REQUIRE_IPEX": "1"},
    )
    # the conformance kit on torch 2.8: ir-core's lowering and checks hold on the oldest torch line
    session.run("ir-core", "check", "--provider", "ipex")
