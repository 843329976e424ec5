"""Models written on IR ops, shipped in the wheel: ``ir-core doctor`` compiles
:mod:`.decoder_blocks` after a plain ``pip install``, and the repository's tests, benchmarks and
demos import them from here."""
