"""ir-core inside Hugging Face ``transformers`` models: ``patch(model)`` / ``unpatch(model)``.

::

    from ir_core.integrations.transformers import patch
    report = patch(model)        # every known RMSNorm now calls ir_core.ops.rms_norm
    print(report)                # what was replaced (and how), what was left alone and why

Each RMSNorm module of a loaded model is replaced by an :class:`IRRMSNorm` that calls
``ir_core.ops.rms_norm`` with the same weight, so the priority picks the kernel in eager mode,
and ``torch.compile`` sees IR ops its fusion passes can combine (add + norm, the MLA latent and
q/k norm pairs). What each norm class computes is found by running it (:mod:`.forms`), never
guessed from its name; a class computing anything else is left alone and named in the report.

Numerics: ``ONCE``, ``GEMMA`` and ``UNWEIGHTED`` norms compute bitwise what the replaced
module did (with the native impl). ``LLAMA`` norms round twice (the normalized input to the
input's dtype, then the product); ir-core rounds once, so in bf16 each output element moves by
at most one bf16 ulp (relative 2^-7, inside the op's bf16 rtol 1.6e-2), towards the exact value;
in fp32 nothing changes.

Nothing here imports ``transformers``: the models are plain ``nn.Module`` trees. The extra
``pip install ir-core[transformers]`` installs it for convenience.
"""

from __future__ import annotations

from .forms import Form, Identified, identify
from .norm import IRRMSNorm
from .patch import LeftAlone, Patched, PatchReport, is_rms_norm, patch, unpatch

__all__ = [
    "Form",
    "IRRMSNorm",
    "Identified",
    "LeftAlone",
    "PatchReport",
    "Patched",
    "identify",
    "is_rms_norm",
    "patch",
    "unpatch",
]
