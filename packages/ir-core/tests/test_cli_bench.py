"""``ir-core bench``: every impl timed side by side (run in-process, tiny shapes)."""

from __future__ import annotations

import json

import pytest
import torch

import ir_core
from ir_core import cli
from ir_core.bench import BenchRow, bytes_moved, noisy_warning, table_rows


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


FAST = ("--shape", "8,64", "--min-time", "0.01")


def test_bench_json_times_every_runnable_impl(capsys):
    code, out, _ = run(capsys, "bench", "rms_norm", *FAST, "--dtype", "fp32", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["shape"] == [8, 64] and data["dtype"] == "float32" and data["device"] == "cpu"
    rows = {r["provider"]: r for r in data["impls"]}
    # native and the installed example provider run on cpu; dispatch is timed too
    for name in ("native", "example", "ir_core.ops.rms_norm -> native"):
        assert rows[name]["status"] == "ok" and rows[name]["matches_native"] is True
        assert rows[name]["median_us"] > 0 and rows[name]["gb_per_s"] > 0
        assert rows[name]["runs"] >= 5
    assert rows["native"]["selected_by_dispatch"] is True
    # a GPU-only provider is listed with the reason it was not timed
    assert rows["flashinfer"]["status"] == "skipped"
    assert rows["flashinfer"]["reason"].startswith("unavailable:")


def test_bandwidth_counts_each_argument_and_output_once():
    op = ir_core.get_op("fused_add_rms_norm")
    sample = op.example_inputs(8, 64, torch.bfloat16, "cpu")
    outputs = op.native(*sample.args, **sample.kwargs)
    # x and residual (8x64 bf16), weight (64 bf16) in; out and residual_out (8x64 bf16) out
    assert bytes_moved(sample, outputs) == (8 * 64 * 2) * 2 + 64 * 2 + (8 * 64 * 2) * 2


def test_bench_text_lists_untimed_impls_below_the_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for every row on one line
    code, out, err = run(capsys, "bench", "dual_rms_norm", *FAST)
    assert code == 0
    table = out.split("not timed:")[0]
    assert "native" in table and "ir_core.ops.dual_rms_norm -> native" in table
    assert "flashinfer" not in table  # no dual kernel, not an impl of this op
    assert "GB/s" in out.splitlines()[2]
    assert "ir-core bench dual_rms_norm: shape 8,64" in err


def test_a_wrong_impl_is_flagged_and_exits_1(capsys, plugin):
    def rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return torch.zeros_like(x)

    def register_impls(registry):
        registry.register_impl("rms_norm", "zeros", rms_norm, device_types=("cpu",))

    plugin(register_impls=register_impls)
    code, out, _ = run(capsys, "bench", "rms_norm", *FAST, "--json")
    rows = {r["provider"]: r for r in json.loads(out)["impls"]}
    assert code == 1
    assert rows["zeros"]["matches_native"] is False and "max error" in rows["zeros"]["reason"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["bench", "layer_norm"], ["unknown op 'layer_norm'"]),
        (["bench", "rms_norm", "--shape", "8"], ["--shape expects N,H"]),
        (["bench", "rms_norm", "--dtype", "int4"], ["--dtype must be one of"]),
        (["bench", "rms_norm", "--device", "cuda:7"], ["no such device"]),
        (["bench", "rms_norm", "--min-time", "0"], ["--min-time must be > 0"]),
    ],
)
def test_bench_usage_errors_exit_2(capsys, argv, words):
    if "cuda:7" in argv and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    for word in words:
        assert word in err


def test_bench_reports_the_spread_of_the_calls(capsys):
    code, out, _ = run(capsys, "bench", "rms_norm", *FAST, "--dtype", "fp32", "--json")
    data = json.loads(out)
    assert code == 0 and isinstance(data["noisy"], bool)
    for row in data["impls"]:
        if row["status"] != "ok":
            continue
        assert 0 < row["min_us"] <= row["median_us"] <= row["max_us"]
        assert 0 <= row["iqr_us"] <= row["max_us"] - row["min_us"]
        assert row["noisy"] == (row["iqr_us"] / row["median_us"] > 0.5)
    code, out, _ = run(capsys, "bench", "rms_norm", *FAST, "--dtype", "fp32")
    header = out.splitlines()[2].split()
    assert header[:4] == ["impl", "min", "median", "max"]


def test_a_noisy_row_is_flagged_and_named():
    steady = BenchRow("native", "ok", median_s=1e-4, min_s=0.9e-4, max_s=3e-4, iqr_s=0.1e-4)
    noisy = BenchRow("example", "ok", median_s=1e-4, min_s=0.5e-4, max_s=9e-3, iqr_s=0.6e-4)
    assert not steady.noisy and noisy.noisy
    assert noisy_warning([steady]) == ""
    warning = noisy_warning([steady, noisy])
    assert warning.startswith("warning: noisy timings (example)") and "--min-time" in warning
    _, body = table_rows([steady, noisy])
    assert body[1][-1].startswith("noisy") and "noisy" not in body[0][-1]
