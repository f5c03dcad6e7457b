"""The checks of images and labels that cross a layer boundary, written once.

* :func:`check_uint8_images`: uint8 images of shape N x C x H x W, values 0..255 (stored and quantized
  images: the data, the metrics, figures);
* :func:`check_float_images`: float images N x C x H x W in [-1, 1] (what models take and return);
* :func:`check_labels`: N integer labels in 0..K-1; :func:`check_class`: one class index.

Each check raises the error type of the layer that calls it, passed as ``error``: ``DataError`` in the
data layer, ``ValueError`` for a programming mistake in a model's API, the metrics' input error in the
metrics, and a :class:`~exprbench.core.errors.UserError` subclass (:class:`~exprbench.core.errors.InputError`) for
input a user gave on the command line (the CLI prints it as one line and exits 2).
"""

from __future__ import annotations

from typing import Sequence

import torch

ErrorType = type[Exception]


def _shape_text(channels: int | Sequence[int] | None, size: tuple[int, int] | None) -> str:
    c = "C" if channels is None else str(channels) if isinstance(channels, int) else "{" + ",".join(map(str, channels)) + "}"
    h, w = size if size is not None else ("H", "W")
    return f"N x {c} x {h} x {w}"


def _check_shape(x: torch.Tensor, what: str, channels, size, error: ErrorType, allow_empty: bool, kind: str) -> None:
    want = _shape_text(channels, size)
    if x.dim() != 4:
        raise error(f"{what}: expected {kind} images {want}, got shape {tuple(x.shape)}")
    allowed = (channels,) if isinstance(channels, int) else channels
    if allowed is not None and x.shape[1] not in tuple(allowed):
        raise error(f"{what}: expected {kind} images {want}, got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise error(f"{what}: expected {kind} images {want}, got shape {tuple(x.shape)}")
    if not allow_empty and x.shape[0] == 0:
        raise error(f"{what}: empty set (0 images)")


def check_uint8_images(images, what: str = "images", channels: int | Sequence[int] | None = (1, 3),
                       size: tuple[int, int] | None = None, error: ErrorType = ValueError,
                       allow_empty: bool = False) -> torch.Tensor:
    """Check uint8 images of shape N x C x H x W (values 0..255) and return them unchanged.

    Args:
        images: the tensor to check.
        what: what the images are, for the message (``"generated images"``, ``"--images x.npz"``).
        channels: the allowed C (an int, a sequence, or None for any).
        size: the required (H, W), or None for any.
        error: the exception type raised (the caller's layer; see the module docstring).
        allow_empty: accept N = 0.

    Raises:
        error: not a tensor; another dtype (float images get the hint to quantize with ``to_uint8``); not
            4-D or of another C, H, W; empty.
    """
    if not torch.is_tensor(images):
        raise error(f"{what}: expected a uint8 torch.Tensor {_shape_text(channels, size)}, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        hint = (" (float images in [-1, 1] go through exprbench.data.to_uint8)" if images.is_floating_point()
                else " (cast with .to(torch.uint8))")
        raise error(f"{what}: expected dtype uint8 (0..255), got {images.dtype}{hint}")
    _check_shape(images, what, channels, size, error, allow_empty, "uint8")
    return images


def check_float_images(x, what: str = "images", channels: int | Sequence[int] | None = None,
                       size: tuple[int, int] | None = None, error: ErrorType = ValueError,
                       check_range: bool = False, allow_empty: bool = True) -> torch.Tensor:
    """Check float images of shape N x C x H x W in [-1, 1] and return them unchanged.

    Args:
        x: the tensor to check.
        what: what the images are, for the message.
        channels: the required C (int or sequence), or None for any.
        size: the required (H, W), or None for any.
        error: the exception type raised (the caller's layer).
        check_range: also check every value is in [-1, 1] (one pass over the data; NaN fails).
        allow_empty: accept N = 0.

    Raises:
        error: not a floating-point tensor; not 4-D or of another C, H, W; empty; values outside [-1, 1].
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        got = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise error(f"{what}: expected float images {_shape_text(channels, size)} in [-1, 1], got {got}")
    _check_shape(x, what, channels, size, error, allow_empty, "float")
    if check_range and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (-1.0 <= lo and hi <= 1.0):
            raise error(f"{what}: values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]")
    return x


def check_labels(labels, n: int | None, k: int, what: str = "labels", error: ErrorType = ValueError) -> torch.Tensor:
    """Check integer labels in 0..K-1 (one per image) and return them as int64 (same device).

    Args:
        labels: a tensor (or anything ``torch.as_tensor`` takes) of class indices.
        n: the number of labels expected (one per image), or None for any.
        k: the number of classes.
        what: what the labels are, for the message.
        error: the exception type raised (the caller's layer).

    Raises:
        error: not 1-D integers, not ``n`` of them, or a label outside 0..K-1.
    """
    try:
        c = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise error(f"{what}: expected integer labels in 0..{k - 1}, got {type(labels).__name__}") from None
    if c.dim() != 1 or c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
        raise error(f"{what}: expected {'' if n is None else f'{n} '}integer labels in 0..{k - 1}, "
                    f"got {tuple(c.shape)} {c.dtype}")
    if n is not None and c.shape[0] != n:
        raise error(f"{what}: {c.shape[0]} labels for {n} images")
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= k):
        bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
        raise error(f"{what}: label {bad} outside 0..{k - 1}")
    return c.long()


def check_class(index, k: int, what: str = "class", error: ErrorType = ValueError) -> int:
    """Check one class index in 0..K-1 (a Python int, not a bool) and return it.

    Raises:
        error: not an int, or outside 0..K-1 (the message names the value).
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < k:
        raise error(f"{what} {index!r}: expected a class index 0..{k - 1}")
    return index
