"""The two fixed low-pass filters of the low-pass protocols (``acc_gen_blur``, ``acc_gen_resample``, ...).

Each maps uint8 N x C x H x W (0..255) to uint8 of the same shape, deterministic and independent of
batching:

* :func:`blur3`: a 3x3 Gaussian blur with sigma 0.8 pixels (torchvision ``gaussian_blur``, reflect
  padding): real faces lose almost no expression (evaluator accuracy 0.591 -> 0.585 on PrivateTest),
  a pixel-exact high-frequency mark is smeared;
* :func:`resample24`: 48 -> 24 -> 48 bilinear resampling (antialiased down, plain up): nothing above half
  the Nyquist frequency survives.

A model whose class evidence is expression loses under these filters about what real faces lose; the
excess drop (model's drop minus real faces') measures the share written as fine marks (Odena et al. 2016,
"Deconvolution and checkerboard artifacts"; Durall et al. 2020, "Watch your up-convolution").
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

BLUR_SIGMA = 0.8
BLUR_KERNEL = 3
RESAMPLE_SIZE = 24


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def blur3(images: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian blur, sigma 0.8 px: uint8 N x C x H x W -> uint8 N x C x H x W."""
    from torchvision.transforms.v2.functional import gaussian_blur

    return _to_uint8(gaussian_blur(images.float(), [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA]))


def resample24(images: torch.Tensor) -> torch.Tensor:
    """Bilinear H x W -> 24 x 24 (antialiased) -> H x W: uint8 N x C x H x W -> uint8 N x C x H x W."""
    x = images.float()
    small = F.interpolate(x, size=(RESAMPLE_SIZE, RESAMPLE_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return _to_uint8(F.interpolate(small, size=tuple(images.shape[2:]), mode="bilinear", align_corners=False))


#: the filters by the suffix their protocols carry: ``acc_gen`` -> ``acc_gen_blur`` / ``acc_gen_resample``
LOWPASS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"blur": blur3, "resample": resample24}
