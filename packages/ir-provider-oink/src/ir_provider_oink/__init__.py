"""ir-provider-oink: KernelAgent-Oink's Blackwell RMS norm kernels as the ir-core provider ``oink``.

:mod:`.oink_norm` holds availability, the stride rules (``supports_args``), the argument
mapping onto ``torch.ops.oink`` and the impls; :mod:`.plugin` registers them through the
``ir_core.plugins`` entry point. Nothing here imports kernelagent-oink or CuTeDSL until ir-core
first considers the provider.
"""

__version__ = "0.1.0"
