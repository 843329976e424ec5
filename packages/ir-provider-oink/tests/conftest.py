"""Test setup for ir-provider-oink: the ``gpu`` marker.

Tests marked ``gpu`` run Oink's real kernels; they are skipped, with the provider's own reason
(e.g. "SM100 missing: cuda:0 (NVIDIA H100 80GB HBM3) has compute capability 9.0 ..."), wherever
the ``oink`` provider is unavailable.
"""

from __future__ import annotations

import pytest

from ir_provider_oink import oink_norm


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a Blackwell GPU with kernelagent-oink (skipped, with the reason)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if "gpu" in item.keywords and "oink" in str(item.fspath)]
    if not marked:
        return
    ok, reason = oink_norm.available_rms_norm()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"oink provider unavailable here: {reason}")
    for item in marked:
        item.add_marker(skip)
