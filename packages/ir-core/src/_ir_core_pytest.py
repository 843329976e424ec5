"""ir-core's pytest entry point: switches the conformance kit on only when it is asked for.

pytest parses its command line before it collects anything, and a ``conftest.py`` inside a
package named with ``--pyargs`` is loaded only during collection, too late for the kit's
``--ir-provider`` option. pytest loads this module (entry point group ``pytest11``) in every
run of an environment where ir-core is installed, so it does nothing else: it imports neither
ir_core nor torch, adds no option and no fixture, and registers ``ir_core.conformance.plugin``
only when the command line names the kit::

    pytest --pyargs ir_core.conformance --ir-provider NAME
    pytest path/to/site-packages/ir_core/conformance --ir-provider NAME

With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` add ``-p ir_core.conformance.plugin`` instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

KIT = "ir_core.conformance"
PLUGIN = "ir_core.conformance.plugin"


def _kit_directory() -> str | None:
    """Where ir_core/conformance lives, found without importing ir_core (and torch)."""
    spec = importlib.util.find_spec("ir_core")
    if spec is None or not spec.submodule_search_locations:
        return None
    package_directory = next(iter(spec.submodule_search_locations))
    return os.path.realpath(os.path.join(package_directory, "conformance"))


def names_the_kit(args: Sequence[str], pyargs: bool) -> bool:
    """True when one of pytest's positional arguments is the kit or something inside it."""
    kit_directory: str | None = None
    for arg in args:
        target = str(arg).split("::", 1)[0]
        if pyargs and (target == KIT or target.startswith(KIT + ".")):
            return True
        if "conformance" in target and os.path.exists(target):
            kit_directory = kit_directory or _kit_directory()
            real = os.path.realpath(target)
            if kit_directory and (real == kit_directory or real.startswith(kit_directory + os.sep)):
                return True
    return False


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    namespace = early_config.known_args_namespace
    if names_the_kit(getattr(namespace, "file_or_dir", None) or [], bool(namespace.pyargs)):
        early_config.pluginmanager.import_plugin(PLUGIN)
