"""Imports fine, then raises inside register_impls."""

import ir_core


@ir_core.hookimpl
def register_impls(registry):
    raise RuntimeError("vendor library handle is not initialised")
