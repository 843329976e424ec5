"""Cross-package tests. Without a GPU the Triton kernels run through Triton's interpreter, which
must be switched on before ir-provider-cuda registers its impls (as its own conftest does)."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
