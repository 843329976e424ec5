"""The conformance kit as pytest tests: ``pytest --pyargs ir_core.conformance --ir-provider NAME``.

Each test calls one check of :mod:`ir_core.conformance.checks` (the code ``ir-core check``
runs) and turns its verdict into pytest's: a failure carries the check's message (max error,
where, tolerance; the guard added; the input written), a skip says why the check does not apply
(dtype not claimed, sample declined, provider unavailable, no such device here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ir_core.conformance import plugin
from ir_core.conformance.checks import (
    check_capabilities,
    check_compile,
    check_no_mutation,
    check_numerics,
    check_opcheck,
    check_supports_args,
)
from ir_core.conformance.errors import CheckFailed, CheckSkipped
from ir_core.conformance.targets import Case, TargetPlan

if not plugin.active():
    pytest.skip(
        "the ir-core conformance kit runs as: pytest --pyargs ir_core.conformance "
        "--ir-provider NAME",
        allow_module_level=True,
    )


def _verdict(check: Callable[[Any], None], value: Any) -> None:
    try:
        check(value)
    except CheckSkipped as exc:
        pytest.skip(str(exc))
    except CheckFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def test_claims(conformance_target: TargetPlan) -> None:
    """The target is checked: the provider is available, its device is here, and
    supports_args accepts at least one sample in this dtype (else: skipped, saying which)."""
    if conformance_target.skip:
        pytest.skip(conformance_target.skip)
    assert conformance_target.claimed_cases


def test_numerics(conformance_case: Case) -> None:
    _verdict(check_numerics, conformance_case)


def test_no_input_mutation(conformance_case: Case) -> None:
    _verdict(check_no_mutation, conformance_case)


def test_supports_args(conformance_case: Case) -> None:
    _verdict(check_supports_args, conformance_case)


def test_capabilities(conformance_case: Case) -> None:
    _verdict(check_capabilities, conformance_case)


def test_opcheck(conformance_case: Case) -> None:
    _verdict(check_opcheck, conformance_case)


def test_compile(conformance_target: TargetPlan) -> None:
    _verdict(check_compile, conformance_target)
