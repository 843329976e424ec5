"""``ir-core new-provider NAME``: the files of a provider package that passes the kit as made.

The templates below are the smallest complete provider: an entry point, the hooks, one correct
``rms_norm`` impl with its ``supports_args`` and its lazily loaded library, all built on
:mod:`ir_core.kit`, and a test that runs the conformance kit. A vendor replaces the kernel body,
the library it loads and the device types, and keeps the rest; ``tox.ini`` runs the
conformance test on each torch release from ir-core's floor to the one it is developed on.
``$name`` is the provider name (an identifier), ``$dist`` the distribution name
(``ir-provider-<name>``), ``$module`` the import name (``ir_provider_<name>``).
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from ..op import NATIVE
from ..version import __version__

#: The torch minor releases the generated tox.ini tests on: ir-core's floor (torch>=2.6 in its
#: metadata) up to the release ir-core is developed on.
TORCH_MINORS = tuple(range(6, 14))

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "$dist"
version = "0.1.0"
description = "$name kernels for ir-core"
readme = "README.md"
requires-python = ">=3.10"
# torch comes through ir-core: never pin it here, the engine chooses its torch.
dependencies = ["ir-core>=$core_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How ir-core finds this provider: a module carrying @ir_core.hookimpl functions.
[project.entry-points."ir_core.plugins"]
$name = "$module.plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/$module"]
"""

README = """\
# $dist

The `$name` provider for [ir-core](https://pypi.org/project/ir-core/): kernels for ir-core's
ops, found through the `ir_core.plugins` entry point once this wheel is installed.

```bash
pip install -e '.[test]'
ir-core list-providers                 # $name is listed, with its status
ir-core explain rms_norm --dtype bf16  # which impl runs, and why the others do not
pytest tests                           # the conformance kit on $name
ir-core check --provider $name         # the same checks, as a table
ir-core bench rms_norm                 # $name next to every other impl
```

Replace the body of `$module.rms_norm.rms_norm` with your kernel, set `DEVICE_TYPES`,
`SUPPORTED_DTYPES` and `_load()` (the library it imports) to what it needs, and keep the
conformance test passing. `tox` runs the same tests on every torch release in `tox.ini`
(`tox -e torch2.13` for one); trim its `env_list` to the releases you support.
See ir-core's `docs/writing-a-provider.md`.
"""

INIT = '''\
"""The $name provider for ir-core (its plugin is :mod:`$module.plugin`)."""

__version__ = "0.1.0"
'''

PLUGIN = '''\
"""ir-core plugin of $dist: registers the `$name` provider.

Found through the entry point `$name = "$module.plugin"` in the group `ir_core.plugins`.
Keep this module cheap to import: ir-core imports it on first dispatch. The kernel library is
imported by `rms_norm.LIBRARY` the first time ir-core considers `$name`, so a missing library
makes the provider "unavailable: <reason>" instead of quarantining the plugin.
"""

from __future__ import annotations

from typing import Any

import ir_core
from ir_core import kit

from . import rms_norm

#: The default order per platform, e.g. `{"cuda": {"rms_norm": [rms_norm.PROVIDER]}}`. Leave it
#: empty until `ir-core bench rms_norm` on that platform shows $name wins; users can always opt
#: in with IR_CORE_OP_PRIORITY="rms_norm=$name" or `with ir_core.set_priority(rms_norm=["$name"])`.
PRIORITY: dict[str, dict[str, list[str]]] = {}


@ir_core.hookimpl
def ir_plugin_info() -> dict[str, Any]:
    return kit.plugin_info(
        name="$name",
        description="$name kernels for ir-core",
    )


@ir_core.hookimpl
def register_impls(registry: ir_core.Registry) -> None:
    kit.register_impls(
        registry,
        rms_norm.PROVIDER,
        # {op: (module.<op>, module.<op>_supports)}: one name per op you add
        kit.impls_of(rms_norm, "rms_norm"),
        device_types=rms_norm.DEVICE_TYPES,
        available=rms_norm.LIBRARY.available,
    )


@ir_core.hookimpl
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    return kit.priorities_for(platform, PRIORITY)
'''

KERNEL = '''\
"""The `$name` impl of ir-core's `rms_norm`: the kernel, its predicate and its library.

The signature must be the op's exactly (names, annotations, defaults): ir-core checks it at
registration and quarantines the plugin on a mismatch. The semantics are ir-core's native
`rms_norm`: all arithmetic in fp32, rounded once to x's dtype at the end.
"""

from __future__ import annotations

from types import ModuleType

import torch
from ir_core import kit

PROVIDER = "$name"

#: The torch device types the kernel runs on ("cuda" also covers ROCm, as in torch).
DEVICE_TYPES: tuple[str, ...] = ("cpu",)

#: The activation and weight dtypes the kernel loads and stores.
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _load() -> tuple[ModuleType | None, str]:
    """Import the kernel library and check what it needs (device, capability, version):
    `(library, "")`, or `(None, reason)` -- the reason ir-core shows for "unavailable".

    Runs once, the first time ir-core considers `$name`. Replace the stand-in (torch itself)
    with your library's module; `kit.import_module` turns any import failure into a reason.
    """
    return kit.import_module("torch")


#: The library, loaded lazily: `LIBRARY.available` is the provider's availability check,
#: `LIBRARY.loaded()` what `supports_args` may read (it never imports), `LIBRARY.require()`
#: what the kernel calls.
LIBRARY = kit.LazyVendor(PROVIDER, _load)


def rms_norm_supports(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> bool:
    """Which calls the kernel takes. Read dtypes, devices, ranks, strides and the non-tensor
    arguments only (never values, never the number of tokens): ir-core also calls this on
    FakeTensors with symbolic token counts while compiling, and caches the answer per layout.
    The `kit` predicates decide what is statically known without adding guards."""
    return (
        x.dtype in SUPPORTED_DTYPES
        and (weight is None or weight.dtype in SUPPORTED_DTYPES)
        and kit.has_unit_last_stride(x)
    )


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    epsilon: float,
    weight_bias: float = 0.0,
    variance_size: int | None = None,
) -> torch.Tensor:
    """RMSNorm over the last dimension of `x` (shape `(..., H)`), returned in x's dtype.

    Replace this body with your kernel's launch. It must not write into its inputs: a kernel
    that works in place gets `kit.owned_rows(x)`, a copy it may overwrite.
    """
    library = LIBRARY.require()  # the stand-in library is torch itself
    xf = x.float()
    columns = xf if variance_size is None else xf[..., :variance_size]
    out = xf * library.rsqrt(columns.square().mean(dim=-1, keepdim=True) + epsilon)
    if weight is not None:
        out = out * (weight.float() + weight_bias)
    return out.to(x.dtype)
'''

TEST = '''\
"""The ir-core conformance kit on `$name`: numerics against native in fp32/fp16/bf16 on the
op's sample inputs, no input mutation, a FakeTensor- and symbolic-shape-safe supports_args,
torch.library.opcheck and lowering under torch.compile."""

from __future__ import annotations

import subprocess
import sys

import ir_core

PROVIDER = "$name"


def test_provider_is_registered() -> None:
    ir_core.load_plugins()
    impl = ir_core.get_op("rms_norm").impls.get(PROVIDER)
    assert impl is not None, "the plugin was not loaded: is this package installed?"
    assert impl.status() == (True, "")


def test_conformance_kit() -> None:
    """Same as: pytest --pyargs ir_core.conformance --ir-provider $name"""
    kit = ["--pyargs", "ir_core.conformance", "--ir-provider", PROVIDER]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *kit, "-q", "-rs", "-p", "no:cacheprovider"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
'''

TOX = """\
# The conformance kit on each torch release $dist supports: `tox` runs them all,
# `tox -e torch2.13` one. torch is chosen here, never in pyproject.toml: the engine using
# this provider picks its torch. On Linux the PyPI torch wheels are CUDA builds; for CPU-only
# test machines add `PIP_INDEX_URL=https://download.pytorch.org/whl/cpu` (tox passes PIP_*).
[tox]
requires = tox>=4
env_list = torch2.{$torch_factors}

[testenv]
description = ir-core's conformance kit on $name, torch {env_name}
extras = test
deps =
$torch_deps
commands =
    python -c "import torch; print('torch', torch.__version__)"
    pytest tests -q {posargs}
    ir-core check --provider $name
"""

_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ScaffoldError(ValueError):
    """The name or the output directory cannot be used; the message says why."""


def names_for(provider: str) -> dict[str, str]:
    """The template's substitutions for ``provider``."""
    if not _PROVIDER_NAME.fullmatch(provider) or keyword.iskeyword(provider):
        raise ScaffoldError(
            f"provider name {provider!r} must be a lowercase identifier "
            "(letters, digits, '_', starting with a letter), e.g. 'myvendor'"
        )
    if provider == NATIVE:
        raise ScaffoldError("'native' is each op's own semantics, not a provider name")
    return {
        "name": provider,
        "dist": f"ir-provider-{provider.replace('_', '-')}",
        "module": f"ir_provider_{provider}",
        "core_version": ".".join(__version__.split(".")[:2]),
        "torch_factors": ",".join(str(minor) for minor in TORCH_MINORS),
        "torch_deps": "\n".join(
            f"    torch2.{minor}: torch==2.{minor}.*" for minor in TORCH_MINORS
        ),
    }


def files_for(provider: str) -> dict[str, str]:
    """Relative path -> content of every file of the package for ``provider``."""
    names = names_for(provider)
    module = names["module"]
    templates = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{module}/__init__.py": INIT,
        f"src/{module}/plugin.py": PLUGIN,
        f"src/{module}/rms_norm.py": KERNEL,
        "tests/test_conformance.py": TEST,
        "tox.ini": TOX,
    }
    return {path: Template(text).substitute(names) for path, text in templates.items()}


def scaffold(provider: str, output: str | Path = ".") -> Path:
    """Write the package for ``provider`` into ``output/<dist>`` and return that directory.

    Refuses (ScaffoldError) to write into a directory that already has files.
    """
    files = files_for(provider)
    root = Path(output) / names_for(provider)["dist"]
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} already exists and is not empty")
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root
