"""Kept only for tests/runs/test_harness.py (``tiny_model``) until it imports tests/models/conftest.py; the
model checks live in tests/models/ (contract tests over the registry, shared fixtures in conftest.py)."""

from __future__ import annotations

from .models.conftest import FER_SPEC, tiny_model as _tiny


def tiny_model(name: str, config: str, overrides=(), spec=FER_SPEC):
    """A width-8 plugin for ``spec`` (FER2013 by default), seeded with 0, on the CPU."""
    return _tiny(name, config, spec, ["model.ch=8", *overrides])
