"""Stand-ins for a sample's tensors that carry metadata only: FakeTensors, static or symbolic.

``supports_args`` is evaluated by the lowering pass on a graph node's fake values, where the
token dimensions are symbolic. A predicate that reads ``x.shape[0]`` there either returns a
``SymBool`` (which dispatch cannot branch on) or, through ``bool()``, installs a guard that
specializes the compiled graph to one token count. The conformance kit therefore calls every
predicate on arguments built here and counts the guards the predicate added.

Which dimensions are symbolic: every dimension but the last whose size is at least 2 (torch
specializes 0 and 1 itself). The hidden size stays static, as it does in a compiled model, so a
predicate may ask about ``H`` freely; it may not ask about the number of tokens. A stride that
is the product of the later sizes becomes that product of symbols; any other stride (rows of a
wider buffer, e.g. a split of a fused projection) stays the buffer's static row pitch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class FakeCall:
    """Positional arguments of stand-ins, the mode that owns them, and its ShapeEnv (if any)."""

    args: tuple[Any, ...]
    mode: Any
    shape_env: Any = None

    def guards(self) -> list[str]:
        """The guards added to the ShapeEnv so far, as readable expressions."""
        if self.shape_env is None:
            return []
        return [str(g.expr) for g in self.shape_env.guards]


def fake_call(args: tuple[Any, ...]) -> FakeCall:
    """``args`` with every tensor replaced by a FakeTensor of the same metadata (static sizes)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    return FakeCall(
        tuple(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args), mode
    )


def symbolic_call(args: tuple[Any, ...]) -> FakeCall:
    """``args`` with every tensor replaced by a FakeTensor whose token dimensions are symbols.

    Symbols are duck-sized (equal sizes share one symbol), as Dynamo does, so ``x`` and
    ``residual`` of the same shape keep the same token count.
    """
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    shape_env = ShapeEnv()
    mode = FakeTensorMode(shape_env=shape_env)

    def stand_in(t: torch.Tensor, name: str) -> torch.Tensor:
        sizes: list[Any] = []
        for i, size in enumerate(t.shape):
            if i < t.dim() - 1 and size >= 2:
                source = ConstantSource(f"{name}_size{i}")
                symbol = shape_env.create_symbol(size, source, dynamic_dim=DimDynamic.DUCK)
                sizes.append(shape_env.create_symintnode(symbol, hint=size, source=source))
            else:
                sizes.append(size)
        strides = [
            math.prod(sizes[i + 1 :]) if t.stride(i) == math.prod(t.shape[i + 1 :]) else t.stride(i)
            for i in range(t.dim())
        ]
        with mode:
            return torch.empty_strided(sizes, strides, dtype=t.dtype, device=t.device)

    fakes = tuple(
        stand_in(a, f"arg{i}") if isinstance(a, torch.Tensor) else a for i, a in enumerate(args)
    )
    return FakeCall(fakes, mode, shape_env)
