"""The conformance kit as a pytest suite: ``pytest --pyargs ir_core.conformance --ir-provider``.

Two promises are tested: the kit reports through pytest (ids per case, failures with the
check's message, skips with reasons, usage errors for bad options), and it stays out of every
other pytest run (no option, no fixture, no ir_core or torch import).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import _ir_core_pytest
import pytest
import torch

import ir_core
import ir_core.conformance

pytest_plugins = ("pytester",)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IR_CORE_", "PYTEST_"))}
    env.pop("TRITON_INTERPRET", None)
    return env


def _pytest(*argv: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_clean_env(),
        timeout=300,
    )


# -- staying out of other runs ----------------------------------------------------------------


def test_this_run_has_no_conformance_option_or_plugin(request):
    """``pytest packages/ir-core/tests`` (this very run) does not activate the kit."""
    assert request.config.pluginmanager.get_plugin("ir_core.conformance.plugin") is None
    assert not hasattr(request.config.option, "ir_provider")
    # the entry-point module is there, and inert
    assert request.config.pluginmanager.has_plugin("ir_core_conformance")


def test_an_unrelated_project_is_unaffected(tmp_path):
    (tmp_path / "test_unrelated.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_nothing_of_ours_was_imported():
                assert "ir_core" not in sys.modules
                assert "torch" not in sys.modules
                assert "ir_core.conformance.plugin" not in sys.modules
            """
        )
    )
    result = _pytest("-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    result = _pytest("--help", cwd=tmp_path)
    assert result.returncode == 0 and "--ir-provider" not in result.stdout
    result = _pytest("--fixtures", cwd=tmp_path)
    assert "conformance" not in result.stdout


def test_naming_the_kit_activates_its_options(tmp_path):
    result = _pytest("--pyargs", "ir_core.conformance", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--ir-provider=NAME" in result.stdout and "ir-core conformance kit" in result.stdout


@pytest.mark.parametrize(
    "args, pyargs, expected",
    [
        (["ir_core.conformance"], True, True),
        (["ir_core.conformance.test_provider::test_numerics"], True, True),
        (["ir_core.conformance"], False, False),  # without --pyargs it is a (missing) path
        (["ir_core"], True, False),
        (["tests", "ir_core.conformancex"], True, False),
        (["packages/ir-core/tests"], False, False),
    ],
)
def test_which_command_lines_name_the_kit(args, pyargs, expected):
    assert _ir_core_pytest.names_the_kit(args, pyargs) is expected


def test_a_path_inside_the_kit_names_it():
    kit = os.path.dirname(ir_core.conformance.__file__)
    assert _ir_core_pytest.names_the_kit([kit], False)
    assert _ir_core_pytest.names_the_kit([os.path.join(kit, "test_provider.py")], False)
    assert not _ir_core_pytest.names_the_kit([os.path.dirname(kit)], False)


# -- reporting through pytest -----------------------------------------------------------------


@pytest.fixture
def kit(pytester):
    """Run the kit in-process, so providers registered by this test are visible to it."""

    def run(*argv: str):
        return pytester.runpytest_inprocess(
            "--pyargs", "ir_core.conformance", "-p", "no:cacheprovider", "-rs", *argv
        )

    return run


def test_kit_passes_for_native(kit):
    result = kit(
        "--ir-provider", "native", "--ir-dtype", "bf16", "-k", "not opcheck and not compile"
    )
    assert result.ret == pytest.ExitCode.OK
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] > 50 and "failed" not in outcomes
    result.stdout.fnmatch_lines(["*ir-core conformance: provider native*"])
    # one test per check and sample, named for the target and the sample
    result.stdout.no_fnmatch_line("*FAILED*")
    listing = kit("--ir-provider", "native", "--ir-dtype", "bf16", "--co", "-q")
    listing.stdout.fnmatch_lines(
        [
            "*test_numerics[[]rms_norm-native-cpu-bfloat16-strided_rows[]]",
            "*test_supports_args[[]dual_rms_norm-native-cpu-bfloat16-3d[]]",
            "*test_compile[[]fused_add_rms_norm-native-cpu-bfloat16[]]",
        ]
    )


def test_kit_reports_a_wrong_impl_with_max_error_and_tolerance(kit, plugin):
    def wrong(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        weight_bias: float = 0.0,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        return (
            ir_core.get_op("rms_norm").native(x, weight, epsilon, weight_bias, variance_size) + 0.5
        )

    def register_impls(registry):
        registry.register_impl("rms_norm", "shifted", wrong, device_types=("cpu",))

    plugin(register_impls=register_impls)
    result = kit("--ir-provider", "shifted", "--ir-dtype", "fp16", "-k", "numerics")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test_numerics*rms_norm-shifted-cpu-float16-3d*",
            "*rms_norm-shifted-cpu-float16 [[]3d[]]: output 0:*max error*"
            "tolerance atol=0.001 rtol=0.001 for torch.float16*",
        ]
    )
    # the zero-token sample has nothing to be wrong about
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == len(ir_core.get_op("rms_norm").sample_inputs(torch.float16)) - 1


def test_kit_skips_with_reasons(kit, plugin):
    def register_impls(registry):
        registry.register_impl(
            "rms_norm",
            "absent",
            ir_core.get_op("rms_norm").native,  # never runs: the provider is unavailable
            device_types=("cpu",),
            available=lambda: (False, "libabsent.so not found"),
        )

    plugin(register_impls=register_impls)
    result = kit("--ir-provider", "absent", "--ir-dtype", "fp32")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*not checked rms_norm-absent-cpu-float32: unavailable: libabsent.so not found*"]
    )
    result.stdout.fnmatch_lines(["SKIPPED*unavailable: libabsent.so not found*"])


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the ir-core conformance kit needs --ir-provider NAME; providers here: native"),
        (["--ir-provider", "nosuch"], "unknown provider 'nosuch'; known providers: native"),
        (["--ir-provider", "native", "--ir-dtype", "int8"], "unknown dtype 'int8'"),
        (["--ir-provider", "native", "--ir-op", "layer_norm"], "unknown op 'layer_norm'"),
    ],
)
def test_kit_usage_errors(kit, argv, message):
    result = kit(*argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
