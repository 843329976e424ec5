"""Fails at import, as a wheel built against a missing native library would."""

import ir_example_missing_native_library  # noqa: F401  (does not exist: that is the test)
