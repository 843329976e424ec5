"""The version of this ir-core distribution (kept apart so that any layer may read it)."""

__version__ = "0.1.0"
