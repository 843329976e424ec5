"""Adapters that put ir-core's ops into other libraries' models.

Each subpackage targets one library and is imported only when asked for
(``import ir_core.integrations.transformers``): ``import ir_core`` imports none of them, and none
of them imports its library until a model of it is handed over.
"""
