"""The one conversion between stored uint8 pixels and the float images models take and return."""

from __future__ import annotations

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 N x C x H x W -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 0..255, quantized exactly like the real data.

    The inverse of :func:`to_float` up to rounding: ``round((x + 1) * 127.5)`` clamped to 0..255.
    Every metric and figure turns generated images into uint8 through this one function.

    Raises:
        ValueError: if ``images`` is not a floating-point tensor.
    """
    if not images.is_floating_point():
        raise ValueError(f"to_uint8 expects float images in [-1, 1], got dtype {images.dtype}")
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
