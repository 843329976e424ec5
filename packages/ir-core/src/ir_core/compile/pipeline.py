"""The passes ir_core runs on a post-grad graph: fusions first, then lowering."""

from __future__ import annotations

import time

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
    unrelated compile in the same process) is left alone and makes no report.
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
    )
    publish(report)
    return report
