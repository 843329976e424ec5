"""Skips this folder where transformers is missing; the ``transformers`` nox session runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

pytest.importorskip(
    "transformers", reason="transformers is not installed: run `nox -s transformers`"
)

import torch._dynamo
from torch._functorch import config as functorch_config
from torch._inductor import config as inductor_config


@pytest.fixture
def fresh_compiles() -> Iterator[None]:
    """Compile for real every time (a cache hit runs no pass and makes no report)."""
    torch._dynamo.reset()
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        yield
    torch._dynamo.reset()
