"""CLI commands of the metrics layer (``exprbench evaluate``, ``exprbench evaluator ...``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the metrics commands to the main ``exprbench`` app."""
