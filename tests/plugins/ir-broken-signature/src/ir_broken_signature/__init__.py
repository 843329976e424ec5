"""Test plugin for ir-core discovery; see plugin.py."""
