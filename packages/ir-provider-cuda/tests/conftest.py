"""Test setup for ir-provider-cuda.

Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter. That is
decided when Triton decorates the kernels and when this plugin registers its impls, so
TRITON_INTERPRET is set here, at conftest import, before either happens.
"""

from __future__ import annotations

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import ir_core  # noqa: E402  (after TRITON_INTERPRET, which plugin registration reads)

#: The device the Triton kernels are tested on: the GPU when there is one, else the CPU
#: through the interpreter.
TRITON_DEVICE = "cuda" if HAS_CUDA else "cpu"

NO_GPU_REASON = "needs a CUDA/ROCm device; torch.cuda.is_available() is False here"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA/ROCm device (skipped without one)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason=NO_GPU_REASON)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def triton_on_device() -> str:
    """The device the Triton impls were registered for here, or skip saying why not."""
    ir_core.load_plugins()
    impl = ir_core.get_op("rms_norm").impls.get("triton")
    if impl is None:
        pytest.skip("the ir-provider-cuda plugin did not register a triton impl (quarantined?)")
    if TRITON_DEVICE not in impl.device_types:
        pytest.skip(
            f"triton impls registered for {sorted(impl.device_types)}, not {TRITON_DEVICE}: "
            "plugins were loaded before TRITON_INTERPRET=1 was set; run with TRITON_INTERPRET=1"
        )
    ok, reason = impl.status()
    if not ok:
        pytest.skip(f"triton provider unavailable: {reason}")
    return TRITON_DEVICE
