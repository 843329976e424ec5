"""Hook specifications: the manual for everyone who writes an ir-core plugin.

A plugin is an installed distribution with an entry point in the group ``ir_core.plugins`` whose
value is a module (or object) carrying functions marked ``@ir_core.hookimpl``::

    [project.entry-points."ir_core.plugins"]
    myvendor = "ir_provider_myvendor.plugin"

A plugin implements only the hooks it needs, with only the parameters it uses (pluggy passes
arguments by name). ir-core calls each plugin's hooks separately, so a plugin that raises is
quarantined alone: its registrations are rolled back, the reason and traceback are recorded and
shown by ``ir-core list-providers``, and every other plugin keeps working.

Hooks are called in this order when plugins load (lazily, on first dispatch, first
``list-providers`` or an explicit ``ir_core.load_plugins()``), all of them during the load, so
that what ``ir-core list-providers`` and strict mode say is what dispatch will do:

1. ``ir_plugin_info``          -- checked before anything else (``api_version``)
2. ``register_ops``            -- for every plugin, so that impls of new ops can follow
3. ``register_impls``
4. ``detect_platform``         -- the first plugin (in load order) that answers wins
5. ``platform_priority``       -- for that platform (asked again if the platform changes)
6. ``register_fusion_passes``

A hook that raises anything (``SystemExit`` included; ``KeyboardInterrupt`` excepted) or
answers something other than what its spec says quarantines its plugin. Hooks may be asked
more than once (after another plugin is quarantined, the answers are asked again), so they
should answer from what they are given, without side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # annotations only: the manual names the types, the model layer imports none
    from .compile.passes import FusionPassRegistry
    from .registry import Registry

PROJECT_NAME = "ir_core"

#: The plugin API this ir-core speaks; a plugin built for another is quarantined.
API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: The marker plugins put on their hook functions.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def ir_plugin_info() -> dict[str, Any] | None:
    """Describe the plugin; optional.

    Return a dict with any of these keys:

    - ``name``: a short display name (default: the entry-point name);
    - ``api_version``: the ``ir_core.API_VERSION`` the plugin was built for. A plugin that
      declares another version is quarantined instead of loaded, because the registry and hook
      signatures it was written against may differ;
    - ``description``: one line shown by ``ir-core list-providers``
      (default: the distribution's summary).
    """


@hookspec
def register_ops(registry: Registry) -> None:
    """Declare new ops, each with its native semantics.

    Call ``registry.register_op(fn, name=None, tolerances=None, validate=None,
    sample_inputs=None, example_inputs=None, compare=None)`` where ``fn`` is a fully annotated
    native PyTorch function: its name and annotations become the op's schema
    (``torch.ops.ir_core.<name>``), its body is the reference every other implementation is
    checked against. ``validate(*args)``
    raises TypeError/ValueError naming the op and argument; ``sample_inputs(dtype, device)``
    (a ``torch.dtype`` and a ``torch.device``) returns the :class:`ir_core.Sample` cases the
    conformance kit checks every impl on; ``example_inputs(num_tokens, hidden_size, dtype,
    device)`` returns one representative :class:`ir_core.Sample` for ``ir-core explain``,
    ``bench`` and ``doctor``; ``compare`` (optional) judges outputs that a per-dtype tolerance
    cannot (fp8 codes, by their dequantized values: see :class:`ir_core.op.Comparison`). Fused
    ops contributed by fusion packages are declared here.

    :param registry: the process-wide :class:`ir_core.Registry`.
    """


@hookspec
def register_impls(registry: Registry) -> None:
    """Register kernels for ops.

    Call ``registry.register_impl(op, provider, fn, *, device_types, supports_args=None,
    available=True, capabilities=())`` or use the decorator ``@registry.impl(op, provider,
    device_types=...)``.

    - ``fn`` must have exactly the op's signature: parameter names, annotations and defaults are
      compared with the op's native function, and a mismatch quarantines the plugin.
    - ``device_types``: the torch device types (``"cuda"``, ``"xpu"``, ``"cpu"``, ...) the kernel
      runs on. ``"cuda"`` covers ROCm, as in torch.
    - ``supports_args``: an optional predicate with the op's parameters returning a plain
      ``bool`` (anything else -- a tensor, None, 1 -- declines, with that reason). It may read
      dtypes, devices, shapes, strides and non-tensor arguments, never tensor values; it must
      accept FakeTensors and symbolic shapes. Its answer is cached per dispatch key (the type,
      device, dtype, shape, strides and requires_grad of every tensor; the type and value of
      every other argument), so it is evaluated once per distinct key and must not depend on
      anything else: not on the storage offset or data-pointer alignment (a kernel that needs
      aligned rows checks that when it runs, and copies or falls back there).
    - ``available``: a bool, or a zero-argument callable returning ``(bool, reason)``, evaluated
      once, lazily, the first time the provider is considered. Import vendor libraries there,
      not at plugin import, so that a missing or broken library makes the provider
      "unavailable: <reason>" rather than quarantining the whole plugin.

    - ``capabilities``: tags for what the kernel promises beyond tolerance, which users select
      on (``set_priority(require={"batch_invariant"})``): ``batch_invariant`` (a row's bits do
      not depend on the other rows), ``deterministic`` (same inputs, same bits, every run),
      ``cuda_graph_safe`` (capturable in a CUDA graph), or a vendor's own lowercase identifier;
      a name close to a known tag is a typo and quarantines the plugin. Declare only what the
      kernel's code guarantees on every device type it registers for.

    One plugin may register several providers (e.g. ``triton``, ``flashinfer``, ``torch_fused``).

    :param registry: the process-wide :class:`ir_core.Registry`.
    """


@hookspec
def register_fusion_passes(registry: FusionPassRegistry) -> None:
    """Contribute graph rewrites that run inside ``torch.compile`` before IR ops are lowered.

    Call ``registry.register(name, fn, *, order=100)``: ``fn(gm)`` rewrites the post-grad ATen
    ``torch.fx.GraphModule`` in place -- it still holds the ``torch.ops.ir_core.*`` nodes -- and
    returns how many matches it rewrote. Passes run in ``order`` (then name); names are unique
    across plugins and users pick them with ``IR_CORE_FUSIONS`` (``-name`` disables one, a bare
    name means "only these"). Fused ops a pass emits are declared in ``register_ops``.

    A pass is part of the compile-cache key: when ``fn`` has a ``fingerprint()`` method
    returning a str, that string (which must change whenever what the pass does changes, and
    be the same in every process); otherwise the digest of ``fn``'s source.

    :param registry: the :class:`ir_core.compile.FusionPassRegistry` being filled.
    """


@hookspec
def detect_platform() -> str | None:
    """Claim the machine for an out-of-tree platform.

    Return the platform name (e.g. ``"npu"``) if this plugin's hardware is present, else
    ``None``. ir-core asks each plugin in load order (one at a time, so a plugin that raises is
    quarantined alone) and the first non-empty answer wins; when none answers, ir-core detects
    ``cuda``, ``rocm``, ``xpu`` or ``cpu`` from torch. ``IR_CORE_PLATFORM`` overrides both.
    """


@hookspec
def platform_priority(platform: str) -> dict[str, list[str]] | None:
    """Give this plugin's default provider order per op for ``platform``.

    Return ``{"rms_norm": ["flashinfer", "triton"], ...}`` or ``None`` when the plugin has no
    opinion on that platform. Orders from all plugins are merged in plugin load order without
    duplicates and placed after the user's own priorities; ``native`` always comes last.

    :param platform: the detected platform name (``cuda``, ``rocm``, ``xpu``, ``cpu`` or one a
        ``detect_platform`` hook returned).
    """
