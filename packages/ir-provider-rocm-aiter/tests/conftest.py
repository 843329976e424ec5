"""Test setup for ir-provider-rocm-aiter: the ``rocm`` marker.

Tests marked ``rocm`` run AITER's real kernels. They are skipped, with the provider's own
reason (e.g. "AITER is not installed ...; torch 2.13.0+cpu is not a ROCm build ..."), wherever
the ``aiter`` provider is unavailable.
"""

from __future__ import annotations

import pytest

from ir_provider_rocm_aiter import aiter_api


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rocm: needs an AMD GPU with AITER installed (skipped, with the reason, without)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if "rocm" in item.keywords]
    if not marked:
        return
    api, reason = aiter_api.load()
    if api is not None:
        return
    skip = pytest.mark.skip(reason=f"aiter provider unavailable here: {reason}")
    for item in marked:
        item.add_marker(skip)
