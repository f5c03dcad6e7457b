"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS):
the same random, differentiable transforms on every image a discriminator (and a real-face classifier C)
sees, real and fake alike, so D cannot memorise the few real faces and G's gradient passes through the
transform.

Policies (comma-separated names, applied in this order, each with per-image random parameters drawn from
torch's global RNG, which the harness seeds and checkpoints):

* ``color``: brightness + U(-0.5, 0.5), contrast x U(0.5, 1.5) about the image mean (the paper's
  saturation term is left out: gray faces have none);
* ``translation``: an integer shift of up to 1/8 of the size, zero padding;
* ``cutout``: one zeroed square of half the size at a random centre.

Images are float N x C x H x W in [-1, 1] (values may leave the range, as in the paper's code). Kornia's
``RandomAffine`` / ``RandomErasing`` resample bilinearly or per call on the CPU; the paper's integer shift
and mask are a few tensor ops, written here.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (+U(-0.5, 0.5)) and contrast (x U(0.5, 1.5) about the mean), per image."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by integers in [-ratio * H/2 ... ratio * H/2] (rounded), zero padding, differentiable."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio / 2 + 0.5), int(w * ratio / 2 + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    iy = torch.arange(h, device=x.device).view(1, h, 1) + dy  # source row of each output row
    ix = torch.arange(w, device=x.device).view(1, 1, w) + dx
    pad = F.pad(x, [1, 1, 1, 1])  # a zero border: out-of-range sources read it
    iy = (iy.clamp(-1, h) + 1).expand(n, h, w)
    ix = (ix.clamp(-1, w) + 1).expand(n, h, w)
    flat = (iy * (w + 2) + ix).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return pad.flatten(2).gather(2, flat).view_as(x)


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of ``ratio`` x the size per image, at a random centre (it may cross the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch) & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"color": color, "translation": translation,
                                                                 "cutout": cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")`` in :data:`POLICIES` order; ``""`` -> ``()``.

    Raises:
        ValueError: an unknown name (lists the known ones).
    """
    names = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ValueError(f"model.diffaugment={policy!r}: unknown policy {bad[0]!r} (known: {', '.join(POLICIES)})")
    return tuple(p for p in POLICIES if p in names)


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the ``policy`` transforms (from :func:`parse_policy`) to float N x C x H x W images."""
    for name in policy:
        x = POLICIES[name](x)
    return x


def augment_inputs(net: nn.Module, policy: tuple[str, ...]) -> None:
    """Make ``net`` DiffAugment its first positional argument (the image) on every call, whatever its mode
    (a forward pre-hook: its state dict, and so every checkpoint, is unchanged). Installed once per net;
    no-op for ``()``. Meant for training-only nets (D, C)."""
    if not policy or getattr(net, "_diffaugment", None) is not None:
        return

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        return (diff_augment(args[0], policy), *args[1:]) if args else None

    net.register_forward_pre_hook(hook)
    net._diffaugment = policy
