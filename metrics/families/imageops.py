"""Inputs shared by the metrics over a model plugin: capability and image / label checks, batching,
per-image L1 and SSIM (Wang et al. 2004; ``kornia.metrics.ssim``, 11x11 Gaussian window).

Images enter and leave as uint8 N x C x H x W (0..255, the real data's form); L1 and SSIM are measured on
the [0, 1] pixel scale (uint8 / 255, SSIM data range 1), per image.
"""

from __future__ import annotations

from typing import Callable

import torch

from exprbench.core.errors import UserError

Classifier = Callable[[torch.Tensor], torch.Tensor]  # uint8 N x C x H x W -> int64 N labels
Features = Callable[[torch.Tensor], torch.Tensor]  # uint8 N x C x H x W -> float N x D


class CapabilityMetricError(UserError):
    """Bad inputs to a capability metric, or a model without the capability it needs."""


# --------------------------------------------------------------------------------------------
# inputs


def need(model, capability: str) -> None:
    if capability not in getattr(model, "capabilities", ()):
        raise CapabilityMetricError(f"model {getattr(model, 'name', model)!r} lacks the capability {capability!r}")


def check_model_images(images, spec, what: str) -> torch.Tensor:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4:
        raise CapabilityMetricError(f"{what}: expected uint8 images N x C x H x W (0..255), got "
                                    f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if tuple(images.shape[1:]) != (spec.channels, spec.height, spec.width):
        raise CapabilityMetricError(f"{what}: expected N x {spec.channels} x {spec.height} x {spec.width}, "
                                    f"got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise CapabilityMetricError(f"{what}: empty set (0 images)")
    return images.cpu()


def check_labels(labels, n: int, k: int, what: str) -> torch.Tensor:
    if not torch.is_tensor(labels) or labels.shape != (n,) or labels.is_floating_point():
        raise CapabilityMetricError(f"{what}: expected an int64 tensor of {n} labels")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise CapabilityMetricError(f"{what}: labels outside 0..{k - 1}")
    return labels.long().cpu()


def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    for i in range(0, tensors[0].shape[0], batch_size):
        out.append(fn(*(t[i : i + batch_size] for t in tensors)).cpu())
    return torch.cat(out)


def _unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def l1_ssim(a: torch.Tensor, b: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean absolute difference and SSIM of two uint8 image sets N x C x H x W.

    Returns (l1 float N in [0, 1], ssim float N in [-1, 1]), both on the [0, 1] pixel scale; SSIM with
    ``kornia.metrics.ssim`` (11x11 Gaussian window, sigma 1.5, max_val 1), averaged over its map.
    """
    from kornia.metrics import ssim

    l1s, ss = [], []
    for i in range(0, a.shape[0], batch_size):
        x, y = _unit(a[i : i + batch_size]), _unit(b[i : i + batch_size])
        l1s.append((x - y).abs().flatten(1).mean(1))
        ss.append(ssim(x, y, window_size=11, max_val=1.0).flatten(1).mean(1))
    return torch.cat(l1s), torch.cat(ss)


