"""Cost of ir_core's compile passes (fusions, then lowering) on graphs of 10 to 1000 layers.

Run: ``python benchmarks/lowering.py [--kinds llama deepseek_mla] [--layers 10 100 1000]
[--repeats 1] [--json]``

What is timed: ``fusion_passes().run(gm)`` and ``lower(gm)`` -- exactly what Inductor's
post-grad custom pass runs -- on the post-grad ATen graph of a decoder stack, with a symbolic
token count. Reported: both phases, their total, and the total per layer. The per-layer cost
must stay flat from 10 to 1000 layers: a pass that rescans the graph per match, or retraces the
native impl per node, would show up as a per-layer cost growing with depth.

How the graphs are made: tracing a 1000-layer model through Dynamo and AOTAutograd takes far
longer than the passes (seconds per layer on a small machine), so one decoder layer of
``ir_core.examples.decoder_blocks`` is traced through Dynamo and AOTAutograd (``dynamic=True``, with
Inductor's decompositions: the graph Inductor's post-grad passes receive), and N copies of it
are stitched into one graph through the residual stream, each copy with its own weight
placeholders, as a real N-layer model has. The graph is rebuilt for every repeat (the passes
edit it in place); building it is not timed. Timings are wall-clock medians on whatever
machine runs this.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
import torch.fx

from ir_core.compile.lowering import lower
from ir_core.compile.passes import fusion_passes
from ir_core.examples.decoder_blocks import make_block


def trace_layer(kind: str, hidden: int, tokens: int) -> torch.fx.GraphModule:
    """One decoder layer's forward graph as Inductor's post-grad passes would receive it."""
    from torch._functorch.aot_autograd import aot_module_simplified
    from torch._inductor.decomposition import select_decomp_table

    layer = make_block(kind, layers=1, hidden=hidden).layers[0]
    captured: list[torch.fx.GraphModule] = []

    def forward_compiler(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        captured.append(gm)
        return gm.forward

    def backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        return aot_module_simplified(
            gm, example_inputs, fw_compiler=forward_compiler, decompositions=select_decomp_table()
        )

    torch._dynamo.reset()
    x = torch.randn(tokens, hidden)
    with torch.no_grad():
        torch.compile(layer, backend=backend, dynamic=True, fullgraph=True)(x)
    (gm,) = captured
    return gm


def stitch(layer: torch.fx.GraphModule, layers: int) -> torch.fx.GraphModule:
    """``layers`` copies of ``layer`` chained through its activation input and output.

    Placeholders holding a symbolic size are shared; the activation (the tensor input whose
    first size is symbolic) is the previous copy's output; every other tensor placeholder (a
    weight) is new in each copy.
    """
    graph = torch.fx.Graph()
    placeholders = [n for n in layer.graph.nodes if n.op == "placeholder"]
    shared: dict[torch.fx.Node, torch.fx.Node] = {}
    activation = None
    for ph in placeholders:
        val = ph.meta.get("val")
        if isinstance(val, torch.SymInt):
            shared[ph] = graph.placeholder(ph.name)
            shared[ph].meta = dict(ph.meta)
        elif isinstance(val, torch.Tensor) and isinstance(val.shape[0], torch.SymInt):
            activation = ph
    if activation is None:
        raise RuntimeError("no activation placeholder (a tensor with a symbolic first size)")
    current = graph.placeholder("hidden_states")
    current.meta = dict(activation.meta)
    for i in range(layers):
        env = dict(shared)
        env[activation] = current
        for ph in placeholders:
            if ph not in env:
                env[ph] = graph.placeholder(f"layer{i}_{ph.name}")
                env[ph].meta = dict(ph.meta)
        out = graph.graph_copy(layer.graph, env)
        current = out[0] if isinstance(out, (tuple, list)) else out
    graph.output((current,))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def measure(layer: torch.fx.GraphModule, layers: int, repeats: int) -> dict[str, Any]:
    fusions_s, lowering_s = [], []
    counts: dict[str, int] = {}
    lowered = nodes = 0
    registry = fusion_passes()
    for _ in range(repeats):
        gm = stitch(layer, layers)
        nodes = len(gm.graph.nodes)
        start = time.perf_counter()
        counts = registry.run(gm)
        middle = time.perf_counter()
        result = lower(gm)
        end = time.perf_counter()
        fusions_s.append(middle - start)
        lowering_s.append(end - middle)
        lowered = len(result.lowered)
        if result.unlowered:
            raise RuntimeError(f"un-lowered IR nodes: {result.unlowered}")
    fusion, lowering = statistics.median(fusions_s), statistics.median(lowering_s)
    return {
        "layers": layers,
        "nodes": nodes,
        "fusion_rewrites": counts,
        "ir_nodes_lowered": lowered,
        "fusions_s": fusion,
        "lowering_s": lowering,
        "total_s": fusion + lowering,
        "per_layer_ms": (fusion + lowering) / layers * 1e3,
    }


def _growth(rows: list[dict[str, Any]], key: str) -> float:
    """Per-layer cost at the most layers over per-layer cost at the fewest (1.0 = flat)."""
    first, last = rows[0], rows[-1]
    return (last[key] / last["layers"]) / (first[key] / first["layers"])


def print_table(kind: str, layer_nodes: int, rows: list[dict[str, Any]]) -> None:
    print(f"\n{kind}: one traced layer = {layer_nodes} FX nodes")
    print(
        f"{'layers':>6} {'nodes':>6} {'IR nodes':>8} {'fusions':>9} {'lowering':>9} "
        f"{'total':>9} | per layer: {'fusions':>8} {'lowering':>8} {'total':>8}"
    )
    for r in rows:
        n = r["layers"]
        per_layer = [r["fusions_s"] / n * 1e3, r["lowering_s"] / n * 1e3, r["per_layer_ms"]]
        print(
            f"{n:>6} {r['nodes']:>6} {r['ir_nodes_lowered']:>8} "
            f"{r['fusions_s']:>8.3f}s {r['lowering_s']:>8.3f}s {r['total_s']:>8.3f}s | "
            f"{'':>10}" + " ".join(f"{ms:>6.2f}ms" for ms in per_layer)
        )
    rewrites = ", ".join(f"{k}={v}" for k, v in rows[-1]["fusion_rewrites"].items() if v)
    print(f"rewrites at {rows[-1]['layers']} layers: {rewrites or 'none'}")
    print(
        f"per-layer cost, {rows[-1]['layers']} layers vs {rows[0]['layers']}: "
        f"fusions {_growth(rows, 'fusions_s'):.2f}x, lowering {_growth(rows, 'lowering_s'):.2f}x,"
        f" total {_growth(rows, 'total_s'):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["llama", "deepseek_mla"])
    parser.add_argument("--layers", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results = []
    for kind in args.kinds:
        layer = trace_layer(kind, args.hidden, tokens=8)
        rows = [measure(layer, n, args.repeats) for n in args.layers]
        results.append({"kind": kind, "layer_nodes": len(layer.graph.nodes), "rows": rows})
        if not args.json:
            print_table(kind, len(layer.graph.nodes), rows)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
