"""The compiled hit path of eager dispatch (``ir_core._fastpath``), or why it is off.

``ir_core/_fastpath.c`` is a plain CPython extension, built with ir-core's wheel (an optional
extension: where it cannot be compiled, the wheel installs without it). It includes no torch
header and links to no torch library, so no torch release is baked into it: at import, this
module hands it the addresses of the functions of torch's stable C shim (the ABI AOTInductor's
compiled models use across torch releases) from the torch that is loaded, then checks, on real
tensors, that what it reads is what Python reads. Any failure -- the extension not built, a
function missing from libtorch, a reading that differs -- leaves it off, with the reason, and
dispatch uses its pure-Python path, which decides exactly the same.

One assumption is not covered by the shim: that the handle the shim takes (a pointer to an
``at::Tensor``) can be made from the ``TensorImpl`` address ``Tensor._cdata`` gives, because an
``at::Tensor`` is one pointer to its ``TensorImpl``. It is checked against a handle torch makes
itself (``torch._C._aoti.unsafe_alloc_void_ptr_from_tensor``) before any shim function is called
on a handle of ours, so a torch where it stops holding turns the extension off instead of
misreading memory.

``IR_CORE_COMPILED_DISPATCH=0`` keeps it off (CI runs the dispatch tests both ways).
"""

from __future__ import annotations

import ctypes
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ENV_COMPILED = "IR_CORE_COMPILED_DISPATCH"

#: The functions of torch's stable C shim that the extension calls.
SHIM_FUNCTIONS = (
    "aoti_torch_get_dim",
    "aoti_torch_get_sizes",
    "aoti_torch_get_strides",
    "aoti_torch_get_dtype",
    "aoti_torch_get_device_type",
    "aoti_torch_get_device_index",
    "aoti_torch_get_layout",
)

_LIBTORCH_NAMES = ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll")


@dataclass(frozen=True)
class Status:
    """Whether the compiled hit path is on, and why (not)."""

    active: bool
    reason: str

    def __str__(self) -> str:
        return f"{'compiled' if self.active else 'pure Python'} ({self.reason})"


def _libtorch() -> ctypes.CDLL:
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in _LIBTORCH_NAMES:
        if (lib_dir / name).exists():
            return ctypes.CDLL(str(lib_dir / name))
    raise OSError(f"no torch_cpu library in {lib_dir}")


def _address(handle: Any) -> int:
    """The address a ``torch._C._aoti`` handle holds (an int or a capsule, by torch release)."""
    if isinstance(handle, int):
        return handle
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get(handle, None))


def _handle_is_impl_pointer(t: torch.Tensor) -> bool:
    """Whether the at::Tensor torch makes for ``t`` is one pointer, to ``t._cdata``."""
    aoti = torch._C._aoti
    handle = aoti.unsafe_alloc_void_ptr_from_tensor(t)
    try:
        return ctypes.c_void_p.from_address(_address(handle)).value == t._cdata
    finally:
        aoti.alloc_tensor_by_stealing_from_void_ptr(handle)  # frees the handle


def _samples() -> list[torch.Tensor]:
    """Tensors whose metadata the extension must read exactly as Python does."""
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    return [
        base,
        base.transpose(0, 2).to(torch.bfloat16),  # strides, dtype
        base[:, 1:, ::2],  # offset and step
        torch.tensor(3.0, dtype=torch.float64),  # 0-d
        torch.zeros(5, 1).expand(5, 7),  # stride 0
        torch.empty(0, 8, dtype=torch.float16),
        torch.nn.Parameter(torch.ones(6)),  # requires_grad, the other keyed type
        torch.empty(4, 2, device="meta"),  # another device type
    ]


def _python_metadata(t: torch.Tensor) -> tuple[Any, ...]:
    index = t.device.index
    return (
        t.dim(),
        tuple(t.shape),
        t.stride(),
        t.dtype,
        t.device.type,
        -1 if index is None else index,
        t.requires_grad,
    )


def _check(module: Any, lib: ctypes.CDLL) -> str | None:
    """Why the extension's readings cannot be trusted with this torch, or None."""

    def code(name: str) -> int:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = ctypes.c_int32, []
        return int(fn())

    dtype_codes = {
        torch.float32: code("aoti_torch_dtype_float32"),
        torch.bfloat16: code("aoti_torch_dtype_bfloat16"),
        torch.float16: code("aoti_torch_dtype_float16"),
        torch.float64: code("aoti_torch_dtype_float64"),
    }
    device_codes = {
        "cpu": code("aoti_torch_device_type_cpu"),
        "meta": code("aoti_torch_device_type_meta"),
    }
    for t in _samples():
        if not _handle_is_impl_pointer(t):
            return "an at::Tensor handle is not the TensorImpl pointer Tensor._cdata gives"
        dim, sizes, strides, dtype, device, index, grad = _python_metadata(t)
        expected = (dim, sizes, strides, dtype_codes[dtype], device_codes[device], index, grad)
        got = module.metadata(t)
        if got != expected:
            return f"reads {got} for a tensor whose metadata is {expected}"
    if module.metadata(torch.zeros(2, 2).to_sparse()) is not None:
        return "keys a sparse tensor"
    return None


def _load() -> tuple[Any, Status]:
    if os.environ.get(ENV_COMPILED, "1").strip().lower() in ("0", "false", "no", "off"):
        return None, Status(False, f"turned off by {ENV_COMPILED}={os.environ[ENV_COMPILED]}")
    try:  # the compiled extension: absent where it could not be built (not a layer: no code)
        _fastpath = importlib.import_module(f"{__package__}._fastpath")
    except ImportError as exc:
        return None, Status(False, f"extension ir_core._fastpath not loaded: {exc}")
    try:
        lib = _libtorch()
        functions = {}
        for name in SHIM_FUNCTIONS:
            functions[name] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        strided = lib.aoti_torch_layout_strided
        strided.restype, strided.argtypes = ctypes.c_int32, []
        base = torch._C.TensorBase.__dict__
        _fastpath.configure(
            functions,
            int(strided()),
            base["_cdata"],
            base["requires_grad"],
            torch.Tensor,
            torch.nn.Parameter,
            torch.dtype,
        )
        problem = _check(_fastpath, lib)
    except Exception as exc:  # a torch without some function or attribute used here
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        _fastpath.set_ready(False)
        return None, Status(False, f"torch {torch.__version__}: {problem}")
    _fastpath.set_ready(True)
    return _fastpath, Status(
        True, f"ir_core._fastpath on torch {torch.__version__}'s stable C shim"
    )


_module, _status = _load()


def status() -> Status:
    """Whether eager dispatch runs its compiled hit path in this process, and why (not)."""
    return _status


def make_dispatcher(
    kinds: str,
    scope_var: Any,
    resolve: Callable[..., tuple[Callable[..., Any], str | None]],
    fallback: Callable[..., Any],
    annotate: Callable[[BaseException, str], None],
    limit: int,
) -> Callable[..., Any] | None:
    """One op's compiled hit path, or None when it is off (see ``ir_core._fastpath.c``).

    ``kinds`` has one letter per parameter (``t`` tensor, ``o`` optional tensor, ``s`` other);
    ``resolve(*args)`` decides a miss and returns ``(kernel, note)``; ``fallback(*args)`` runs a
    call the extension cannot key; ``annotate(exc, note)`` adds the note to a kernel's error.
    """
    if _module is None:
        return None
    return _module.Dispatcher(kinds, scope_var, resolve, fallback, annotate, limit)
