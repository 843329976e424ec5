"""The declarative config file (``[tool.ir-core]`` / ``IR_CORE_CONFIG``), its precedence
against ``configure`` and the env, ``ir-core config``, and reference mode (eager and compiled)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ir_core
from ir_core import cli, config, platform, plugins, priority
from ir_core.cli import doctor
from ir_core.compile import compile_report
from ir_core.compile.passes import FusionPassError, FusionPassRegistry

NATIVE = ir_core.get_op("rms_norm").native


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("IR_CORE_CONFIG", "IR_CORE_REFERENCE", "IR_CORE_FUSIONS", "IR_CORE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("IR_CORE_DISABLE_PLUGINS", raising=False)
    config.reload()
    yield
    ir_core.configure()
    monkeypatch.undo()
    config.reload()


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``write(text)``: a config file named by ``IR_CORE_CONFIG``; returns its path."""

    def write(text: str, name: str = "ir-core.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        monkeypatch.setenv("IR_CORE_CONFIG", str(path))
        config.reload()
        return path

    return write


class Counting:
    """An rms_norm provider for CPU that counts its calls and marks its output (x 3)."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, 0

    def kernel(self, x, weight, epsilon, weight_bias=0.0, variance_size=None):
        self.calls += 1
        return NATIVE(x, weight, epsilon, weight_bias, variance_size) * 3

    def register(self, plugin) -> Counting:
        def register_impls(registry):
            registry.register_impl(
                "rms_norm", self.name, _typed(self.kernel), device_types=("cpu",)
            )

        plugin(name=f"plugin_{self.name}", register_impls=register_impls)
        return self


def _typed(kernel):
    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return kernel(x, weight, epsilon, weight_bias, variance_size)

    return rms_norm


@pytest.fixture
def alpha(plugin) -> Counting:
    return Counting("cfg_alpha").register(plugin)


@pytest.fixture
def beta(plugin) -> Counting:
    return Counting("cfg_beta").register(plugin)


def _args(tokens: int = 4, hidden: int = 16):
    return torch.randn(tokens, hidden), torch.ones(hidden), 1e-6


# -- reading the file --------------------------------------------------------------------------


def test_every_key_is_read_checked_and_has_its_line(write):
    path = write(
        "# settings for the engine\n"  # 1
        'plugins = ["example", "cuda"]\n'  # 2
        'disable-plugins = "oink"\n'  # 3
        "strict = true\n"  # 4
        'fusions = ["-dual_rms_norm"]\n'  # 5
        'platform = "cpu"\n'  # 6
        "reference = false\n"  # 7
        'require = ["fp32_accumulate"]\n'  # 8
        "\n"  # 9
        "[priority]\n"  # 10
        'rms_norm = ["triton", "native"]\n'  # 11
        'fused_add_rms_norm = "aiter, oink"\n'  # 12
    )
    found = config.config_file()
    assert found.path == str(path)
    assert found.values == {
        "plugins": ("example", "cuda"),
        "disable-plugins": ("oink",),
        "strict": True,
        "fusions": "-dual_rms_norm",
        "platform": "cpu",
        "reference": False,
        "require": ("fp32_accumulate",),
        "priority": {"rms_norm": ("triton", "native"), "fused_add_rms_norm": ("aiter", "oink")},
    }
    assert [found.lines[k] for k in ("plugins", "strict", "require", "priority")] == [2, 4, 8, 10]
    assert found.lines["priority.rms_norm"] == 11
    assert found.lines["priority.fused_add_rms_norm"] == 12


def test_the_accessor_for_require_and_every_source(write, monkeypatch):
    path = write('require = ["fp32_accumulate", "deterministic"]\nstrict = true\n')
    monkeypatch.setenv("IR_CORE_STRICT_PLUGINS", "0")
    current = config.settings()
    assert current.require == ("fp32_accumulate", "deterministic")
    assert current.sources["require"] == f"file {path}:1"
    assert current.strict is False and current.sources["strict"] == "env IR_CORE_STRICT_PLUGINS"
    assert current.reference is False and current.sources["reference"] == "default"
    with pytest.raises(KeyError, match="no setting 'priority'"):
        config.lookup("priority")  # per op: priority.origin


@pytest.mark.parametrize(
    "text, key, line, words",
    [
        ("strict = true\n\nstrikt = true\n", "strikt", 3, ["unknown key", "known keys"]),
        ("plugins = []\nstrict = 1\n", "strict", 2, ["must be true or false", "int 1"]),
        ("reference = 'yes'\n", "reference", 1, ["must be true or false"]),
        ('plugins = ["a", 3]\n', "plugins", 1, ["must be a list of names"]),
        ("platform = ''\n", "platform", 1, ["must be a platform name"]),
        ("priority = ['rms_norm']\n", "priority", 1, ["must be a table"]),
        ("[priority]\nrms_norm = 'native'\nsilu_and_mul = 4\n", "priority.silu_and_mul", 3, []),
        ("priority = { rms_norm = 4 }\n", "priority.rms_norm", 1, ["must be a list of names"]),
    ],
)
def test_a_bad_file_names_file_key_and_line(write, text, key, line, words):
    path = write(text)
    with pytest.raises(ir_core.ConfigError) as info:
        config.config_file()
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.path, error.key, error.line) == (str(path), key, line)
    assert str(error).startswith(f"{path}:{line}: {key}: ")
    for word in words:
        assert word in str(error)


def test_not_toml_and_a_missing_file_are_config_errors(write, tmp_path, monkeypatch):
    path = write("strict = \n")
    with pytest.raises(ir_core.ConfigError, match=r"not valid TOML.*line 1") as info:
        config.config_file()
    assert info.value.path == str(path)
    monkeypatch.setenv("IR_CORE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ir_core.ConfigError, match=r"absent\.toml: cannot read it"):
        config.config_file()


def test_a_bad_file_fails_the_first_plugin_load_and_every_use_until_fixed(write, monkeypatch):
    """In a fresh process: plugins are loaded once, so the first load is only seen there."""
    path = write('disable-plugins = ["example"]\nfusions = 3\n')
    code = (
        "import ir_core\ntry:\n ir_core.load_plugins()\nexcept ir_core.ConfigError as e:\n print(e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith(f"{path}:2: fusions: must be a list of names")


def test_pyproject_is_found_upward_and_the_nearest_one_wins(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.ir-core]\nreference = true\n")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    config.reload()
    assert config.config_file().path == str(tmp_path / "pyproject.toml")
    assert config.reference().source == f"file {tmp_path / 'pyproject.toml'}:2"
    # a nearer pyproject.toml without [tool.ir-core] stops the search: no settings
    (deep / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    assert config.reference().value is True  # read once, cached ...
    config.reload()  # ... until reloaded
    assert config.config_file().path is None and config.reference().source == "default"


def test_a_named_pyproject_is_read_from_its_tool_table(write):
    path = write('[project]\nname = "x"\n\n[tool.ir-core]\nplatform = "npu"\n', "pyproject.toml")
    assert config.lookup("platform") == config.Value("npu", f"file {path}:5")


def test_changing_ir_core_config_reads_the_new_file(write, tmp_path, monkeypatch):
    write("reference = true\n")
    assert config.reference().value is True
    other = tmp_path / "other.toml"
    other.write_text("reference = false\n")
    monkeypatch.setenv("IR_CORE_CONFIG", str(other))
    assert config.reference() == config.Value(False, f"file {other}:1")


# -- what each setting does --------------------------------------------------------------------


def test_priority_precedence_file_env_configure_set_priority(write, monkeypatch, alpha, beta):
    path = write("# engine\n[priority]\nrms_norm = ['cfg_alpha']\n")
    assert priority.resolve("rms_norm")[0] == "cfg_alpha"
    assert priority.origin("rms_norm") == f"file {path}:3"
    assert ir_core.explain("rms_norm", *_args()).provider == "cfg_alpha"

    monkeypatch.setenv("IR_CORE_OP_PRIORITY", "rms_norm=cfg_beta")
    assert priority.resolve("rms_norm")[0] == "cfg_beta"
    assert priority.origin("rms_norm") == "env IR_CORE_OP_PRIORITY"

    ir_core.configure(priority={"rms_norm": ["cfg_alpha", "native"]})
    assert priority.resolve("rms_norm") == ("cfg_alpha", "native")
    assert priority.origin("rms_norm") == "configure"

    with ir_core.set_priority(rms_norm=["cfg_beta", "native"]):
        assert priority.resolve("rms_norm") == ("cfg_beta", "native")
        assert priority.origin("rms_norm") == "set_priority"
    assert priority.origin("silu_and_mul") in {"default", "plugin defaults"}


def test_a_file_priority_naming_an_unknown_provider_names_file_and_line(write):
    path = write("[priority]\nrms_norm = 'native'\nsilu_and_mul = 'nosuch'\n")
    with pytest.raises(ir_core.PriorityError) as info:
        priority.resolve("rms_norm")
    assert str(info.value).startswith(f"{path}:3: priority: unknown provider 'nosuch'")


def test_plugin_allow_and_deny_lists_from_the_file(write, monkeypatch):
    path = write("plugins = ['example', 'oink']\ndisable-plugins = ['oink']\n")
    status = {r.name: (r.status, r.reason) for r in plugins.list_entry_points()}
    assert status["cuda"] == ("disabled", f"not in plugins in {path}:1")
    assert status["oink"] == ("disabled", f"in disable-plugins in {path}:2")
    assert status["example"][0] == "not loaded"  # allowed: would be loaded
    monkeypatch.setenv("IR_CORE_PLUGINS", "cuda")  # the env beats the file
    status = {r.name: (r.status, r.reason) for r in plugins.list_entry_points()}
    assert status["cuda"][0] == "not loaded"
    assert status["example"] == ("disabled", "not in IR_CORE_PLUGINS")


def test_the_file_applies_to_the_first_plugin_load(write):
    path = write("disable-plugins = ['example']\n")
    out = subprocess.run(
        [sys.executable, "-m", "ir_core.cli", "list-providers", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    example = next(p for p in json.loads(out)["plugins"] if p["name"] == "example")
    assert (example["status"], example["reason"]) == (
        "disabled",
        f"in disable-plugins in {path}:1",
    )


def test_strict_from_the_file_and_a_bad_env_value(write, monkeypatch):
    write("strict = true\n")
    assert plugins.strict() is True
    monkeypatch.setenv("IR_CORE_STRICT_PLUGINS", "off")
    assert plugins.strict() is False
    monkeypatch.setenv("IR_CORE_STRICT_PLUGINS", "maybe")
    with pytest.raises(ir_core.ConfigError, match="IR_CORE_STRICT_PLUGINS: 'maybe' is not"):
        plugins.strict()


def test_platform_from_the_file_and_the_env_beats_it(write, monkeypatch):
    path = write("platform = 'npu'\n")
    assert platform.detect() == ("npu", f"file {path}:1")
    monkeypatch.setenv("IR_CORE_PLATFORM", "xpu")
    assert platform.detect() == ("xpu", "IR_CORE_PLATFORM")


def test_fusions_from_the_file(write, monkeypatch):
    passes = FusionPassRegistry()
    passes.register("one", lambda gm: 0, order=1)
    passes.register("two", lambda gm: 0, order=2)
    assert passes.names() == ["one", "two"]
    write("fusions = ['-one']\n")
    assert [p.name for p in passes.selected()] == ["two"]
    monkeypatch.setenv("IR_CORE_FUSIONS", "none")
    assert passes.selected() == []
    monkeypatch.delenv("IR_CORE_FUSIONS")
    path = write("\nfusions = 'three'\n")
    with pytest.raises(FusionPassError) as info:
        passes.selected()
    assert str(info.value).startswith(f"fusions in {path}:2: unknown fusion pass 'three'")


# -- reference mode ----------------------------------------------------------------------------


def test_reference_mode_runs_native_eagerly(alpha, monkeypatch):
    ir_core.configure(priority={"rms_norm": ["cfg_alpha"]})
    x, w, eps = _args()
    torch.testing.assert_close(ir_core.ops.rms_norm(x, w, eps), NATIVE(x, w, eps) * 3)
    assert alpha.calls == 1

    monkeypatch.setenv("IR_CORE_REFERENCE", "1")  # read at the next decision, like the priority
    explanation = ir_core.explain("rms_norm", x, w, eps)
    assert explanation.provider == "native" and explanation.priority == ("native",)
    assert ("cfg_alpha", "reference mode (env IR_CORE_REFERENCE): every op runs native") in (
        explanation.skipped
    )
    torch.testing.assert_close(ir_core.ops.rms_norm(x, w, eps), NATIVE(x, w, eps))
    assert alpha.calls == 1  # the cached decision was dropped: native ran
    assert ir_core.bind("rms_norm", x, w, eps).provider == "native"

    ir_core.configure(reference=False)  # configure beats the env ...
    assert priority.resolve("rms_norm")[0] == "cfg_alpha"  # ... and kept the priority
    assert config.reference() == config.Value(False, "configure")
    ir_core.configure(reference=None)  # forgotten: the env applies again
    assert ir_core.explain("rms_norm", x, w, eps).provider == "native"


def test_reference_mode_from_the_file_and_configure(write, alpha):
    path = write("reference = true\n")
    ir_core.configure(priority={"rms_norm": ["cfg_alpha"]})
    assert ir_core.explain("rms_norm", *_args()).provider == "native"
    assert priority.origin("rms_norm") == f"reference mode (file {path}:1)"
    ir_core.configure()  # clears both: the file's reference mode applies
    assert config.reference().source == f"file {path}:1"
    with pytest.raises(TypeError, match="reference must be True, False or None"):
        ir_core.configure(reference="yes")


def test_reference_mode_changes_the_compile_guard():
    normal = priority.guard_key()
    ir_core.configure(reference=True)
    assert priority.guard_key() != normal and priority.priority_hash() != normal
    ir_core.configure(reference=None)
    assert priority.guard_key() == normal


def test_reference_mode_applies_to_compiled_graphs(alpha):
    def f(x, w):
        return ir_core.ops.rms_norm(x * 2, w, 1e-6) + 1

    ir_core.configure(priority={"rms_norm": ["cfg_alpha"]})
    compiled = torch.compile(f, backend="ir_core", fullgraph=True)
    x, w, _ = _args(8, 32)
    torch.testing.assert_close(compiled(x, w), NATIVE(x * 2, w, 1e-6) * 3 + 1)
    assert compile_report().providers() == {"rms_norm": {"cfg_alpha": 1}}

    ir_core.configure(reference=True)
    calls = alpha.calls
    torch.testing.assert_close(compiled(x, w), NATIVE(x * 2, w, 1e-6) + 1)
    assert compile_report().providers() == {"rms_norm": {"native": 1}}  # lowered again
    assert alpha.calls == calls

    ir_core.configure(reference=False)  # the provider's graph again
    torch.testing.assert_close(compiled(x, w), NATIVE(x * 2, w, 1e-6) * 3 + 1)
    assert alpha.calls == calls + 1


# -- the command line --------------------------------------------------------------------------


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ir_core_config_table_and_json(write, capsys, monkeypatch, alpha):
    path = write(
        "strict = false\nrequire = ['fp32_accumulate']\n[priority]\nrms_norm = 'cfg_alpha'\n"
    )
    monkeypatch.setenv("IR_CORE_DISABLE_PLUGINS", "oink")
    code, out, _ = _run(capsys, "config", "--json")
    data = json.loads(out)
    assert code == 0 and data["file"] == str(path)
    rows = {r["key"]: (r["value"], r["source"]) for r in data["settings"]}
    assert rows["strict"] == (False, f"file {path}:1")
    assert rows["require"] == (["fp32_accumulate"], f"file {path}:2")
    assert rows["disable-plugins"] == (["oink"], "env IR_CORE_DISABLE_PLUGINS")
    assert rows["reference"] == (False, "default")
    assert rows["priority.rms_norm"][1] == f"file {path}:4"
    assert rows["priority.rms_norm"][0][0] == "cfg_alpha"
    assert rows["platform"] == ("cpu", "default (detected by torch)")

    monkeypatch.setenv("COLUMNS", "300")  # one row per line, the file's path unwrapped
    code, out, _ = _run(capsys, "config")
    assert code == 0 and out.startswith(f"config file: {path}\n")
    line = next(row for row in out.splitlines() if row.startswith("require "))
    assert line.split() == ["require", "fp32_accumulate", "file", f"{path}:2"]


def test_ir_core_config_on_a_bad_file_is_one_line_and_exit_1(write, capsys):
    path = write("reference = true\nfusion = 'all'\n")
    code, out, err = _run(capsys, "config")
    assert code == 1 and out == ""
    assert err == f"ir-core: {path}:2: fusion: unknown key; known keys: " + (
        "priority, plugins, disable-plugins, strict, fusions, platform, reference, require\n"
    )


def test_explain_and_doctor_show_reference_mode(capsys, monkeypatch):
    monkeypatch.setenv("IR_CORE_REFERENCE", "yes")
    code, out, _ = _run(capsys, "explain", "rms_norm", "--shape", "3,64")
    assert code == 0
    assert "reference mode is on (env IR_CORE_REFERENCE): every op runs native" in out
    code, out, _ = _run(capsys, "explain", "rms_norm", "--json")
    assert json.loads(out)["reference_mode"] == "env IR_CORE_REFERENCE"
    section = doctor._ops()
    assert section.reference == "env IR_CORE_REFERENCE"
    assert section.render()[0] == (
        "reference mode is on (env IR_CORE_REFERENCE): every op runs native"
    )
    assert all(row["priority"] == ["native"] for row in section.rows)
