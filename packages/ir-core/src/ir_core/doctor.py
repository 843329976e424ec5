"""``ir-core doctor``: the whole picture of this machine, in one report.

1. the platform and how it was detected; torch and the devices it sees;
2. the plugins (loaded, disabled, quarantined with the reason) and their providers;
3. what each op resolves to here, and why the providers before it were skipped;
4. a quick conformance check of every provider that can run here (a few samples per target,
   numerics, input mutation and supports_args: the checks that cost milliseconds);
5. the example decoder blocks, eager and compiled, with timings (when the example is found).

Each section is collected into plain data first, so ``--json`` and the text report agree. A
section that fails to collect is reported as a problem, never a crash: doctor is what one runs
when something is wrong.
"""

from __future__ import annotations

import importlib.util
import os
import platform as pyplatform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .progress import Progress

BLOCKS_RELATIVE = Path("examples") / "decoder_blocks.py"


#: Seconds after which doctor starts no further torch.compile (its one slow part).
DEFAULT_BUDGET_S = 30.0


def collect(
    *,
    quick_check: bool = True,
    blocks: bool = True,
    blocks_path: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every section's data, plus ``problems`` (strings) and ``ok``.

    ``budget_s``: no compile of a decoder block starts after this many seconds of doctor.
    """
    progress = progress or Progress(enabled=False)
    started = time.perf_counter()
    report: dict[str, Any] = {"problems": [], "notes": []}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("versions", _versions),
        ("platform", _platform),
        ("plugins", _plugins),
        ("providers", _providers),
        ("ops", _ops),
    ]
    if quick_check:
        steps.append(("quick_check", lambda: _quick_check(progress)))
    if blocks:
        deadline = started + budget_s
        steps.append(("decoder_blocks", lambda: _decoder_blocks(blocks_path, progress, deadline)))
    progress.add_total(len(steps))
    for name, fn in steps:
        progress.step(name)
        section_started = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # a broken section is a finding, not a crash
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            report["problems"].append(
                f"{name}: could not be collected: {type(exc).__name__}: {exc}"
            )
            report.setdefault("tracebacks", {})[name] = traceback.format_exc()
        progress.note(f"  {name} ({time.perf_counter() - section_started:.1f}s)")
    progress.close()
    _judge(report)
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["ok"] = not report["problems"]
    return report


# -- sections --------------------------------------------------------------------------------


def _versions() -> dict[str, Any]:
    import ir_core

    return {
        "ir_core": ir_core.__version__,
        "op_api": ir_core.__op_api__,
        "plugin_api": ir_core.API_VERSION,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "os": f"{pyplatform.system()} {pyplatform.machine()}",
    }


def _platform() -> dict[str, Any]:
    from .discovery import load_plugins
    from .platform import ENV_PLATFORM, detect

    # Plugins first: loading them resets the detected platform, so detecting before they are
    # loaded returns nothing on a process's first call.
    load_plugins()
    name, source = detect()
    devices = [
        {
            "type": "cpu",
            "name": pyplatform.processor() or pyplatform.machine(),
            "threads": torch.get_num_threads(),
        }
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            arch = getattr(props, "gcnArchName", None) or f"sm_{props.major}{props.minor}"
            devices.append({"type": "cuda", "index": i, "name": props.name, "arch": arch})
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        devices += [
            {"type": "xpu", "index": i, "name": xpu.get_device_name(i)}
            for i in range(xpu.device_count())
        ]
    if source == "torch":
        hip = getattr(torch.version, "hip", None)
        how = (
            f"torch {torch.__version__}: cuda available={torch.cuda.is_available()}"
            f"{f' (ROCm {hip})' if hip else ''}, "
            f"xpu available={bool(xpu is not None and xpu.is_available())}; no plugin's "
            "detect_platform hook claimed the machine"
        )
    elif source == ENV_PLATFORM:
        how = f"set by {ENV_PLATFORM}={os.environ.get(ENV_PLATFORM)}"
    else:
        how = source
    return {"name": name, "source": source, "how": how, "devices": devices}


def _plugins() -> list[dict[str, Any]]:
    from . import discovery

    rows = []
    for record in discovery.records():
        data = record.to_dict()
        data.pop("traceback", None)
        rows.append(data)
    return rows


def _providers() -> list[dict[str, Any]]:
    from .cli import provider_rows

    return provider_rows()


def _ops() -> list[dict[str, Any]]:
    """What each op runs here for a representative bf16 call on the platform's device."""
    import ir_core

    from .cli import _device_usable, _platform_device
    from .dispatch import explain
    from .platform import current_platform
    from .priority import resolve

    device = torch.device(_platform_device(current_platform()))
    stand_in = not _device_usable(device)
    rows = []
    for op in sorted(ir_core.registry.ops(), key=lambda o: o.name):
        row: dict[str, Any] = {
            "op": op.name,
            "priority": list(resolve(op.name)),
            "device": str(device),
            "dtype": "bfloat16",
        }
        try:
            sample = op.example_inputs(8, 4096, torch.bfloat16, "meta" if stand_in else device)
            result = explain(op, *sample.args, device_type=device.type, **sample.kwargs)
            row["provider"] = result.provider
            row["skipped"] = [{"provider": p, "reason": r} for p, r in result.skipped]
        except NotImplementedError:
            row["provider"], row["skipped"] = None, []
            row["note"] = "the op declares no example inputs"
        rows.append(row)
    return rows


def _quick_check(progress: Progress) -> dict[str, Any]:
    from .conformance import run, runnable_providers

    providers = runnable_providers()
    report = run(providers, quick=True, progress=progress)
    per_provider: dict[str, dict[str, Any]] = {}
    for p in report.plans:
        entry = per_provider.setdefault(
            p.target.provider,
            {"passed": 0, "failed": 0, "skipped": 0, "targets": 0, "not_checked": []},
        )
        if p.skip:
            entry["not_checked"].append(f"{p.target.id}: {p.skip}")
        else:
            entry["targets"] += 1
    for r in report.results:
        per_provider[r.target.provider][r.outcome] += 1
    return {
        "checks": list(report.checks),
        "providers": per_provider,
        "failures": [r.to_dict() for r in report.failures],
        "seconds": round(report.seconds, 2),
        "ok": report.ok,
    }


# -- decoder blocks --------------------------------------------------------------------------


def find_blocks(explicit: str | None) -> Path | None:
    """``examples/decoder_blocks.py``: the given path, else from the working directory up,
    else next to the ir-core source tree (an editable install or a checkout)."""
    if explicit:
        return Path(explicit)
    candidates = [base / BLOCKS_RELATIVE for base in (Path.cwd(), *Path.cwd().parents)]
    here = Path(__file__).resolve()
    candidates += [base / BLOCKS_RELATIVE for base in here.parents]
    return next((c for c in candidates if c.is_file()), None)


def _load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("ir_core_doctor_decoder_blocks", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


#: The blocks doctor builds: small, so that compiling all three fits the time budget.
BLOCK_LAYERS, BLOCK_HIDDEN, BLOCK_TOKENS = 1, 128, 16
#: Compiled vs eager in bf16 through a whole layer: roundings differ (Inductor fuses and keeps
#: fp32 intermediates), so the check is loose; a broken lowering is far outside it.
BLOCK_ATOL = BLOCK_RTOL = 5e-2


def _best_seconds(fn: Callable[[], Any], runs: int = 5) -> float:
    """The fastest of ``runs`` calls after a warm-up: on a shared machine the slower calls
    measure the neighbours."""
    fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the blocks on one CPU thread, compiled and eager alike.

    They are tiny: with several threads each op mostly times its thread synchronization, and
    on a shared machine a barrier waits for a busy core's time slice (a 1 ms block then reads
    80 ms). The compile happens under the same setting because Dynamo guards on the thread
    count: changing it between compiling and timing would compile everything twice.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@_one_thread()
def _decoder_blocks(explicit: str | None, progress: Progress, deadline: float) -> dict[str, Any]:
    """Each block family eager, then under plain ``torch.compile`` (ir_core lowers its IR ops
    inside Inductor): timings, what each IR op was lowered to, and compiled vs eager.

    A compile is started only before ``deadline`` (a ``perf_counter`` value): a cold first
    compile costs tens of seconds on a small CPU; the rest are reported as not compiled.
    """
    path = find_blocks(explicit)
    if path is None or not path.is_file():
        where = explicit or f"{BLOCKS_RELATIVE} (from {Path.cwd()} or the ir-core source tree)"
        return {"skipped": f"not found: {where}; pass --blocks PATH"}
    module = _load_module(path)
    try:
        from .compile import compile_report
    except ImportError:
        compile_report = None  # an ir-core without the compile package: eager only
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    notes: list[str] = [
        f"{BLOCK_LAYERS} layer, hidden {BLOCK_HIDDEN}, {BLOCK_TOKENS} tokens, bfloat16; "
        "fastest of 5 calls after a warm-up, on one CPU thread"
    ]
    first_compile = True
    for kind in module.KINDS:
        progress.step(f"decoder block {kind}")
        block = module.make_block(kind, layers=BLOCK_LAYERS, hidden=BLOCK_HIDDEN)
        x = block.example_input(BLOCK_TOKENS, torch.bfloat16)
        row: dict[str, Any] = {"block": kind}
        rows.append(row)
        with torch.no_grad():
            expected = block(x)
            row["eager_ms"] = round(_best_seconds(lambda b=block, x=x: b(x)) * 1e3, 3)
            if compile_report is None:
                row["compiled"] = "ir_core.compile is not installed"
                continue
            if time.perf_counter() > deadline:
                row["compiled"] = "not compiled: doctor's time budget is spent (--budget)"
                continue
            compiled = torch.compile(block)
            before = compile_report()
            t0 = time.perf_counter()
            try:
                out = compiled(x)
            except Exception as exc:
                row["compiled"] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
                problems.append(f"{kind}: torch.compile failed: {type(exc).__name__}: {exc}")
                continue
            row["compile_s"] = round(time.perf_counter() - t0, 2)
            if first_compile:
                notes.append(
                    f"the first compile ({kind}, {row['compile_s']}s) includes Inductor's "
                    "start-up; compiled graphs are cached on disk, so later runs are faster"
                )
                first_compile = False
            row["compiled_ms"] = round(_best_seconds(lambda c=compiled, x=x: c(x)) * 1e3, 3)
        row["speedup"] = (
            round(row["eager_ms"] / row["compiled_ms"], 2) if row["compiled_ms"] else None
        )
        row["max_abs_diff"] = float((out.float() - expected.float()).abs().max())
        if not torch.allclose(out.float(), expected.float(), atol=BLOCK_ATOL, rtol=BLOCK_RTOL):
            problems.append(
                f"{kind}: compiled output differs from eager by up to {row['max_abs_diff']:.3g} "
                f"(allowed atol={BLOCK_ATOL} rtol={BLOCK_RTOL})"
            )
        report = compile_report()
        if report is None or report is before:
            row["lowered"] = "from Inductor's cache (no pass ran in this process)"
        else:
            row["lowered"] = "; ".join(
                f"{op}: " + ", ".join(f"{p}*{n}" for p, n in by.items())
                for op, by in report.providers().items()
            )
            row["fusions"] = {k: v for k, v in report.fusions.items() if v}
            if report.unlowered:
                problems.append(
                    f"{kind}: {len(report.unlowered)} IR node(s) left un-lowered: "
                    + ", ".join(f"{n.node} ({n.reason})" for n in report.unlowered)
                )
    return {"path": str(path), "rows": rows, "notes": notes, "problems": problems}


# -- verdict and text ------------------------------------------------------------------------


def _judge(report: dict[str, Any]) -> None:
    problems, notes = report["problems"], report["notes"]
    plugins = report.get("plugins")
    quarantined = (
        [p["name"] for p in plugins or [] if isinstance(p, dict) and p["status"] == "quarantined"]
        if isinstance(plugins, list)
        else []
    )
    if quarantined:
        notes.append(
            f"{len(quarantined)} plugin(s) quarantined, the rest work without them: "
            f"{', '.join(quarantined)} (reasons under plugins; ir-core list-providers --json "
            "has the tracebacks)"
        )
    quick = report.get("quick_check")
    if isinstance(quick, dict) and "failures" in quick:
        for failure in quick["failures"]:
            problems.append(f"quick check [{failure['check']}] {failure['message']}")
    blocks = report.get("decoder_blocks")
    if isinstance(blocks, dict):
        for problem in blocks.get("problems", []):
            problems.append(f"decoder blocks: {problem}")


def _table(rows: list[list[str]], header: list[str]) -> str:
    from .cli import _table as table

    return table(rows, header)


def render(report: dict[str, Any]) -> str:
    """The text report."""
    out: list[str] = []

    def section(title: str) -> None:
        out.append("")
        out.append(title)
        out.append("=" * len(title))

    v = report.get("versions", {})
    out.append(
        f"ir-core {v.get('ir_core')} (op api {v.get('op_api')}, plugin api {v.get('plugin_api')})"
        f"  torch {v.get('torch')}  python {v.get('python')}  {v.get('os')}"
    )
    p = report.get("platform", {})
    section("platform")
    if "error" in p:
        out.append(p["error"])
    else:
        out.append(f"{p['name']}  ({p['how']})")
        for d in p["devices"]:
            extra = ", ".join(f"{k} {v}" for k, v in d.items() if k not in ("type", "name"))
            out.append(f"  {d['type']}: {d['name']}" + (f" ({extra})" if extra else ""))

    section("plugins")
    plugins = report.get("plugins") or []
    if isinstance(plugins, list) and plugins:
        out.append(
            _table(
                [
                    [
                        r["name"],
                        f"{r['distribution'] or '-'} {r['version'] or ''}".strip(),
                        r["status"],
                        ",".join(r["providers"]) or "-",
                    ]
                    for r in plugins
                ],
                ["plugin", "distribution", "status", "providers"],
            )
        )
        for r in plugins:
            if r["reason"]:
                out += _wrapped(f"{r['name']}: {r['reason']}", indent="  ")
    elif isinstance(plugins, list):
        out.append("no plugins installed (entry-point group ir_core.plugins): native only")
    else:
        out.append(plugins.get("error", ""))

    section("providers")
    providers = report.get("providers") or []
    if isinstance(providers, list):
        out.append(
            _table(
                [
                    [
                        r["provider"],
                        r["plugin"],
                        "available" if r["available"] else "unavailable",
                        ",".join(r["device_types"]),
                        ",".join(r["ops"]),
                    ]
                    for r in providers
                ],
                ["provider", "plugin", "status", "devices", "ops"],
            )
        )
        for r in providers:
            if not r["available"]:
                out += _wrapped(f"{r['provider']}: {r['reason']}", indent="  ")

    section("dispatch (a bf16 call of 8 tokens x 4096 on the platform's device)")
    for row in report.get("ops") or []:
        if not isinstance(row, dict) or "op" not in row:
            continue
        out.append(
            f"{row['op']} -> {row.get('provider')}  (priority: {', '.join(row['priority'])})"
        )
        outside = [s["provider"] for s in row.get("skipped", []) if s["reason"] == _NOT_LISTED]
        for s in row.get("skipped", []):
            if s["reason"] != _NOT_LISTED:
                out += _wrapped(f"skipped {s['provider']}: {s['reason']}", indent="    ")
        if outside:
            out += _wrapped(f"not in its priority: {', '.join(outside)}", indent="    ")

    quick = report.get("quick_check")
    if quick is not None:
        section("quick check (numerics, mutation, supports_args on 3 samples per op x dtype)")
        if "error" in quick:
            out.append(quick["error"])
        else:
            out.append(
                _table(
                    [
                        [
                            name,
                            str(e["targets"]),
                            str(e["passed"]),
                            str(e["failed"]),
                            str(e["skipped"]),
                            "FAILED"
                            if e["failed"]
                            else ("ok" if e["targets"] else "nothing to run"),
                        ]
                        for name, e in quick["providers"].items()
                    ],
                    ["provider", "targets", "passed", "failed", "skipped", "result"],
                )
            )
            for failure in quick["failures"]:
                out.append(f"  FAIL [{failure['check']}] {failure['message']}")
            out.append(
                f"({quick['seconds']}s; the full kit: ir-core check, or "
                "pytest --pyargs ir_core.conformance --ir-provider NAME)"
            )

    blocks = report.get("decoder_blocks")
    if blocks is not None:
        section("decoder blocks (eager vs torch.compile)")
        out += _render_blocks(blocks)

    section("verdict")
    for note in report.get("notes", []):
        out.append(f"note: {note}")
    for problem in report.get("problems", []):
        out.append(f"PROBLEM: {problem}")
    out.append(
        f"{'OK' if report.get('ok') else 'PROBLEMS FOUND'} (doctor took {report.get('seconds')}s)"
    )
    return "\n".join(out).lstrip("\n")


_NOT_LISTED = "not in this op's priority"


def _wrapped(text: str, *, indent: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  "
    ) or [indent]


def _render_blocks(blocks: dict[str, Any]) -> list[str]:
    if "error" in blocks:
        return [blocks["error"]]
    if "skipped" in blocks:
        return [f"skipped: {blocks['skipped']}"]
    lines = [f"from {blocks['path']}"]
    table = []
    for r in blocks.get("rows", []):
        if "compiled_ms" not in r:
            table.append([r["block"], f"{r['eager_ms']:.2f} ms", "-", "-", "-", "-"])
            continue
        table.append(
            [
                r["block"],
                f"{r['eager_ms']:.2f} ms",
                f"{r['compile_s']:.1f} s",
                f"{r['compiled_ms']:.2f} ms",
                f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
                f"{r['max_abs_diff']:.3g}",
            ]
        )
    lines.append(
        _table(table, ["block", "eager", "compile", "compiled", "speedup", "max |compiled-eager|"])
    )
    for r in blocks.get("rows", []):
        if "compiled" in r:
            lines.append(f"  {r['block']}: {r['compiled']}")
        if r.get("lowered"):
            fusions = ", ".join(f"{k}={v}" for k, v in r.get("fusions", {}).items())
            lines += _wrapped(
                f"{r['block']}: lowered {r['lowered']}"
                + (f"; fusions {fusions}" if fusions else ""),
                indent="  ",
            )
    for note in blocks.get("notes", []):
        lines += _wrapped(f"note: {note}", indent="  ")
    return lines
