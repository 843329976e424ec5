"""ir-provider-xpu: Intel RMS norm kernels as the ir-core providers ``ipex`` and ``xpu_kernels``.

``ipex`` (:mod:`.ipex_norm`) wraps Intel Extension for PyTorch on XPU and CPU; ``xpu_kernels``
(:mod:`.xpu_kernels_norm`) wraps vllm-xpu-kernels' SYCL kernels on XPU. :mod:`.plugin`
registers both through the ``ir_core.plugins`` entry point. Neither library is imported until
ir-core first considers its provider.
"""

__version__ = "0.1.0"
