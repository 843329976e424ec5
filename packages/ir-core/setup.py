"""The one thing pyproject.toml cannot say: ir_core._fastpath, the compiled hit path of dispatch.

It is optional: where no C compiler is at hand the wheel builds without it, and dispatch uses its
pure-Python path (``ir-core doctor`` says which one runs). It is a plain CPython extension with no
torch headers, so one build serves every torch release (see src/ir_core/fastpath.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ir_core._fastpath", ["src/ir_core/_fastpath.c"], optional=True)])
