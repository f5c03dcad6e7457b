"""Controlled changes of real faces for the metric validity study (:mod:`.validity`).

Degradations of image quality, each a function ``fn(images, param, first=0) -> images`` of uint8
N x C x H x W tensors (0..255) that returns uint8 of the same shape, batched on tensors and independent
of how a set is split into batches (``first``: the index of ``images[0]`` in the whole set, which seeds
the per-image noise). Each family has four strengths beyond the identity (strength 0):

* ``blur``: Gaussian blur, sigma in pixels (torchvision ``gaussian_blur``, kernel 2 ceil(3 sigma) + 1);
* ``noise``: additive Gaussian noise, std in [0, 1] pixel units, one seeded generator per image;
* ``jpeg``: JPEG compression at a quality (torchvision ``encode_jpeg`` / ``decode_jpeg``);
* ``contrast``: contrast factor < 1 (torchvision ``adjust_contrast``: blend with the image mean);
* ``shift``: translation right and down by a few pixels, the uncovered border filled with the edge.

Changes of the set (which faces, not how they look): :func:`drop_emotions`, :func:`collapse` and
:func:`memorise`, each seeded and of the same size as the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

NOISE_SEED = 7


def _check(images: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError("images: expected a uint8 N x C x H x W tensor")
    return images


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def blur(images: torch.Tensor, sigma: float, first: int = 0) -> torch.Tensor:
    """Gaussian blur of std ``sigma`` pixels (reflect padding); ``sigma`` 0 is the identity."""
    from torchvision.transforms.v2.functional import gaussian_blur

    _check(images)
    if sigma <= 0:
        return images.clone()
    k = 2 * math.ceil(3 * sigma) + 1
    return _to_uint8(gaussian_blur(images.float(), kernel_size=[k, k], sigma=[float(sigma), float(sigma)]))


def noise(images: torch.Tensor, std: float, first: int = 0) -> torch.Tensor:
    """Additive Gaussian noise of std ``std`` in [0, 1] pixel units (``std`` x 255 grey levels), clipped;
    image ``i`` of the whole set draws from a generator seeded with ``NOISE_SEED`` and ``i``."""
    _check(images)
    if std <= 0:
        return images.clone()
    shape = images.shape[1:]
    eps = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(NOISE_SEED * 1_000_003 + first + i))
                       for i in range(images.shape[0])])
    return _to_uint8(images.float() + eps * (255.0 * std))


def jpeg(images: torch.Tensor, quality: int | None, first: int = 0) -> torch.Tensor:
    """JPEG compression at ``quality`` (1..100) and back; None is the identity (no compression)."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    _check(images)
    if quality is None:
        return images.clone()
    if images.shape[0] == 0:
        return images.clone()
    data = encode_jpeg(list(images), quality=int(quality))
    mode = ImageReadMode.GRAY if images.shape[1] == 1 else ImageReadMode.RGB
    return torch.stack(decode_jpeg(data, mode=mode))


def contrast(images: torch.Tensor, factor: float, first: int = 0) -> torch.Tensor:
    """Contrast change by ``factor`` (1: identity; < 1: towards each image's mean grey)."""
    from torchvision.transforms.v2.functional import adjust_contrast

    _check(images)
    if factor == 1:
        return images.clone()
    return adjust_contrast(images, float(factor))


def shift(images: torch.Tensor, pixels: int, first: int = 0) -> torch.Tensor:
    """Translation by ``pixels`` to the right and down; the uncovered border repeats the edge pixels."""
    _check(images)
    s = int(pixels)
    if s <= 0:
        return images.clone()
    h, w = images.shape[2:]
    padded = F.pad(images.float(), (s, 0, s, 0), mode="replicate")
    return _to_uint8(padded[:, :, :h, :w])


@dataclass(frozen=True)
class Degradation:
    """A family of controlled degradations.

    Attributes:
        name: the family (``blur``, ...); what: its parameter in words (with unit).
        fn: ``fn(images, param, first) -> images``.
        levels: the parameter at strength 0 (the identity), 1, 2, 3, 4 (increasing severity).
        quick: the strengths (indices into ``levels``) of a quick study.
    """

    name: str
    what: str
    fn: Callable
    levels: tuple
    quick: tuple = (0, 2, 4)

    def apply(self, images: torch.Tensor, strength: int, batch_size: int = 1024) -> torch.Tensor:
        """``images`` at ``strength`` (0..4), in batches of ``batch_size``."""
        p = self.levels[strength]
        return torch.cat([self.fn(images[i: i + batch_size], p, first=i)
                          for i in range(0, images.shape[0], batch_size)]) if images.shape[0] else images.clone()


DEGRADATIONS: dict[str, Degradation] = {d.name: d for d in (
    Degradation("blur", "Gaussian blur sigma (px)", blur, (0.0, 0.5, 1.0, 1.5, 2.0)),
    Degradation("noise", "additive Gaussian noise std ([0, 1] pixel units)", noise, (0.0, 0.02, 0.05, 0.1, 0.2)),
    Degradation("jpeg", "JPEG quality", jpeg, (None, 90, 60, 30, 10)),
    Degradation("contrast", "contrast factor", contrast, (1.0, 0.8, 0.6, 0.4, 0.2)),
    Degradation("shift", "shift right and down (px, edge fill)", shift, (0, 1, 2, 3, 4)),
)}


def drop_emotions(images: torch.Tensor, labels: torch.Tensor, drop: Sequence[int], seed: int) -> torch.Tensor:
    """The set with the faces of the emotions ``drop`` replaced by random faces of the other emotions.

    The labels stay those of the slots (a conditional model asked for a dropped emotion drew a face of
    another one), so the total and per-class counts are unchanged.

    Returns:
        uint8 images of the same shape.

    Raises:
        ValueError: every emotion dropped.
    """
    out = images.clone()
    if not len(drop):
        return out
    gone = torch.isin(labels, torch.as_tensor(list(drop), dtype=labels.dtype))
    pool = torch.nonzero(~gone).flatten()
    if len(pool) == 0:
        raise ValueError("drop_emotions: no face of a kept emotion left")
    g = torch.Generator().manual_seed(seed)
    slots = torch.nonzero(gone).flatten()
    out[slots] = images[pool[torch.randint(len(pool), (len(slots),), generator=g)]]
    return out


def collapse(images: torch.Tensor, labels: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The set collapsed to ``k`` distinct faces, repeated to the same size.

    With ``k`` at least the number of emotions present, the ``k`` faces hold at least one face of each
    emotion and every slot gets one of the faces of its own emotion (the labels stay true); with fewer,
    every slot gets one of the ``k`` faces and its label.

    Returns:
        ``(images, labels)``, each of the input's size.
    """
    g = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    k = max(1, min(int(k), n))
    classes = torch.unique(labels).tolist()
    if k < len(classes):
        chosen = torch.randperm(n, generator=g)[:k]
        pick = chosen[torch.randint(k, (n,), generator=g)]
        return images[pick].clone(), labels[pick].clone()
    first = [int(torch.nonzero(labels == c).flatten()[torch.randint(int((labels == c).sum()), (1,), generator=g)])
             for c in classes]
    rest = torch.tensor(sorted(set(range(n)) - set(first)), dtype=torch.long)
    chosen = torch.cat([torch.tensor(first, dtype=torch.long), rest[torch.randperm(len(rest), generator=g)[:k - len(first)]]])
    pick = torch.empty(n, dtype=torch.long)
    for c in classes:
        own = chosen[labels[chosen] == c]
        slots = torch.nonzero(labels == c).flatten()
        pick[slots] = own[torch.randint(len(own), (len(slots),), generator=g)]
    return images[pick].clone(), labels.clone()


def memorise(images: torch.Tensor, labels: torch.Tensor, train_images: torch.Tensor, train_labels: torch.Tensor,
             fraction: float, seed: int) -> torch.Tensor:
    """The set with ``fraction`` of its slots replaced by random train faces of the slot's emotion.

    The replaced slots of a smaller fraction are among those of a larger one (one permutation), so the
    sets are nested.
    """
    g = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    order = torch.randperm(n, generator=g)
    out = images.clone()
    m = int(round(float(fraction) * n))
    pick = torch.empty(n, dtype=torch.long)
    for c in torch.unique(labels).tolist():  # one train face per slot, drawn for every slot (independent of m)
        pool = torch.nonzero(train_labels == c).flatten()
        slots = torch.nonzero(labels == c).flatten()
        pick[slots] = pool[torch.randint(len(pool), (len(slots),), generator=g)]
    slots = order[:m]
    out[slots] = train_images[pick[slots]]
    return out
