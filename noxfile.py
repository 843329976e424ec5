"""Every task a developer or CI runs: ``nox`` (default sessions) or ``nox -s NAME``.

Default sessions: ``tests``, ``lint``, ``wheels``. Others: ``demo`` (the main job: what runs
here and a dispatch demo), ``ipex`` (the XPU provider against real IPEX on its own torch).
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

nox.options.sessions = ["tests", "lint", "wheels"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


def _install_torch(session: nox.Session) -> None:
    session.install("-c", CONSTRAINTS, "torch")


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the cross-package tests, Triton kernels through its interpreter."""
    _install_torch(session)
    session.install("-c", CONSTRAINTS, *TEST_TOOLS)
    # the packages editable, so tests see the working tree; the test plugins as real installs
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, "-e", package)
    session.install("-c", CONSTRAINTS, *TEST_PLUGINS)
    session.run(
        "pytest",
        *(session.posargs or [*glob.glob("packages/*/tests"), "tests"]),
        env={"TRITON_INTERPRET": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


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
    session.run("ir-core", "list-providers", "--json")
    session.run("ir-core", "list-providers")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: what this machine has and what each op runs, then a dispatch demo."""
    _install_torch(session)
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, package)
    session.run("ir-core", "list-providers")
    session.run("python", str(ROOT / "examples" / "dispatch_demo.py"))


@nox.session
def benchmarks(session: nox.Session) -> None:
    """The dispatch-overhead benchmark (add ``-- --json`` for machine-readable output)."""
    _install_torch(session)
    for package in PACKAGES:
        session.install("-c", CONSTRAINTS, package)
    session.run("python", str(ROOT / "benchmarks" / "dispatch.py"), *session.posargs)
