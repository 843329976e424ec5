"""The host's promises under hostile plugins, with real installed distributions, in fresh
processes (docs/provider-api.md, "What the host guarantees").

Each plugin here is a distribution built on the fly (``tests/hostile.py``) the way a careless
vendor would ship it. For every kind: ``ir-core list-providers`` exits 0 and shows the culprit
quarantined with a reason naming what it did, ``native`` and a good plugin (the installed
``example``) keep working, and strict mode turns it into exit 1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hostile import install, run

#: Runs in the child: list-providers (in-process, JSON), then dispatch through native and
#: through the good plugin; prints what it saw after ``RESULT``.
SCRIPT = """
import contextlib, io, json
import torch, ir_core
from ir_core import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = cli.main(["list-providers", "--json"])
listing = json.loads(out.getvalue())
x, w = torch.randn(4, 32), torch.randn(32)
native = ir_core.get_op("rms_norm").native(x, w, 1e-6)
torch.testing.assert_close(ir_core.ops.rms_norm(x, w, 1e-6), native)
with ir_core.set_priority(rms_norm=["example"]):
    torch.testing.assert_close(ir_core.ops.rms_norm(x, w, 1e-6), native)
    chosen = ir_core.explain("rms_norm", x, w, 1e-6).provider
print("RESULT", json.dumps({"rc": rc, "listing": listing, "example": chosen}))
"""

REGISTERS = """
@ir_core.hookimpl
def register_impls(registry):
    registry.register_impl("rms_norm", "{kind}", kernel, device_types=("cpu",))
"""

#: kind -> (hooks besides REGISTERS, words the quarantine reason must contain)
QUARANTINED = {
    "platform_raises": (
        "@ir_core.hookimpl\ndef detect_platform():\n    raise RuntimeError('no driver')\n",
        ["detect_platform raised RuntimeError: no driver"],
    ),
    "platform_garbage": (
        "@ir_core.hookimpl\ndef detect_platform():\n    return 5\n",
        ["detect_platform returned 5", "not a platform name"],
    ),
    "priority_none": (
        "@ir_core.hookimpl\ndef platform_priority(platform):\n    return {'rms_norm': None}\n",
        ["platform_priority", "rms_norm", "list of provider names", "None"],
    ),
    "priority_int": (
        "@ir_core.hookimpl\ndef platform_priority(platform):\n    return {'rms_norm': 5}\n",
        ["platform_priority", "rms_norm", "list of provider names", "5"],
    ),
    "priority_list": (
        "@ir_core.hookimpl\ndef platform_priority(platform):\n    return ['rms_norm']\n",
        ["platform_priority returned ['rms_norm']", "not a dict"],
    ),
    "priority_unknown": (
        "@ir_core.hookimpl\ndef platform_priority(platform):\n"
        "    return {'rms_norm': ['nobody', 'priority_unknown']}\n",
        ["platform_priority names provider 'nobody'", "no plugin registered"],
    ),
    "priority_raises": (
        "@ir_core.hookimpl\ndef platform_priority(platform):\n    raise ValueError('bad table')\n",
        ["platform_priority raised ValueError: bad table"],
    ),
    "fusions_raise": (
        "@ir_core.hookimpl\ndef register_fusion_passes(registry):\n"
        "    raise RuntimeError('pattern library missing')\n",
        ["register_fusion_passes raised RuntimeError: pattern library missing"],
    ),
    "fusions_garbage": (
        "@ir_core.hookimpl\ndef register_fusion_passes(registry):\n"
        "    registry.register('not a name', lambda gm: 0)\n",
        ["register_fusion_passes raised FusionPassError", "'not a name'"],
    ),
    "exits": (  # replaces REGISTERS: registers, then ends the process
        "@ir_core.hookimpl\ndef register_impls(registry):\n"
        "    registry.register_impl('rms_norm', 'exits', kernel, device_types=('cpu',))\n"
        "    import sys; sys.exit(0)\n",
        ["register_impls raised SystemExit: 0"],
    ),
    "exits_in_platform": (
        "@ir_core.hookimpl\ndef detect_platform():\n    import sys; sys.exit(3)\n",
        ["detect_platform raised SystemExit: 3"],
    ),
    "info_garbage": (
        "@ir_core.hookimpl\ndef ir_plugin_info():\n    return {'api_version': '1'}\n",
        ["ir_plugin_info: api_version must be an int", "'1'"],
    ),
}


def _source(kind: str) -> str:
    hooks, _ = QUARANTINED[kind]
    return hooks if "def register_impls" in hooks else REGISTERS.format(kind=kind) + hooks


def _result(completed) -> dict:
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [ln for ln in completed.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"the child printed no result:\n{completed.stdout}\n{completed.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def _plugin(data: dict, name: str) -> dict:
    return next(p for p in data["listing"]["plugins"] if p["name"] == name)


@pytest.mark.parametrize("kind", sorted(QUARANTINED))
def test_hostile_plugin_is_quarantined_and_everything_else_works(kind, tmp_path):
    install(tmp_path, kind, _source(kind))
    data = _result(run(["-c", SCRIPT], [tmp_path], IR_CORE_PLUGINS=f"{kind},example"))
    assert data["rc"] == 0
    record = _plugin(data, kind)
    assert record["status"] == "quarantined", record
    for word in QUARANTINED[kind][1]:
        assert word in record["reason"]
    assert "Traceback" in record["traceback"]
    providers = {p["provider"] for p in data["listing"]["providers"]}
    assert kind not in providers  # its registrations were rolled back
    assert _plugin(data, "example")["status"] == "loaded" and data["example"] == "example"
    assert data["listing"]["platform"] == "cpu"  # a hostile detect_platform did not win


def test_metadata_without_optional_fields_loads(tmp_path):
    # Summary is optional in core metadata; importlib_metadata raises KeyError for it
    install(tmp_path, "terse", REGISTERS.format(kind="terse"), summary=None)
    data = _result(run(["-c", SCRIPT], [tmp_path], IR_CORE_PLUGINS="terse,example"))
    record = _plugin(data, "terse")
    assert record["status"] == "loaded" and record["description"] == ""
    assert record["distribution"] == "ir-test-terse" and record["providers"] == ["terse"]
    listed = run(["-m", "ir_core.cli", "list-providers", "--no-load", "--json"], [tmp_path])
    assert listed.returncode == 0, listed.stderr
    assert "terse" in {p["name"] for p in json.loads(listed.stdout)["plugins"]}


def _clash_pair(site: Path) -> None:
    for name in ("clash_a", "clash_b"):
        install(site, name, REGISTERS.format(kind="shared"))


def _rows_with_notes(out: str) -> dict[str, str]:
    """Each table row by its first word, its ``[n]`` marks replaced by the notes' texts (the
    table puts long reasons below it, once per distinct text)."""
    notes: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        mark = re.match(r"\[(\d+)\] (.*)", line)
        if mark:
            current = mark.group(1)
            notes[current] = mark.group(2)
        elif current is not None and line.startswith(" "):
            notes[current] += " " + line.strip()
        else:
            current = None
    return {
        line.split()[0]: re.sub(r"\[(\d+)\]", lambda m: notes.get(m.group(1), m.group(0)), line)
        for line in out.splitlines()
        if line.strip() and not line.startswith((" ", "["))
    }


def test_every_kind_at_once_table_exit_0_and_strict_exit_1_naming_each(tmp_path):
    site, second = tmp_path / "site", tmp_path / "second"
    for kind in QUARANTINED:
        install(site, kind, _source(kind))
    _clash_pair(site)
    install(site, "twin", REGISTERS.format(kind="twin_one"), distribution="ir-test-twin-one")
    install(second, "twin", REGISTERS.format(kind="twin_two"), distribution="ir-test-twin-two")
    names = ",".join([*QUARANTINED, "clash_a", "clash_b", "twin", "example"])

    table = run(["-m", "ir_core.cli", "list-providers"], [site, second], IR_CORE_PLUGINS=names)
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stdout + table.stderr
    rows = _rows_with_notes(table.stdout)
    for kind in QUARANTINED:
        assert "quarantined" in rows[kind]
    assert "neither impl is used" in rows["clash_a"] and "neither impl is used" in rows["clash_b"]

    strict = run(
        ["-m", "ir_core.cli", "list-providers"],
        [site, second],
        IR_CORE_PLUGINS=names,
        IR_CORE_STRICT_PLUGINS="1",
    )
    assert strict.returncode == 1
    assert "Traceback" not in strict.stderr
    for kind in [*QUARANTINED, "twin"]:
        assert f"plugin {kind} failed to load (IR_CORE_STRICT_PLUGINS=1)" in strict.stderr
    assert "plugin clash_a clashes" in strict.stderr and "plugin clash_b clashes" in strict.stderr


def test_duplicate_entry_point_name_first_on_sys_path_stays(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    install(first, "twin", REGISTERS.format(kind="twin_one"), distribution="ir-test-twin-one")
    install(second, "twin", REGISTERS.format(kind="twin_two"), distribution="ir-test-twin-two")
    data = _result(run(["-c", SCRIPT], [first, second], IR_CORE_PLUGINS="twin,example"))
    twins = [p for p in data["listing"]["plugins"] if p["name"] == "twin"]
    assert [(p["distribution"], p["status"]) for p in twins] == [
        ("ir-test-twin-one", "loaded"),
        ("ir-test-twin-two", "quarantined"),
    ]
    assert "ir-test-twin-one" in twins[1]["reason"] and "ir-test-twin-two" in twins[1]["reason"]
    assert "ir-test-twin-two" in twins[0]["clashes"][0]
    assert twins[0]["providers"] == ["twin_one"]  # the first one's impls are all there
    providers = {p["provider"]: p["status"] for p in data["listing"]["providers"]}
    assert providers["twin_one"] == "available" and "twin_two" not in providers


def test_threads_making_their_first_call_while_plugins_load_all_see_them(tmp_path):
    # the plugin's import takes a while, and its default priority puts its kernel first: every
    # thread's first call must wait for the load and run it, none may fall back to native
    install(
        tmp_path,
        "slowpoke",
        """
        import threading, time
        time.sleep(0.5)
        CALLS, LOCK = [], threading.Lock()

        def counted(x: torch.Tensor, weight: torch.Tensor | None, epsilon: float,
                    weight_bias: float = 0.0, variance_size: int | None = None) -> torch.Tensor:
            with LOCK:
                CALLS.append(threading.get_ident())
            return kernel(x, weight, epsilon, weight_bias, variance_size)

        @ir_core.hookimpl
        def register_impls(registry):
            registry.register_impl("rms_norm", "slowpoke", counted, device_types=("cpu",))

        @ir_core.hookimpl
        def platform_priority(platform):
            return {"rms_norm": ["slowpoke"]}
        """,
    )
    code = """
import threading, torch, ir_core
barrier = threading.Barrier(16)
def first_call():
    barrier.wait()
    ir_core.ops.rms_norm(torch.randn(4, 32), torch.randn(32), 1e-6)
threads = [threading.Thread(target=first_call) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
import ir_test_slowpoke
print("CALLS", len(ir_test_slowpoke.CALLS), len(set(ir_test_slowpoke.CALLS)))
"""
    result = run(["-c", code], [tmp_path], IR_CORE_PLUGINS="slowpoke")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-3:] == ["CALLS", "16", "16"]


def test_strict_mode_keeps_failing_after_a_plugin_load_error(tmp_path):
    install(tmp_path, "good", REGISTERS.format(kind="good"))
    install(tmp_path, "bad", "@ir_core.hookimpl\ndef register_impls(registry):\n    1 / 0\n")
    code = """
import torch, ir_core
for attempt in range(3):
    try:
        ir_core.ops.rms_norm(torch.randn(2, 8), None, 1e-6)
        print("RAN", attempt)
    except ir_core.PluginLoadError as exc:
        print("FAILED", attempt, "bad" in str(exc))
"""
    result = run(["-c", code], [tmp_path], IR_CORE_PLUGINS="good,bad", IR_CORE_STRICT_PLUGINS="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        *("FAILED", "0", "True"),
        *("FAILED", "1", "True"),
        *("FAILED", "2", "True"),
    ]


FLAKY = """
@ir_core.hookimpl
def register_impls(registry):
    registry.register_impl("rms_norm", "flaky", kernel, device_types=("cpu",))
    raise RuntimeError("license server unreachable")
"""


def test_env_priority_naming_a_quarantined_provider_warns_once_and_skips_it(tmp_path):
    install(tmp_path, "flaky", FLAKY)
    code = """
import torch, ir_core
x, w = torch.randn(4, 32), torch.randn(32)
for _ in range(3):
    ir_core.ops.rms_norm(x, w, 1e-6)
    ir_core.ops.fused_add_rms_norm(x, x, w, 1e-6)
e = ir_core.explain("rms_norm", x, w, 1e-6)
print("CHOSEN", e.provider, dict(e.skipped)["flaky"])
"""
    env = {"IR_CORE_PLUGINS": "flaky,example", "IR_CORE_OP_PRIORITY": "rms_norm=flaky,example"}
    result = run(["-c", code], [tmp_path], **env)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = result.stdout.split("CHOSEN ", 1)[1]
    assert chosen.startswith("example quarantined: plugin flaky: register_impls raised")
    assert "license server unreachable" in chosen
    assert result.stderr.count("provider 'flaky' for op 'rms_norm' is skipped: quarantined") == 1
    strict = run(["-c", code], [tmp_path], **env, IR_CORE_STRICT_PLUGINS="1")
    assert strict.returncode == 1 and "PluginLoadError" in strict.stderr
    assert "plugin flaky failed to load" in strict.stderr


def test_check_and_conformance_of_a_quarantined_provider_fail_with_the_reason(tmp_path):
    install(tmp_path, "flaky", FLAKY)
    env = {"IR_CORE_PLUGINS": "flaky"}
    check = run(["-m", "ir_core.cli", "check", "--provider", "flaky", "-q"], [tmp_path], **env)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "quarantined: plugin flaky: register_impls raised RuntimeError" in check.stderr
    kit = run(
        ["-m", "pytest", "--pyargs", "ir_core.conformance", "--ir-provider", "flaky", "-q"],
        [tmp_path],
        **env,
    )
    assert kit.returncode == 1, kit.stdout + kit.stderr
    assert "quarantined: plugin flaky" in kit.stdout + kit.stderr


def test_slow_plugin_load_time_is_recorded_shown_and_warned(tmp_path):
    install(tmp_path, "sluggish", "import time\ntime.sleep(0.4)\n" + REGISTERS.format(kind="s"))
    code = """
import contextlib, io, json
from ir_core import cli, plugins
plugins.SLOW_LOAD_S = 0.3  # the threshold (2 s) scaled down with the plugin's import time
for argv in (["list-providers", "--json"], ["doctor", "--json", "--no-check", "--no-blocks", "-q"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(argv)
    print("RESULT", json.dumps(json.loads(out.getvalue())))
"""
    result = run(["-c", code], [tmp_path], IR_CORE_PLUGINS="sluggish")
    assert result.returncode == 0, result.stderr[-3000:]
    listing, doctor = (
        json.loads(line.removeprefix("RESULT "))
        for line in result.stdout.splitlines()
        if line.startswith("RESULT ")
    )
    listed = next(p for p in listing["plugins"] if p["name"] == "sluggish")
    assert 0.4 <= listed["load_seconds"] < 30
    shown = next(p for p in doctor["plugins"] if p["name"] == "sluggish")
    assert shown["load_seconds"] == listed["load_seconds"]
    assert any("plugin sluggish took" in note for note in doctor["notes"])
    assert result.stderr.count("plugin sluggish took") == 1  # warned once, at load
    assert "IR_CORE_DISABLE_PLUGINS=sluggish skips it" in result.stderr
