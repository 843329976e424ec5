"""Hugging Face models patched with ir-core vs stock, both under plain ``torch.compile``.

Run: ``python benchmarks/transformers_models.py [--kinds llama qwen3 gemma3 deepseek_v3]
[--layers 4] [--hidden 512] [--tokens 128] [--dtype bfloat16] [--compiles 2] [--iters 20]
[--json]`` (needs ``transformers``: ``pip install ir-core[transformers]``, or ``nox -s
transformers`` for the tests).

Per model, built from a config with random weights (no hub access), the stock model and a copy
with ``ir_core.integrations.transformers.patch`` applied (same weights) are compiled with
``torch.compile(model, fullgraph=True)``. Reported: the compile time of each (first call, from a
reset Dynamo with Inductor's and AOTAutograd's caches off, ``--compiles`` times, alternating
which goes first; medians) and the compiled forward time of each (``--iters`` calls of one and
then the other, interleaved, after warm-up; medians), and the ratios patched / stock. All
figures come from one process, so the ratios are comparable even on a noisy machine; the
absolute times are whatever this machine gives. Here every IR op lowers to ``native`` (inlined,
so Inductor fuses it like the stock code): the forward ratio shows what the IR costs on CPU,
not a vendor kernel's gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
import torch._dynamo
import transformers
from torch import nn
from torch._functorch import config as functorch_config
from torch._inductor import config as inductor_config

import ir_core
from ir_core.integrations.transformers import patch

KINDS = ("llama", "qwen3", "gemma3", "deepseek_v3")


def config(kind: str, layers: int, hidden: int) -> transformers.PretrainedConfig:
    heads = max(1, hidden // 64)
    common = dict(
        vocab_size=4096,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 4),
        max_position_embeddings=4096,
    )
    if kind == "llama":
        return transformers.LlamaConfig(**common)
    if kind == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=64)
    if kind == "gemma3":
        return transformers.Gemma3TextConfig(**common, head_dim=64)
    if kind == "deepseek_v3":
        return transformers.DeepseekV3Config(
            **{**common, "num_key_value_heads": heads},
            q_lora_rank=hidden // 2,
            kv_lora_rank=hidden // 4,
            qk_rope_head_dim=32,
            qk_nope_head_dim=64,
            v_head_dim=64,
            first_k_dense_replace=layers,  # dense MLPs: MLA is what differs
        )
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


def build(kind: str, layers: int, hidden: int, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config(kind, layers, hidden))
    return model.eval().to(dtype)


def _compile_once(model: nn.Module, ids: torch.Tensor) -> tuple[Any, float]:
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        compiled(ids, use_cache=False)
    return compiled, time.perf_counter() - start


def warm_up() -> None:
    """One throwaway compile: the first compile in a process also pays for loading Inductor."""
    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(nn.Linear(8, 8))(torch.randn(2, 8))


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    dtype = getattr(torch, args.dtype)
    stock = build(kind, args.layers, args.hidden, dtype)
    patched = build(kind, args.layers, args.hidden, dtype)
    report = patch(patched)
    ids = torch.randint(0, 4096, (1, args.tokens), generator=torch.Generator().manual_seed(1))

    compile_s: dict[str, list[float]] = {"stock": [], "patched": []}
    fusions: dict[str, int] = {}
    for i in range(args.compiles):
        order = ("stock", "patched") if i % 2 == 0 else ("patched", "stock")
        for name in order:
            _, seconds = _compile_once(stock if name == "stock" else patched, ids)
            compile_s[name].append(seconds)
            if name == "patched":
                fusions = dict(ir_core.compile_report().fusions)

    # both compiled side by side (Dynamo caches per code object and guards on the module)
    torch._dynamo.reset()
    runs = {
        "stock": torch.compile(stock, fullgraph=True),
        "patched": torch.compile(patched, fullgraph=True),
    }
    forward_s: dict[str, list[float]] = {"stock": [], "patched": []}
    with torch.no_grad():
        for fn in runs.values():
            for _ in range(3):
                fn(ids, use_cache=False)
        for _ in range(args.iters):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn(ids, use_cache=False)
                forward_s[name].append(time.perf_counter() - start)

    median = {k: statistics.median(v) for k, v in compile_s.items()}
    forward = {k: statistics.median(v) for k, v in forward_s.items()}
    return {
        "kind": kind,
        "norms_patched": len(report.patched),
        "left_alone": len(report.left_alone),
        "fusions": fusions,
        "compile_s": median,
        "compile_ratio": median["patched"] / median["stock"],
        "forward_ms": {k: v * 1e3 for k, v in forward.items()},
        "forward_ratio": forward["patched"] / forward["stock"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--compiles", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        warm_up()
        rows = [measure(kind, args) for kind in args.kinds]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"transformers {transformers.__version__}, torch {torch.__version__}, {args.dtype}, "
        f"{args.layers} layers, hidden {args.hidden}, {args.tokens} tokens"
    )
    print(
        f"{'model':<12} {'compile s stock/patched':>24} {'ratio':>6} "
        f"{'forward ms stock/patched':>25} {'ratio':>6}  fusions"
    )
    for r in rows:
        c, f = r["compile_s"], r["forward_ms"]
        fused = ", ".join(f"{k}={v}" for k, v in r["fusions"].items() if v)
        print(
            f"{r['kind']:<12} {c['stock']:>11.2f} / {c['patched']:<10.2f} "
            f"{r['compile_ratio']:>6.2f} {f['stock']:>11.2f} / {f['patched']:<11.2f} "
            f"{r['forward_ratio']:>6.2f}  {fused}"
        )


if __name__ == "__main__":
    main()
