"""The provider kit: what every vendor wrapper needs besides its kernel.

``from ir_core import kit`` in a provider module gives:

- a vendor library loaded lazily, once, with the reason when it cannot be
  (:class:`LazyVendor`, :func:`import_module`, :func:`module_missing`,
  :func:`nvidia_gpu_problems`);
- shape and stride predicates for ``supports_args`` that read metadata only and add no guard
  on symbolic shapes (:func:`known`, :func:`row_layout`, :func:`has_unit_last_stride`,
  :func:`same_shape`, :func:`is_weight_for`, :func:`layout_of`);
- outputs for kernels, including owned copies for vendor kernels that work in place
  (:func:`empty_output`, :func:`owned_rows`, :func:`in_place_outputs`);
- the hook bodies of a provider plugin (:func:`plugin_info`, :func:`impls_of`,
  :func:`register_impls`, :func:`priorities_for`).

``ir-core new-provider`` writes a package built on these (:mod:`ir_core.kit.scaffold`).
"""

from __future__ import annotations

from .hooks import ImplRow, impls_of, plugin_info, priorities_for, register_impls
from .layout import (
    RowLayout,
    has_unit_last_stride,
    is_weight_for,
    known,
    layout_of,
    row_layout,
    same_shape,
)
from .outputs import empty_output, in_place_outputs, owned_rows
from .vendor import LazyVendor, import_module, module_missing, nvidia_gpu_problems

__all__ = [
    "ImplRow",
    "LazyVendor",
    "RowLayout",
    "empty_output",
    "has_unit_last_stride",
    "impls_of",
    "import_module",
    "in_place_outputs",
    "is_weight_for",
    "known",
    "layout_of",
    "module_missing",
    "nvidia_gpu_problems",
    "owned_rows",
    "plugin_info",
    "priorities_for",
    "register_impls",
    "row_layout",
    "same_shape",
]
