"""exprbench: a comparative benchmark suite for facial-expression image generation."""

__version__ = "0.1.0"
