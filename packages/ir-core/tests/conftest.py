"""Fixtures shared by ir-core's own tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import ir_core
from ir_core import dispatch, fastpath

_names = itertools.count()


@pytest.fixture
def plugin() -> Iterator[Any]:
    """Register plugin objects for one test: ``plugin(register_impls=fn, ...)`` -> record."""
    registered: list[str] = []

    def register(name: str | None = None, **hooks: Any) -> ir_core.plugins.PluginRecord:
        name = name or f"test_plugin_{next(_names)}"
        obj = SimpleNamespace(**{k: ir_core.hookimpl(v) for k, v in hooks.items()})
        registered.append(name)
        return ir_core.register_plugin(obj, name=name)

    yield register
    for name in registered:
        ir_core.unregister_plugin(name)
    ir_core.configure()


@pytest.fixture(params=["compiled", "python"])
def hit_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on both eager hit paths (the compiled extension and the pure-Python one),
    each starting with no remembered decision: both must decide exactly alike."""
    if request.param == "compiled" and not fastpath.status().active:
        pytest.skip(f"the compiled hit path is off here: {fastpath.status().reason}")
    dispatch._use_compiled(request.param == "compiled")
    yield request.param
    dispatch._use_compiled(fastpath.status().active)


@pytest.fixture(autouse=True)
def _clean_priority_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set priorities explicitly; an inherited environment must not leak in."""
    names = ("IR_CORE_OP_PRIORITY", "IR_CORE_PLATFORM", "IR_CORE_STRICT_PLUGINS")
    for var in (*names, "IR_CORE_REFERENCE", "IR_CORE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
