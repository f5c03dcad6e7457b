"""Image grids and PNG output (torchvision's make_grid, PIL for row labels), written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from exprbench.core.io import atomic_open
from exprbench.core.validate import check_uint8_images


def grid_image(images: torch.Tensor, nrow: int, row_labels: Sequence[str] | None = None, padding: int = 2,
               col_labels: Sequence[str] | None = None) -> Image.Image:
    """Tile uint8 images (N x C x H x W, 0..255, C in {1, 3}) into a PIL image, ``nrow`` per row.

    With ``row_labels`` (one per row) a left margin names each row, e.g. the emotion; with
    ``col_labels`` (one per column) a top margin names each column, e.g. the edit strength.

    Raises:
        ValueError: not uint8 N x {1,3} x H x W images, or a wrong number of row or column labels.
    """
    if col_labels:
        if len(col_labels) != nrow:
            raise ValueError(f"{len(col_labels)} column labels for {nrow} columns")
        body = grid_image(images, nrow, row_labels, padding)
        font = ImageFont.load_default()
        white = 255 if body.mode == "L" else (255, 255, 255)
        out = Image.new(body.mode, (body.width, body.height + 14), white)
        out.paste(body, (0, 14))
        draw = ImageDraw.Draw(out)
        cell, left = images.shape[3] + padding, body.width - (images.shape[3] + padding) * nrow - padding
        for c, label in enumerate(col_labels):
            w = draw.textlength(label, font=font)
            draw.text((left + padding + c * cell + (cell - padding - w) / 2, 1), label,
                      fill=0 if body.mode == "L" else (0, 0, 0), font=font)
        return out
    check_uint8_images(images, "grid_image", error=ValueError)
    grid = make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=255)
    arr = grid.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    if not row_labels:
        return pil
    rows = (images.shape[0] + nrow - 1) // nrow
    if len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    font = ImageFont.load_default()
    margin = 8 + max(int(ImageDraw.Draw(pil).textlength(s, font=font)) for s in row_labels)
    out = Image.new(pil.mode, (pil.width + margin, pil.height), 255 if pil.mode == "L" else (255, 255, 255))
    out.paste(pil, (margin, 0))
    draw = ImageDraw.Draw(out)
    cell = images.shape[2] + padding
    for r, label in enumerate(row_labels):
        draw.text((4, padding + r * cell + cell // 2 - 6), label, fill=0 if pil.mode == "L" else (0, 0, 0), font=font)
    return out


def save_png(img: Image.Image, path: str | os.PathLike, scale: int = 1) -> Path:
    """Save ``img`` atomically at ``path``: PDF when the name ends in ``.pdf`` (one page, 72 dpi per
    upscaled pixel, for papers), else PNG; ``scale`` > 1 upscales by that integer factor with
    nearest-neighbour sampling first (sharp pixels in print). Returns the path.

    Raises:
        ValueError: ``scale`` < 1.
    """
    if scale < 1:
        raise ValueError(f"scale {scale}: must be an integer >= 1")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    pdf = str(path).lower().endswith(".pdf")
    with atomic_open(path, "wb") as fh:
        if pdf:
            img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(fh, format="PDF", resolution=72.0)
        else:
            img.save(fh, format="PNG")
    return Path(path)
