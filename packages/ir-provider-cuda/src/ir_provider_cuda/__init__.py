"""ir-provider-cuda: kernels for NVIDIA and AMD GPUs as ir-core providers.

Providers: ``triton`` (own kernels: :mod:`.triton_norm`, :mod:`.triton_quant`), ``flashinfer``
(:mod:`.flashinfer_norm`, :mod:`.flashinfer_activation`, :mod:`.flashinfer_rotary`,
:mod:`.flashinfer_allreduce`; the library itself in :mod:`.flashinfer_lib`), ``quack``
(:mod:`.quack_norm`), ``liger`` (:mod:`.liger_norm`) and ``torch_fused``
(:mod:`.torch_fused_norm`), registered by :mod:`.plugin` through the ``ir_core.plugins`` entry
point. Nothing here imports a kernel library; that happens when a provider is first used.
"""

__version__ = "0.1.0"
