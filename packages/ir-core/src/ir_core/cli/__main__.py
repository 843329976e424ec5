"""``python -m ir_core.cli``: the ``ir-core`` command."""

import sys

from . import main

sys.exit(main())
