"""``ir-core doctor``: the whole picture of this machine, in one report.

1. the platform and how it was detected; torch and the devices it sees;
2. the plugins (loaded, disabled, quarantined with the reason) and their providers;
3. what each op resolves to here, and why the providers before it were skipped;
4. a quick conformance check of every provider that can run here (a few samples per target,
   numerics, input mutation and supports_args: the checks that cost milliseconds);
5. the example decoder blocks (:mod:`ir_core.examples.decoder_blocks`, in the wheel), eager and
   compiled, with timings.

Each section is collected first into a typed section (a dataclass below), then rendered, so
``--json`` (each section's :meth:`~Section.to_json`) and the text report (its
:meth:`~Section.render`) agree. A section that fails to collect is reported as a problem, never
a crash: doctor is what one runs when something is wrong.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform as pyplatform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

import ir_core
from ir_core import fastpath, plugins
from ir_core.config import reference
from ir_core.conformance import run as run_conformance
from ir_core.conformance import runnable_providers
from ir_core.examples import decoder_blocks
from ir_core.platform import ENV_PLATFORM, current_platform, detect, device_usable, platform_device
from ir_core.priority import resolve
from ir_core.progress import Progress

from .args import EXIT_FAILURE, EXIT_OK, UsageError, progress
from .format import fit, print_json, table, wrapped
from .list_providers import provider_rows

#: Seconds after which doctor starts no further torch.compile (its one slow part). Measured on
#: 2 shared CPU cores: the four blocks compile in 50 s with Inductor's cache warm, and with it
#: cold under load the first compile alone (Inductor's start-up) takes 40-75 s and the other
#: three about 20 s each; 180 covers that, and a quiet machine finishes far sooner.
DEFAULT_BUDGET_S = 180.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="the whole picture of this machine: platform, plugins, dispatch, quick check",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-check", action="store_true", help="skip the quick conformance check")
    p.add_argument(
        "--no-blocks", action="store_true", help="skip the decoder blocks (eager vs compiled)"
    )
    p.add_argument(
        "--blocks",
        default=None,
        metavar="PATH",
        help="a decoder_blocks.py of your own, with KINDS and make_block (default: "
        "ir_core.examples.decoder_blocks, shipped in the wheel)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no decoder-block compile after this many seconds "
        f"(default {DEFAULT_BUDGET_S:g})",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.budget is None:
        args.budget = DEFAULT_BUDGET_S
    elif args.budget < 0:
        raise UsageError("--budget must be >= 0")
    report = collect(
        quick_check=not args.no_check,
        blocks=not args.no_blocks,
        blocks_path=args.blocks,
        budget_s=args.budget,
        progress=progress(args),
    )
    if args.json:
        print_json(report.to_json())
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_FAILURE


# -- sections --------------------------------------------------------------------------------


class Section:
    """One part of the report: its data as JSON, its text, and what it adds to the verdict."""

    #: The heading of the section in the text report (None: no heading).
    TITLE: ClassVar[str | None] = None

    def to_json(self) -> Any:
        return asdict(self)  # type: ignore[call-overload]

    def render(self) -> list[str]:
        raise NotImplementedError

    def notes(self) -> list[str]:
        return []

    def problems(self) -> list[str]:
        return []


@dataclass
class FailedSection(Section):
    """A section that could not be collected: the error stands in for its data."""

    title: str | None
    error: str
    traceback: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error}

    def render(self) -> list[str]:
        return [self.error]


@dataclass
class VersionsSection(Section):
    ir_core: str
    op_api: int
    plugin_api: int
    torch: str
    python: str
    os: str
    #: The eager dispatch hit path: compiled (ir_core._fastpath) or pure Python, and why.
    dispatch: str
    dispatch_compiled: bool

    def render(self) -> list[str]:
        return [
            f"ir-core {self.ir_core} (op api {self.op_api}, plugin api {self.plugin_api})"
            f"  torch {self.torch}  python {self.python}  {self.os}",
            f"eager dispatch: {self.dispatch}",
        ]

    def notes(self) -> list[str]:
        if self.dispatch_compiled or fastpath.ENV_COMPILED in self.dispatch:
            return []
        return [
            f"eager dispatch runs its pure-Python hit path (slower, same choices): {self.dispatch}"
        ]


def _versions() -> VersionsSection:
    return VersionsSection(
        ir_core=ir_core.__version__,
        op_api=ir_core.__op_api__,
        plugin_api=ir_core.API_VERSION,
        torch=torch.__version__,
        python=sys.version.split()[0],
        os=f"{pyplatform.system()} {pyplatform.machine()}",
        dispatch=str(fastpath.status()),
        dispatch_compiled=fastpath.status().active,
    )


@dataclass
class PlatformSection(Section):
    TITLE: ClassVar[str | None] = "platform"

    name: str
    source: str
    how: str
    devices: list[dict[str, Any]]

    def render(self) -> list[str]:
        lines = [f"{self.name}  ({self.how})"]
        for d in self.devices:
            extra = ", ".join(f"{k} {v}" for k, v in d.items() if k not in ("type", "name"))
            lines.append(f"  {d['type']}: {d['name']}" + (f" ({extra})" if extra else ""))
        return lines


def _platform() -> PlatformSection:
    # Plugins first: loading them resets the detected platform, so detecting before they are
    # loaded returns nothing on a process's first call.
    ir_core.load_plugins()
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
    return PlatformSection(name, source, how, devices)


@dataclass
class PluginsSection(Section):
    TITLE: ClassVar[str | None] = "plugins"

    #: ``PluginRecord.to_dict()`` of each plugin, without the traceback.
    rows: list[dict[str, Any]]

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    def render(self) -> list[str]:
        if not self.rows:
            return ["no plugins installed (entry-point group ir_core.plugins): native only"]
        lines = [
            table(
                [
                    [
                        r["name"],
                        f"{r['distribution'] or '-'} {r['version'] or ''}".strip(),
                        r["status"],
                        f"{r['load_seconds']:.2f}s",
                        ",".join(r["providers"]) or "-",
                    ]
                    for r in self.rows
                ],
                ["plugin", "distribution", "status", "load", "providers"],
            )
        ]
        for r in self.rows:
            for problem in [r["reason"], *r["clashes"]]:
                if problem:
                    lines += wrapped(f"{r['name']}: {problem}", indent="  ")
        return lines

    def notes(self) -> list[str]:
        notes = [
            f"plugin {r['name']} took {r['load_seconds']:.1f}s to load (import and hooks); "
            f"{plugins.ENV_DENY}={r['name']} skips it"
            for r in self.rows
            if r["load_seconds"] > plugins.SLOW_LOAD_S
        ]
        quarantined = [r["name"] for r in self.rows if r["status"] == "quarantined"]
        if quarantined:
            notes.append(
                f"{len(quarantined)} plugin(s) quarantined, the rest work without them: "
                f"{', '.join(quarantined)} (reasons under plugins; ir-core list-providers "
                "--json has the tracebacks)"
            )
        clashing = [r["name"] for r in self.rows if r["clashes"]]
        if clashing:
            notes.append(
                f"plugin(s) {', '.join(clashing)} clash: what they share is not used "
                "(how to resolve it under plugins)"
            )
        return notes


def _plugins() -> PluginsSection:
    rows = []
    for record in plugins.records():
        data = record.to_dict()
        data.pop("traceback", None)
        rows.append(data)
    return PluginsSection(rows)


@dataclass
class ProvidersSection(Section):
    TITLE: ClassVar[str | None] = "providers"

    #: :func:`ir_core.cli.list_providers.provider_rows`.
    rows: list[dict[str, Any]]

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    def render(self) -> list[str]:
        lines = [
            table(
                [
                    [
                        r["provider"],
                        r["plugin"],
                        "available" if r["available"] else "unavailable",
                        ",".join(r["device_types"]),
                        ",".join(r["ops"]),
                    ]
                    for r in self.rows
                ],
                ["provider", "plugin", "status", "devices", "ops"],
            )
        ]
        for r in self.rows:
            if not r["available"]:
                lines += wrapped(f"{r['provider']}: {r['reason']}", indent="  ")
        return lines


def _providers() -> ProvidersSection:
    return ProvidersSection(provider_rows())


@dataclass
class OpsSection(Section):
    """What each op runs here for a representative bf16 call on the platform's device."""

    TITLE: ClassVar[str | None] = (
        "dispatch (a bf16 call of 8 tokens x 4096 on the platform's device)"
    )

    rows: list[dict[str, Any]]
    #: Where reference mode was switched on ("" when off): every op then runs native.
    reference: str = ""

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    def render(self) -> list[str]:
        unlisted = ir_core.Explanation.NOT_IN_PRIORITY
        lines = []
        if self.reference:
            lines.append(f"reference mode is on ({self.reference}): every op runs native")
        for row in self.rows:
            lines.append(
                f"{row['op']} -> {row.get('provider')}  (priority: {', '.join(row['priority'])})"
            )
            skipped = row.get("skipped", [])
            for s in skipped:
                if s["reason"] != unlisted and not self.reference:
                    lines += wrapped(f"skipped {s['provider']}: {s['reason']}", indent="    ")
            outside = [s["provider"] for s in skipped if s["reason"] == unlisted or self.reference]
            if outside:
                lines += wrapped(f"not in its priority: {', '.join(outside)}", indent="    ")
        return lines


def _ops() -> OpsSection:
    device = torch.device(platform_device(current_platform()))
    stand_in = not device_usable(device)
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
            result = ir_core.explain(op, *sample.args, device_type=device.type, **sample.kwargs)
            row["provider"] = result.provider
            row["skipped"] = [{"provider": p, "reason": r} for p, r in result.skipped]
        except NotImplementedError:
            row["provider"], row["skipped"] = None, []
            row["note"] = "the op declares no example inputs"
        rows.append(row)
    mode = reference()
    return OpsSection(rows, mode.source if mode.value else "")


@dataclass
class QuickCheckSection(Section):
    TITLE: ClassVar[str | None] = (
        "quick check (numerics, mutation, supports_args on 3 samples per op x dtype)"
    )

    checks: list[str]
    #: Per provider: targets checked, passed/failed/skipped counts, targets not checked.
    providers: dict[str, dict[str, Any]]
    failures: list[dict[str, Any]]
    seconds: float
    ok: bool

    def render(self) -> list[str]:
        lines = [
            table(
                [
                    [
                        name,
                        str(e["targets"]),
                        str(e["passed"]),
                        str(e["failed"]),
                        str(e["skipped"]),
                        "FAILED" if e["failed"] else ("ok" if e["targets"] else "nothing to run"),
                    ]
                    for name, e in self.providers.items()
                ],
                ["provider", "targets", "passed", "failed", "skipped", "result"],
            )
        ]
        lines += [f"  FAIL [{f['check']}] {f['message']}" for f in self.failures]
        lines.append(
            f"({self.seconds}s; the full kit: ir-core check, or "
            "pytest --pyargs ir_core.conformance --ir-provider NAME)"
        )
        return lines

    def problems(self) -> list[str]:
        return [f"quick check [{f['check']}] {f['message']}" for f in self.failures]


def _quick_check(progress: Progress) -> QuickCheckSection:
    report = run_conformance(runnable_providers(), quick=True, progress=progress)
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
    return QuickCheckSection(
        checks=list(report.checks),
        providers=per_provider,
        failures=[r.to_dict() for r in report.failures],
        seconds=round(report.seconds, 2),
        ok=report.ok,
    )


# -- decoder blocks --------------------------------------------------------------------------


@dataclass
class DecoderBlocksSection(Section):
    TITLE: ClassVar[str | None] = "decoder blocks (eager vs torch.compile)"

    #: The module the blocks come from, or the ``--blocks`` path; None when ``skipped``.
    path: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    block_notes: list[str] = field(default_factory=list)
    block_problems: list[str] = field(default_factory=list)
    skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "path": self.path,
            "rows": self.rows,
            "notes": self.block_notes,
            "problems": self.block_problems,
        }

    def render(self) -> list[str]:
        if self.skipped:
            return [f"skipped: {self.skipped}"]
        lines = [f"from {self.path}"]
        cells = []
        for r in self.rows:
            if "compiled_ms" not in r:
                cells.append([r["block"], f"{r['eager_ms']:.2f} ms", "-", "-", "-", "-"])
                continue
            cells.append(
                [
                    r["block"],
                    f"{r['eager_ms']:.2f} ms",
                    f"{r['compile_s']:.1f} s",
                    f"{r['compiled_ms']:.2f} ms",
                    f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
                    f"{r['max_abs_diff']:.3g}",
                ]
            )
        header = ["block", "eager", "compile", "compiled", "speedup", "max |compiled-eager|"]
        lines.append(table(cells, header))
        for r in self.rows:
            if "compiled" in r:
                lines.append(f"  {r['block']}: {r['compiled']}")
            if r.get("lowered"):
                fusions = ", ".join(f"{k}={v}" for k, v in r.get("fusions", {}).items())
                lines += wrapped(
                    f"{r['block']}: lowered {r['lowered']}"
                    + (f"; fusions {fusions}" if fusions else ""),
                    indent="  ",
                )
        for note in self.block_notes:
            lines += wrapped(f"note: {note}", indent="  ")
        return lines

    def problems(self) -> list[str]:
        return [f"decoder blocks: {problem}" for problem in self.block_problems]


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
def _decoder_blocks(
    explicit: str | None, progress: Progress, deadline: float, budget_s: float
) -> DecoderBlocksSection:
    """Each block family eager, then under plain ``torch.compile`` (ir_core lowers its IR ops
    inside Inductor): timings, what each IR op was lowered to, and compiled vs eager.

    A compile is started only before ``deadline`` (a ``perf_counter`` value): a cold first
    compile costs tens of seconds on a small CPU; the rest are reported as not compiled.
    """
    if explicit is None:
        module, path = decoder_blocks, decoder_blocks.__name__
    elif Path(explicit).is_file():
        module, path = _load_module(Path(explicit)), explicit
    else:
        return DecoderBlocksSection(skipped=f"not found: {explicit} (--blocks PATH)")
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
            if time.perf_counter() > deadline:
                row["compiled"] = (
                    f"not compiled: doctor's time budget is spent (--budget {budget_s:g}); "
                    "a larger --budget compiles it"
                )
                continue
            compiled = torch.compile(block)
            before = ir_core.compile_report()
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
        report = ir_core.compile_report()
        if report is None or report is before:
            row["lowered"] = "no report: no IR op was compiled"
        else:
            row["lowered"] = "; ".join(
                f"{op}: " + ", ".join(f"{p}*{n}" for p, n in by.items())
                for op, by in report.providers().items()
            ) + (" (from Inductor's cache)" if report.from_cache else "")
            row["fusions"] = {k: v for k, v in report.fusions.items() if v}
            if report.unlowered:
                problems.append(
                    f"{kind}: {len(report.unlowered)} IR node(s) left un-lowered: "
                    + ", ".join(f"{n.node} ({n.reason})" for n in report.unlowered)
                )
    return DecoderBlocksSection(path, rows, notes, problems)


# -- collecting and rendering ----------------------------------------------------------------


@dataclass
class DoctorReport:
    """Every section, in report order, and the verdict drawn from them."""

    sections: dict[str, Section]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"problems": self.problems, "notes": self.notes}
        data.update({name: section.to_json() for name, section in self.sections.items()})
        failed = {n: s.traceback for n, s in self.sections.items() if isinstance(s, FailedSection)}
        if failed:
            data["tracebacks"] = failed
        data["seconds"] = self.seconds
        data["ok"] = self.ok
        return data

    def render(self) -> str:
        """The text report, every line within the terminal's width."""
        out: list[str] = []
        for section in self.sections.values():
            title = section.title if isinstance(section, FailedSection) else section.TITLE
            if title:
                out += ["", title, "=" * len(title)]
            out += section.render()
        out += ["", "verdict", "=" * len("verdict")]
        out += [f"note: {note}" for note in self.notes]
        out += [f"PROBLEM: {problem}" for problem in self.problems]
        out.append(f"{'OK' if self.ok else 'PROBLEMS FOUND'} (doctor took {self.seconds}s)")
        # lines no section wrapped itself (a long platform description, the verdict's notes)
        return "\n".join(fit("\n".join(out).lstrip("\n")))


def collect(
    *,
    quick_check: bool = True,
    blocks: bool = True,
    blocks_path: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    progress: Progress | None = None,
) -> DoctorReport:
    """Every section, then the verdict (``problems``, ``notes``, ``ok``).

    ``budget_s``: no compile of a decoder block starts after this many seconds of doctor.
    """
    progress = progress or Progress(enabled=False)
    started = time.perf_counter()
    steps: list[tuple[str, str | None, Callable[[], Section]]] = [
        ("versions", VersionsSection.TITLE, _versions),
        ("platform", PlatformSection.TITLE, _platform),
        ("plugins", PluginsSection.TITLE, _plugins),
        ("providers", ProvidersSection.TITLE, _providers),
        ("ops", OpsSection.TITLE, _ops),
    ]
    if quick_check:
        steps.append(("quick_check", QuickCheckSection.TITLE, lambda: _quick_check(progress)))
    if blocks:
        deadline = started + budget_s
        steps.append(
            (
                "decoder_blocks",
                DecoderBlocksSection.TITLE,
                lambda: _decoder_blocks(blocks_path, progress, deadline, budget_s),
            )
        )
    report = DoctorReport({})
    progress.add_total(len(steps))
    for name, title, fn in steps:
        progress.step(name)
        section_started = time.perf_counter()
        try:
            report.sections[name] = fn()
        except Exception as exc:  # a broken section is a finding, not a crash
            error = f"{type(exc).__name__}: {exc}"
            report.sections[name] = FailedSection(title, error, traceback.format_exc())
            report.problems.append(f"{name}: could not be collected: {error}")
        progress.note(f"  {name} ({time.perf_counter() - section_started:.1f}s)")
    progress.close()
    for section in report.sections.values():
        report.notes += section.notes()
        report.problems += section.problems()
    report.seconds = round(time.perf_counter() - started, 2)
    return report
