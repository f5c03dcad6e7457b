"""exprbench: a comparative benchmark suite for facial-expression image generation.

``exprbench.score(images, labels=None, metrics=None)`` and ``exprbench.load(run_dir)`` are the Python API
(:mod:`exprbench.api`), imported on first use so that ``import exprbench`` stays light (no torch).
"""

import importlib

from exprbench.core import __version__
__all__ = ["__version__", "load", "score"]


def __getattr__(name: str):
    """``exprbench.score`` / ``exprbench.load``: the API module is the top layer, loaded when first asked for."""
    if name in ("score", "load"):
        return getattr(importlib.import_module("exprbench.api"), name)
    raise AttributeError(f"module 'exprbench' has no attribute {name!r}")
