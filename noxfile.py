"""Every task a developer or CI runs: ``nox`` (default sessions) or ``nox -s NAME``.

Default sessions: ``tests``, ``lint``, ``wheels``, ``transformers``. Others: ``demo`` (the main
job: what runs here and a dispatch demo), ``ipex`` (the XPU provider against real IPEX on its own
torch), ``vendors`` (ir-provider-cuda against the real FlashInfer, quack and liger Python layers),
``gpu`` (every GPU test and the GPU benchmarks, on a machine with one), ``torch_newest`` (ir-core
and ir-fusions tests on the newest torch) and ``py310`` (the same on Python 3.10).
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


#: The newest torch release tested beyond the pin (the newest this machine's pip admits), and
#: the oldest Python ir-core supports: the pinned pair is Python 3.11 with torch 2.13.0.
TORCH_NEWEST = "torch==2.14.1"
COMPAT_TESTS = ["packages/ir-core/tests", "packages/ir-fusions/tests"]


def _compat_tests(session: nox.Session, *torch: str) -> None:
    """ir-core's and ir-fusions' tests against every package installed as a user installs it
    (not editable: ir-core's dispatch extension built in this venv, which needs no torch to
    build and binds to torch's stable C shim at run time), on the torch given."""
    session.install(*torch, *TEST_TOOLS)
    session.install(*torch, *PACKAGES, *TEST_PLUGINS)
    # a reused venv tests the working tree: reinstalled, without touching torch
    session.install("--no-deps", "--force-reinstall", *PACKAGES, *TEST_PLUGINS)
    session.run("python", "-m", "pip", "list")
    session.run("python", "-c", WHEEL_CHECK)
    session.run("pytest", *(session.posargs or COMPAT_TESTS))


@nox.session
def torch_newest(session: nox.Session) -> None:
    """ir-core's and ir-fusions' tests, installed as a user installs them, on the newest torch
    (a torch upgrade must not break ``import ir_core``, its compiled hit path or its results).

    On x86_64 PyPI's torch 2.14.1 is a CUDA build (5.5 GB installed; it runs on the CPU):
    1 minute to install from this machine's disk, 6 for the tests on the 2-core dev machine.
    CI runs it.
    """
    _compat_tests(session, TORCH_NEWEST)


@nox.session(python="3.10")
def py310(session: nox.Session) -> None:
    """ir-core's and ir-fusions' tests, installed as a user installs them, on Python 3.10, the
    oldest ir-core supports (the config file is read through ``tomli`` there), with the pinned
    torch: PyPI's CUDA build for 3.10,
    4.7 GB to download, so not in CI. nox needs ``python3.10`` on PATH (with pyenv:
    ``pyenv global 3.11.7 3.10.13``); without it nox skips the session."""
    _compat_tests(session, "-c", CONSTRAINTS)


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


#: The releases ir-provider-cuda's vendor wrappers accept, lowest and newest (its extras'
#: bounds): flashinfer-python, quack-kernels, liger-kernel, and the nvidia-cutlass-dsl that
#: FlashInfer's CuTe-DSL norms and quack compile with (quack <= 0.6.4 pins its own).
VENDOR_RELEASES = {
    "lowest": ("0.6.12", "0.6.2", "0.6.5", "nvidia-cutlass-dsl>=4.5.0"),
    "newest": ("0.7.4", "0.6.5", "0.8.5", "nvidia-cutlass-dsl>=4.8.0"),
}
#: What FlashInfer's Python layer imports on a CPU machine, instead of its declared
#: dependencies (which add the CUDA toolchain wheels, ~2 GB more): cuda-python for
#: flashinfer.comm (0.7.x), cuda-tile and the CUDA runtime library for flashinfer.comm (0.6.12
#: asserts libcudart is loaded), nvidia-cutlass-dsl for its default CuTe-DSL norm path.
FLASHINFER_PYTHON_DEPS = [
    "apache-tvm-ffi>=0.1.11,<0.2",
    "numpy",
    "packaging",
    "einops",
    "tqdm",
    "requests",
    "tabulate",
    "click",
    "nvidia-ml-py",
    "cuda-python",
    "cuda-tile",
    "nvidia-cuda-runtime",
]
CUDA_PROVIDER_TESTS = ROOT / "packages/ir-provider-cuda/tests"


@nox.session
@nox.parametrize("releases", list(VENDOR_RELEASES))
def vendors(session: nox.Session, releases: str) -> None:
    """ir-provider-cuda's vendor tests with the real flashinfer-python, quack-kernels and
    liger-kernel (lowest and newest accepted releases), on CPU: the vendors' own Python layers
    (argument checks, planning, dispatch, quack's compiler) run, only their compiled kernels are
    replaced by CPU implementations (tests/cpu_vendor_kernels.py). torch stays 2.13.0 CPU.

    Measured on the 2-core dev machine with an empty pip cache (torch from a local file): 3 min
    11 s for both releases, new venvs and installs included (pytest itself: 29 s and 12 s);
    the venvs take 2.4 and 3.2 GB. IR_CUDA_REQUIRE_VENDORS=1 turns "vendor not installed" skips
    into failures.
    """
    flashinfer, quack, liger, cutlass = VENDOR_RELEASES[releases]
    _install_torch(session)
    session.install("-c", CONSTRAINTS, *TEST_TOOLS, "triton")
    session.install("--no-deps", f"flashinfer-python=={flashinfer}")
    session.install(
        "-c",
        CONSTRAINTS,
        *FLASHINFER_PYTHON_DEPS,
        cutlass,
        f"quack-kernels=={quack}",
        f"liger-kernel=={liger}",
    )
    for package in ("ir-core", "ir-fusions", "ir-provider-cuda"):
        session.install("-c", CONSTRAINTS, "-e", str(ROOT / "packages" / package))
    session.run("python", "-m", "pip", "list")
    tests = ["test_vendor_flashinfer.py", "test_vendor_quack.py", "test_vendor_liger.py"]
    tests += ["test_vendor_supports.py", "test_flashinfer_allreduce.py", "test_plugin.py"]
    session.run(
        "pytest",
        *(session.posargs or [str(CUDA_PROVIDER_TESTS / t) for t in tests]),
        "-W",
        "ignore::DeprecationWarning",  # CUTLASS DSL's own, at import
        env={"IR_CUDA_REQUIRE_VENDORS": "1"},
    )
    session.run("ir-core", "list-providers")


def _nvidia_gpu_present() -> bool:
    """An NVIDIA GPU driver answers here (checked before installing GBs of CUDA wheels)."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, text=True).returncode == 0


@nox.session
def gpu(session: nox.Session) -> None:
    """On an NVIDIA GPU machine: every GPU-marked test of every package, then the bandwidth of
    every implementation of the norms and decoder-layer ops, in one JSON file
    (``benchmarks/gpu_report.py``; ``-- --output PATH``, ``-- --budget-s S``). Designed to
    finish in at most 8 minutes on one H100/H200 after the install (CUDA torch 2.13.0 from
    PyPI and the vendors: flashinfer-python, quack-kernels, liger-kernel, several GB).

    Fails at once, installing nothing, without an NVIDIA GPU. On ROCm, or a machine without
    network access, run ``python benchmarks/gpu_report.py`` in an environment that has a GPU
    build of torch and the packages installed.
    """
    if not _nvidia_gpu_present():
        session.error(
            "nox -s gpu needs an NVIDIA GPU (nvidia-smi -L found none here); nothing was "
            "installed or run (on ROCm, run benchmarks/gpu_report.py directly)"
        )
    _install_torch(session)
    session.install("-c", CONSTRAINTS, *TEST_TOOLS)
    for package in PACKAGES:
        extras = "[flashinfer,quack,liger]" if package.endswith("ir-provider-cuda") else ""
        session.install("-c", CONSTRAINTS, "-e", package + extras)
    session.install("-c", CONSTRAINTS, *TEST_PLUGINS)
    session.run("python", str(ROOT / "benchmarks" / "gpu_report.py"), *session.posargs)
