"""Augmentation on batched image tensors, on the training device, with per-image random parameters.

Built on kornia's augmentation modules (torchvision.transforms.v2 draws one set of parameters per
call, i.e. per batch, which is not what a GAN's data augmentation wants). Randomness comes from
torch's global RNG, which the harness seeds and checkpoints, so runs are reproducible on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch
from torch import nn


@dataclass
class AugmentConfig:
    """Augmentation settings.

    Attributes:
        hflip: random horizontal flip with probability 0.5.
        rotate: (low, high) rotation angle range in degrees, drawn uniformly per image; (0, 0) is off.
            The BiCoGAN FER2013 reference used (-50, 30).
        translate: largest shift as a fraction of width/height, drawn uniformly per image; 0 is off.
        p_affine: probability that an image gets the affine (rotation/translation) transform.
        padding: how pixels revealed by the affine warp are filled: ``border``, ``reflection`` or ``zeros``.
    """

    hflip: bool = True
    rotate: tuple[float, float] = (0.0, 0.0)
    translate: float = 0.0
    p_affine: float = 1.0
    padding: str = "border"


def build_augment(cfg: AugmentConfig) -> nn.Module:
    """Return a module mapping float N x C x H x W -> same shape (value range kept), or Identity."""
    ops: list[nn.Module] = []
    if cfg.hflip:
        ops.append(K.RandomHorizontalFlip(p=0.5))
    lo, hi = cfg.rotate
    if lo != hi or cfg.translate > 0:
        ops.append(
            K.RandomAffine(
                degrees=(float(lo), float(hi)),
                translate=(cfg.translate, cfg.translate) if cfg.translate > 0 else None,
                padding_mode=cfg.padding,
                p=cfg.p_affine,
            )
        )
    if not ops:
        return nn.Identity()
    return K.AugmentationSequential(*ops)


def augment(images: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Apply ``module`` (from :func:`build_augment`) to float images N x C x H x W without autograd."""
    with torch.no_grad():
        return module(images)
