"""ir-provider-cuda: RMS norm kernels for NVIDIA and AMD GPUs as ir-core providers.

Providers: ``triton`` (:mod:`.triton_norm`, kernels in :mod:`.triton_kernels`), ``flashinfer``
(:mod:`.flashinfer_norm`) and ``torch_fused`` (:mod:`.torch_fused_norm`), registered by
:mod:`.plugin` through the ``ir_core.plugins`` entry point. Nothing here imports Triton or
FlashInfer; that happens when a provider is first used.
"""

__version__ = "0.1.0"
