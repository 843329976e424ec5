"""The passes ir_core runs on a post-grad graph: fusions first, then lowering."""

from __future__ import annotations

import time

import torch._guards
import torch.fx

from ..priority import guard_key
from .graph import is_ir_node
from .lowering import lower
from .passes import fusion_passes
from .report import CompileReport, publish


def run_passes(gm: torch.fx.GraphModule) -> CompileReport | None:
    """Run the enabled fusion passes, then lower every IR node; publish and return the report.

    Fusions see the graph with its ``torch.ops.ir_core.*`` nodes (fused IR ops they emit are
    lowered like any other); lowering leaves only ATen ops and ``torch.ops.ir_core_impl``
    calls. Both edit ``gm``'s graph in place. A graph without IR nodes (a backward graph, an
    unrelated compile in the same process) is left alone and makes no report. A graph Inductor
    serves from its cache runs no pass; its report comes with it (see :mod:`.report`).
    """
    if not any(is_ir_node(node) for node in gm.graph.nodes):
        return None
    start = time.perf_counter()
    fusions = fusion_passes().run(gm)
    result = lower(gm)
    seconds = time.perf_counter() - start
    report = CompileReport(
        fusions=fusions,
        lowered=result.lowered,
        unlowered=result.unlowered,
        priority_hash=guard_key(),
        seconds=seconds,
        graph=graph_name(),
    )
    publish(report)
    return report


def graph_name() -> str:
    """The graph being compiled, for its report: the function Dynamo traced (its name, file and
    line) and the compile id (``frame/recompile``); ``a graph`` outside Dynamo."""
    context = torch._guards.TracingContext.try_get()
    code = context.traced_code[0] if context is not None and context.traced_code else None
    name = f"{code.co_name} at {code.co_filename}:{code.co_firstlineno}" if code else "a graph"
    compile_id = torch._guards.CompileContext.current_compile_id()
    return f"{name} (compile {compile_id})" if compile_id is not None else name
