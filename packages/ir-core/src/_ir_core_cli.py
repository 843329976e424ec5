"""The ``ir-core`` console script: :func:`ir_core.cli.main`, without torch's NumPy warning.

torch warns "Failed to initialize NumPy" while it is imported when numpy is missing or broken.
ir-core needs no numpy, so on such a machine the warning was noise on every command, ``--help``
included. torch is imported as soon as ``ir_core`` is, so the filter has to be in place before
``ir_core`` is imported: hence this module outside the package, which only the console script
imports. The library itself leaves torch's warnings alone, and every other warning still shows.
"""

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)

from ir_core.cli import main  # noqa: E402  (after the filter, on purpose)

__all__ = ["main"]
