"""ir-provider-rocm-aiter: AMD AITER's RMS norm kernels as the ir-core provider ``aiter``.

:mod:`.aiter_norm` holds the availability check, ``supports_args``, the argument mapping onto
the installed AITER release and the impls; :mod:`.plugin` registers them through the
``ir_core.plugins`` entry point. Nothing here imports AITER until ir-core first considers the
provider.
"""

__version__ = "0.1.0"
