"""``torch.compile(m, backend="ir_core")``: Inductor with ir_core's passes, explicitly.

Registered through the ``torch_dynamo_backends`` entry point group (see ir-core's
``pyproject.toml``), so Dynamo finds the name without anything being imported first. Plain
``torch.compile(m)`` lowers IR ops too (see :mod:`ir_core.compile.inductor`); this backend is
for when that must not depend on the automatic install -- it is also on when
``IR_CORE_INDUCTOR_PASS=0`` -- and it takes Inductor's ``options`` as ``torch.compile`` passes
them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._inductor import config as inductor_config
from torch._inductor import list_mode_options
from torch._inductor.compile_fx import compile_fx

from .inductor import define_impl_ops, with_graph_pass


def ir_core_backend(
    gm: torch.fx.GraphModule,
    example_inputs: Sequence[Any],
    *,
    mode: str | None = None,
    options: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """Compile ``gm`` with Inductor, running ir_core's fusion and lowering passes post-grad.

    ``mode`` and ``options`` mean what they mean for Inductor (``torch.compile(...,
    mode="max-autotune", options={...})``); a ``post_grad_custom_pre_pass`` among the options
    keeps running, before ours.
    """
    define_impl_ops()
    patches = {**(list_mode_options(mode) if mode else {}), **(options or {})}
    patches["post_grad_custom_pre_pass"] = with_graph_pass(
        patches.get("post_grad_custom_pre_pass", inductor_config.post_grad_custom_pre_pass)
    )
    return compile_fx(gm, example_inputs, config_patches=patches)
