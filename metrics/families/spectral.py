"""Spectral footprint of an image set (the ``spectral`` protocol): where generators leave up-sampling marks.

From the mean power spectrum of mean-removed images (Durall et al. 2020, "Watch your up-convolution: CNN
based generative deep neural networks are failing to reproduce spectral distributions"; Dzanic et al.
2020, "Fourier spectrum discrepancies in deep network generated images"):

* ``checker``: the share of power at the period-2 frequency (H/2, W/2), the footprint of stride-2
  transposed convolutions (Odena et al. 2016, "Deconvolution and checkerboard artifacts");
* ``rowcol``: the share on the period-2 row and column (u = H/2 or v = W/2), stripes and grids;
* ``high``: the share above 2/3 of the Nyquist radius;
* ``radial_db``: the mean absolute difference, in dB, between the radially averaged power spectra of the
  set and of real faces, over the radii 1 .. H/2.

Shares are fractions of the total power; the protocol reports each as a ratio to real faces' share (1 =
like real faces). Images are uint8 N x 1 x H x W (gray; RGB is averaged over channels), read on the
[0, 1] scale.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from exprbench.core.errors import UserError

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext

SHARES = ("checker", "rowcol", "high")
HIGH_FRACTION = 2.0 / 3.0  # of the Nyquist radius
SHARE_FLOOR = 1e-8  # added to both shares of a ratio (real faces' checker share: about 6e-6)


class SpectralInputError(UserError):
    """An image set the spectral footprint cannot be measured on (one line: the protocol and the requirement)."""


def mean_power_spectrum(images: torch.Tensor, what: str = "spectral", batch_size: int = 4096) -> torch.Tensor:
    """Mean |FFT|^2 of mean-removed images: float64 H x W, DC at index (0, 0) (not shifted).

    Args:
        images: uint8 N x C x H x W (0..255), N >= 2, H = W even.
        what: the protocol name for error messages.

    Raises:
        SpectralInputError: not uint8 4-D, fewer than 2 images, odd or non-square size, or zero total power
            (every image constant).
    """
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4:
        raise SpectralInputError(f"{what}: needs uint8 images N x C x H x W, got "
                                 f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    n, _, h, w = images.shape
    if n < 2:
        raise SpectralInputError(f"{what}: needs at least 2 images, got {n}")
    if h != w or h % 2:
        raise SpectralInputError(f"{what}: needs square images of an even size, got {h} x {w}")
    total = torch.zeros(h, w, dtype=torch.float64)
    for i in range(0, n, batch_size):
        x = images[i : i + batch_size].double().mean(1) / 255.0
        x = x - x.mean((1, 2), keepdim=True)
        total += torch.fft.fft2(x).abs().pow(2).sum(0)
    power = total / n
    if float(power.sum()) <= 0:
        raise SpectralInputError(f"{what}: every image is constant (no power after removing its mean); "
                                 "the spectrum needs images with contrast")
    return power


def _radius(size: int) -> torch.Tensor:
    f = torch.fft.fftfreq(size, dtype=torch.float64) * size  # integer frequency indices, -size/2 .. size/2 - 1
    return torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def spectrum_shares(power: torch.Tensor) -> dict[str, float]:
    """``checker``, ``rowcol`` and ``high`` shares (fractions of total power) of a :func:`mean_power_spectrum`."""
    h = power.shape[0]
    tot = float(power.sum())
    half = h // 2
    rowcol = float(power[half, :].sum() + power[:, half].sum() - power[half, half])
    high = float(power[_radius(h) > HIGH_FRACTION * half].sum())
    return {"checker": float(power[half, half]) / tot, "rowcol": rowcol / tot, "high": high / tot}


def radial_profile(power: torch.Tensor) -> list[float]:
    """Radially averaged power at integer radii 1 .. H/2 (rounded radius bins), H/2 floats."""
    h = power.shape[0]
    r = _radius(h).round().long()
    out = []
    for k in range(1, h // 2 + 1):
        m = r == k
        out.append(float(power[m].mean()))
    return out


def radial_distance_db(profile: list[float], real_profile: list[float]) -> float:
    """Mean |10 log10(p / p_real)| over the radii, in dB (0 = the same radial spectrum)."""
    tiny = 1e-30
    return sum(abs(10 * math.log10((a + tiny) / (b + tiny))) for a, b in zip(profile, real_profile)) / len(profile)


def spectral_footprint(images: torch.Tensor, real_power: torch.Tensor, what: str = "spectral") -> dict:
    """The footprint of ``images`` against real faces' mean power spectrum.

    Args:
        images: uint8 N x C x H x W (see :func:`mean_power_spectrum`).
        real_power: :func:`mean_power_spectrum` of the real faces (float64 H x W).
        what: the protocol name for error messages.

    Returns:
        ``{"checker_ratio", "rowcol_ratio", "high_ratio": (share + 1e-8) / (real share + 1e-8), "radial_db": float,
        "shares": {..}, "real_shares": {..}, "radial": [H/2 floats], "real_radial": [..]}``.

    Raises:
        SpectralInputError: bad images (see :func:`mean_power_spectrum`) or a size other than the real faces'.
    """
    if torch.is_tensor(images) and images.dim() == 4 and tuple(images.shape[2:]) != tuple(real_power.shape):
        raise SpectralInputError(f"{what}: images are {images.shape[2]} x {images.shape[3]}, the real faces "
                                 f"{real_power.shape[0]} x {real_power.shape[1]}: the ratios need the real faces' size")
    power = mean_power_spectrum(images, what)
    shares, real_shares = spectrum_shares(power), spectrum_shares(real_power)
    prof, real_prof = radial_profile(power), radial_profile(real_power)
    out = {f"{k}_ratio": (shares[k] + SHARE_FLOOR) / (real_shares[k] + SHARE_FLOOR) for k in SHARES}
    return {**out, "radial_db": radial_distance_db(prof, real_prof), "shares": shares, "real_shares": real_shares,
            "radial": prof, "real_radial": real_prof}


def compute_spectral(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``spectral``: the footprint of n generated images (``fid10k_train``'s set: same count and seed) against the
    full train split's mean power spectrum; value = checker ratio (> 0, 1 = like real faces)."""
    train_power = ctx.memo("train_power", lambda: mean_power_spectrum(ctx.train.images, spec.name))
    images, _ = ctx.generate(spec.n_samples, spec.seed, per_class=False)
    return _footprint_entry(spec, images, train_power)


def reference_spectral(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``spectral`` of the real test faces in place of generated ones (ratios about 1)."""
    train_power = ctx.memo("train_power", lambda: mean_power_spectrum(ctx.train.images, spec.name))
    return _footprint_entry(spec, ctx.test.images, train_power)


def _footprint_entry(spec: MetricSpec, images: torch.Tensor, train_power: torch.Tensor) -> Entry:
    fp = spectral_footprint(images, train_power, spec.name)
    return {"value": fp["checker_ratio"], "n_samples": int(images.shape[0]), "extractor_sha256": None,
            "details": {**fp, "reference": "the train split's mean power spectrum",
                        "statistic": "share of power at the period-2 frequency (H/2, W/2), as a ratio to the train "
                                     "faces' share (1 = like real faces)"}}
