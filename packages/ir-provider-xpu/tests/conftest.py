"""Test setup for ir-provider-xpu: the ``xpu`` marker and the ``ipex`` fixture.

Tests marked ``xpu`` need an Intel GPU and are skipped, with the reason, without one. Tests
that use the ``ipex`` fixture run IPEX's real kernels; they are skipped with the provider's own
reason (e.g. "IPEX 2.8.0 needs torch 2.8.*, found 2.13.0+cpu") where IPEX cannot be used,
or fail with it under ``IR_XPU_REQUIRE_IPEX=1`` (set by ``nox -s ipex``, whose whole point is to
run them).
"""

from __future__ import annotations

import os

import pytest
import torch

from ir_provider_xpu import ipex_norm

HAS_XPU = bool(getattr(torch, "xpu", None) is not None and torch.xpu.is_available())
NO_XPU_REASON = "needs an Intel GPU; torch.xpu.is_available() is False here"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "xpu: needs an Intel GPU (skipped, with the reason, without)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_XPU:
        return
    skip = pytest.mark.skip(reason=NO_XPU_REASON)
    for item in items:
        if "xpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ipex() -> ipex_norm.IpexApi:
    """The loaded IPEX, or skip with the reason it cannot be used here."""
    api, reason = ipex_norm.load()
    if api is None:
        if os.environ.get("IR_XPU_REQUIRE_IPEX") == "1":
            pytest.fail(f"IR_XPU_REQUIRE_IPEX=1 but IPEX is not usable: {reason}")
        pytest.skip(f"IPEX not usable here: {reason}")
    return api
