"""FlashInfer as a library: whether this machine can run it, which release it is, and its
modules, each imported on first use.

Every ``flashinfer`` wrapper of this wheel (norms, norm + fp8 quant, gated activations, RoPE,
the all-reduce fusion) was read against the released wheels of flashinfer-python 0.6.12 (the
first with ``weight_bias`` in the all-reduce fusion) and 0.7.4 (the newest when written), and
is tested with their Python layers by ``nox -s vendors``. A release outside that range is
reported unavailable rather than trusted: FlashInfer's Python layers change between minors.
"""

from __future__ import annotations

from types import ModuleType

from ir_core import kit

from . import vendor_release
from .vendor_release import installed, package_problems

PROVIDER = "flashinfer"

#: The releases the wrappers were checked against: >= 0.6.12, < 0.8 (the extra's bound too).
MIN_VERSION = (0, 6, 12)
BELOW_VERSION = (0, 8)
#: From 0.7.1 the gated activations take any even last dim (0.6.12-0.7.0: 16-byte rows).
RELAXED_ACTIVATION_VERSION = (0, 7, 1)

#: FlashInfer's kernels are built for Turing (sm_75) and later.
MIN_CAPABILITY = (7, 5)


def environment_problems(
    min_capability: tuple[int, int] = MIN_CAPABILITY, needs: str = "FlashInfer"
) -> list[str]:
    """What this machine lacks for FlashInfer, found without importing it: the package (in a
    checked release), a CUDA (not ROCm) GPU, and ``min_capability`` (``needs`` says what
    requires it)."""
    problems = package_problems(
        "flashinfer", "flashinfer-python", MIN_VERSION, BELOW_VERSION, "flashinfer"
    )
    return problems + kit.nvidia_gpu_problems("FlashInfer", min_capability, needs=needs)


def relaxed_activations() -> bool:
    """The installed release takes any even last dim in its gated activations (>= 0.7.1)."""
    found = installed("flashinfer-python")
    return found is not None and found >= RELAXED_ACTIVATION_VERSION


def _module(name: str) -> kit.LazyVendor[ModuleType]:
    # No ``problems`` here: the modules import without a GPU, and the tests run FlashInfer's
    # Python layer on CPU tensors; availability (below) asks for the GPU.
    return kit.LazyVendor(PROVIDER, lambda: kit.import_module(name))


#: ``flashinfer.norm``, ``flashinfer.activation``, ``flashinfer.rope``: imported the first
#: time a wrapper using them is found usable.
NORM = _module("flashinfer.norm")
ACTIVATION = _module("flashinfer.activation")
ROPE = _module("flashinfer.rope")


def availability(
    module: kit.LazyVendor[ModuleType],
    min_capability: tuple[int, int] = MIN_CAPABILITY,
    needs: str = "FlashInfer",
) -> tuple[bool, str]:
    """flashinfer-python (a checked release) on a CUDA (not ROCm) GPU of ``min_capability``,
    and ``module`` importable. Every missing condition is named, e.g. ``"flashinfer-python not
    installed (...); no CUDA device"``; the machine is asked on every call, the import once."""
    return vendor_release.availability(environment_problems(min_capability, needs), module)
