"""The ir-core command line, run in-process."""

from __future__ import annotations

import json

import pytest

from ir_core import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_providers_table_and_json(capsys):
    code, out, _ = run(capsys, "list-providers")
    assert code == 0 and "platform: cpu" in out and "native" in out
    code, out, _ = run(capsys, "list-providers", "--json")
    data = json.loads(out)
    native = next(p for p in data["providers"] if p["provider"] == "native")
    assert native["status"] == "available" and "rms_norm" in native["ops"]
    assert data["platform"] == "cpu"


def test_list_providers_no_load_executes_no_plugin_code(capsys, monkeypatch):
    import ir_core
    from ir_core import plugins

    monkeypatch.setattr(plugins, "load_plugins", lambda: pytest.fail("plugins were loaded"))
    # the registry's ensure_loaded hook (installed by the plugin layer) is the other way in
    monkeypatch.setattr(ir_core.registry, "ensure_loaded", lambda: pytest.fail("loaded"))
    code, out, _ = run(capsys, "list-providers", "--no-load", "--json")
    assert code == 0 and "plugins" in json.loads(out)


def test_list_ops(capsys):
    code, out, _ = run(capsys, "list-ops", "--json")
    ops = {o["op"]: o for o in json.loads(out)["ops"]}
    assert set(ops) >= {"rms_norm", "fused_add_rms_norm", "dual_rms_norm"}
    assert ops["rms_norm"]["schema"].startswith("ir_core::rms_norm(Tensor x, Tensor? weight")
    assert ops["rms_norm"]["priority"][-1] == "native"
    assert ops["rms_norm"]["capabilities"]["native"] == ["deterministic"]
    code, out, _ = run(capsys, "list-ops")
    assert code == 0 and "ir_core::dual_rms_norm" in out


def test_explain(capsys):
    code, out, _ = run(capsys, "explain", "rms_norm", "--shape", "3,64", "--dtype", "fp16")
    assert code == 0 and out.startswith("rms_norm -> native")
    code, out, _ = run(capsys, "explain", "fused_add_rms_norm", "--device", "cuda", "--json")
    data = json.loads(out)
    assert data["provider"] == "native" and data["device"] == "cuda"
    assert data["stand_in_tensors"] == "meta"  # no CUDA here
    assert data["capabilities"] == ["deterministic"]  # native's


def test_explain_shows_the_chosen_impls_capabilities(capsys, monkeypatch, plugin):
    import ir_core

    native = ir_core.get_op("rms_norm").native

    def register_impls(registry):
        registry.register_impl(
            "rms_norm",
            "rowwise",
            native,
            device_types=("cpu",),
            capabilities={"batch_invariant", "acme_exact"},
        )

    plugin(register_impls=register_impls)
    monkeypatch.setenv("IR_CORE_OP_PRIORITY", "rms_norm=rowwise")
    code, out, _ = run(capsys, "explain", "rms_norm")
    assert code == 0
    assert out.splitlines()[:2] == [
        "rms_norm -> rowwise  (priority: rowwise, native)",
        "  capabilities: acme_exact, batch_invariant",
    ]
    code, out, _ = run(capsys, "explain", "rms_norm", "--require", "cuda_graph_safe", "--json")
    data = json.loads(out)
    assert code == 1 and data["provider"] is None and data["capabilities"] == []
    code, out, _ = run(capsys, "list-ops", "--json")
    (rms_norm,) = [o for o in json.loads(out)["ops"] if o["op"] == "rms_norm"]
    assert rms_norm["capabilities"]["rowwise"] == ["acme_exact", "batch_invariant"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["explain", "layer_norm"], ["unknown op 'layer_norm'", "known ops"]),
        (["explain", "rms_norm", "--shape", "4"], ["--shape expects N,H"]),
        (["explain", "rms_norm", "--dtype", "int8"], ["--dtype must be one of"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["required"]),
    ],
)
def test_usage_errors_exit_2(capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    for word in words:
        assert word in err


def test_bad_priority_exits_1_with_the_reason(capsys, monkeypatch):
    monkeypatch.setenv("IR_CORE_OP_PRIORITY", "rms_norm=nosuch")
    code, _, err = run(capsys, "explain", "rms_norm")
    assert code == 1 and "unknown provider 'nosuch'" in err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for command in ("list-providers", "list-ops", "explain"):
        assert command in out
