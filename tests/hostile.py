"""Plugin distributions built on the fly, as a careless vendor would ship them.

:func:`install` writes a real installed distribution -- a ``*.dist-info`` directory with its
``METADATA`` and ``entry_points.txt``, next to the plugin's module -- into a directory that a
child process gets on its ``PYTHONPATH``, so ``importlib.metadata`` finds it exactly as it finds
a pip-installed wheel. :func:`run` starts that process with no inherited ``IR_CORE_*`` setting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: The plugins' rms_norm kernel: the installed example plugin's (tests/plugins), a real one.
KERNEL = """
import torch
import ir_core
from ir_example_plugin.plugin import rms_norm as kernel
"""


def install(
    site: Path,
    entry_point: str,
    source: str,
    *,
    distribution: str | None = None,
    module: str | None = None,
    summary: str | None = "a plugin built by ir-core's tests",
    version: str = "0.1.0",
) -> str:
    """Install a plugin: module ``module`` holding ``source`` (dedented, after :data:`KERNEL`),
    declared as entry point ``entry_point`` by the distribution ``distribution``; ``summary``
    None leaves the optional ``Summary:`` field out of METADATA. Returns the module name."""
    distribution = distribution or f"ir-test-{entry_point.replace('_', '-')}"
    module = module or f"ir_test_{entry_point}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(KERNEL + textwrap.dedent(source))
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
    if summary is not None:
        metadata += f"Summary: {summary}\n"
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(f"[ir_core.plugins]\n{entry_point} = {module}\n")
    return module


def run(
    args: list[str], sites: list[Path], *, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with ``sites`` first on ``sys.path`` (in that order) and ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IR_CORE_")}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [*map(str, sites), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    full_env.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
