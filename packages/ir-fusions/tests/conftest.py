"""Helpers shared by ir-fusions' tests: trace small model-like functions into FX graphs.

Test functions call ``torch.ops.ir_core.*`` directly, which is what a post-grad graph holds
(``ir_core.ops.*`` called under ``make_fx`` would run the native body and trace its aten ops).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx


def _trace(fn: Callable[..., Any], *args: Any, fake: bool = False) -> fx.GraphModule:
    """``fn`` as an ATen FX graph; ``fake=True`` traces without running (no data, no ranks)."""
    return make_fx(fn, tracing_mode="fake" if fake else "real")(*args)


def _ops(gm: fx.GraphModule) -> list[str]:
    """The graph's call targets as short names (``rms_norm``, ``add``, ...), in order."""
    names = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        names.append(getattr(node.target, "_opname", None) or str(node.target))
    return names


@pytest.fixture
def trace() -> Callable[..., fx.GraphModule]:
    return _trace


@pytest.fixture
def ops() -> Callable[[fx.GraphModule], list[str]]:
    return _ops


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "distributed: spawns torch.distributed worker processes (gloo on 127.0.0.1)"
    )
