"""The conformance kit's pytest plugin: its options, parametrization and report header.

Registered by ir-core's ``pytest11`` entry point only when the command line names
``ir_core.conformance`` (see ``_ir_core_pytest``), or explicitly with
``-p ir_core.conformance.plugin``; other pytest runs never see these options or fixtures.

Each test in :mod:`ir_core.conformance.test_provider` is parametrized over targets
(op-provider-device-dtype) or over their samples, so a failure's test id says exactly which
case broke, and ``-k`` selects any slice (``-k "bfloat16 and numerics"``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..registry import registry
from .checks import CHECK_NAMES
from .errors import ProviderUnusable
from .targets import Case, TargetPlan, parse_dtypes, plan

_PLANS = pytest.StashKey[list[TargetPlan]]()
_active = False


def active() -> bool:
    """True while a pytest session runs with this plugin registered."""
    return _active


def _values(config: pytest.Config, name: str) -> list[str]:
    """An option given several times and/or comma-separated, as one list."""
    return [
        v.strip() for given in config.getoption(name) or [] for v in given.split(",") if v.strip()
    ]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ir-core conformance", "ir-core conformance kit")
    group.addoption(
        "--ir-provider",
        action="append",
        default=[],
        metavar="NAME",
        help="provider to check (repeat or comma-separate for several); required",
    )
    group.addoption(
        "--ir-op", action="append", default=[], metavar="OP", help="only these ops (default: all)"
    )
    group.addoption(
        "--ir-dtype",
        action="append",
        default=[],
        metavar="DTYPE",
        help="only these dtypes: float32/fp32, float16/fp16, bfloat16/bf16 (default: all three)",
    )
    group.addoption(
        "--ir-device",
        action="append",
        default=[],
        metavar="TYPE",
        help="only these device types (default: every type the impl declares that is present)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Plan the targets once; last, so plugins that register providers in their own
    ``pytest_configure`` (an engine's test setup) are seen."""
    global _active
    if config.getoption("help") or config.getoption("version"):
        return
    providers = _values(config, "ir_provider")
    registry.ensure_loaded()
    known = registry.providers()
    if not providers:
        raise pytest.UsageError(
            "the ir-core conformance kit needs --ir-provider NAME; providers here: "
            + ", ".join(known)
        )
    try:
        dtypes = parse_dtypes(_values(config, "ir_dtype"))
        plans = [
            p
            for provider in providers
            for p in plan(
                provider,
                ops=_values(config, "ir_op") or None,
                dtypes=dtypes or None,
                devices=_values(config, "ir_device") or None,
            )
        ]
    except ProviderUnusable as exc:  # a broken provider is a failure, not a usage error
        pytest.exit(f"ir-core conformance: {exc}", returncode=pytest.ExitCode.TESTS_FAILED)
    except (KeyError, ValueError) as exc:
        raise pytest.UsageError(f"ir-core conformance: {exc.args[0]}") from None
    config.stash[_PLANS] = plans
    _active = True


def pytest_unconfigure(config: pytest.Config) -> None:
    global _active
    _active = False


def pytest_report_header(config: pytest.Config) -> list[str]:
    plans = config.stash.get(_PLANS, [])
    checked = [p for p in plans if not p.skip]
    providers = ", ".join(dict.fromkeys(p.target.provider for p in plans)) or "none"
    lines = [
        f"ir-core conformance: provider {providers}; {len(checked)} of {len(plans)} targets "
        f"checked; checks: {', '.join(CHECK_NAMES)}"
    ]
    lines += [f"  not checked {p.target.id}: {p.skip}" for p in plans if p.skip]
    return lines


def _cases(plans: list[TargetPlan]) -> Iterator[Case]:
    for p in plans:
        if not p.skip:
            yield from p.cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    plans = metafunc.config.stash.get(_PLANS, None)
    if plans is None:
        return
    if "conformance_case" in metafunc.fixturenames:
        cases = list(_cases(plans))
        metafunc.parametrize("conformance_case", cases, ids=[c.id for c in cases])
    if "conformance_target" in metafunc.fixturenames:
        metafunc.parametrize("conformance_target", plans, ids=[p.target.id for p in plans])
