"""Pixel likelihoods as small objects (EDM ``training/loss.py`` style), shared by the VAE and the flow.

Images are float32 N x C x H x W in [-1, 1] holding uint8 values k / 127.5 - 1 (k = 0..255); every
log-probability is in nats per image (float32 N), summed over the D = C * H * W pixel values.
The VAE picks a decoder model by ``model.likelihood`` (:data:`PIXEL_MODELS`); the flow uses
:class:`UniformDequantization`. Derivations: docs/MODELS.md ("Pixel likelihoods").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG256 = math.log(256.0)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> their uint8 values 0..255 as float32 (rounded: re-quantizes augmented images)."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Snap images in [-1, 1] to the 256 levels k / 127.5 - 1 (k = 0..255)."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255) / 127.5 - 1.0


def nats_to_bpd(nll: torch.Tensor, dims: int) -> torch.Tensor:
    """A negative log-likelihood in nats per image -> bits per dimension (``dims`` = C * H * W)."""
    return nll / (dims * math.log(2))


class Binomial:
    """Binomial(255, sigmoid(l)) pixels of a Bernoulli-mean decoder (the VAE reference's loss; Kingma &
    Welling 2014, app. C.1, with the discrete model of docs/MODELS.md). Config name ``bernoulli``.

    Training minimizes the BCE of sigmoid(l) against the continuous targets (x + 1) / 2 (the binomial
    log-likelihood up to a constant and a factor 1/255); likelihoods use the binomial itself.
    """

    params_per_channel = 1  # the logits l

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log Binomial(k; 255, sigmoid(l)), k = round((x + 1) 127.5): float32 N nats."""
        logits, k = params.float(), to_levels(x)
        log_choose = math.lgamma(256.0) - torch.lgamma(k + 1.0) - torch.lgamma(256.0 - k)
        return (log_choose + k * F.logsigmoid(logits) + (255.0 - k) * F.logsigmoid(-logits)).flatten(1).sum(1)

    def recon_loss(self, params: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(training reconstruction term: BCE summed per image, log p(x) without gradient), float32 N each."""
        target = (x.float() + 1.0) / 2.0
        recon = F.binary_cross_entropy_with_logits(params.float(), target, reduction="none").flatten(1).sum(1)
        with torch.no_grad():
            return recon, self.log_prob(params, x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mean image 2 sigmoid(l) - 1, float32 N x C x H x W in [-1, 1]."""
        return torch.sigmoid(params.float()) * 2.0 - 1.0


class DiscretizedLogistic:
    """The discretized logistic over 256 bins of width 2/255 with open edge bins (PixelCNN++, Salimans
    et al. 2017, eq. 2; one component, log-scale >= -7). Config name ``discretized``."""

    params_per_channel = 2  # location m, log-scale s
    min_log_scale = -7.0
    half_bin = 1.0 / 255.0

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log P(x | m, s) summed per image, float32 N nats (off-grid x gets the bin around it)."""
        params, x, C = params.float(), x.float(), self.channels
        loc, log_scale = params[:, :C], params[:, C:].clamp(min=self.min_log_scale)
        centered, inv_s = x - loc, torch.exp(-log_scale)
        plus_in, min_in = inv_s * (centered + self.half_bin), inv_s * (centered - self.half_bin)
        log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): the edge bin at -1
        log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid(min_in)): the edge bin at +1
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        mid_in = inv_s * centered
        log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) - math.log(127.5)  # density x bin width
        inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        lp = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))
        return lp.flatten(1).sum(1)

    def recon_loss(self, params: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(x), log p(x)), float32 N each (the training term is the likelihood itself)."""
        log_px = self.log_prob(params, x)
        return -log_px, log_px

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The location clamp(m, -1, 1), float32 N x C x H x W."""
        return params.float()[:, : self.channels].clamp(-1.0, 1.0)


#: ``model.likelihood`` -> the VAE's decoder pixel model
PIXEL_MODELS = {"bernoulli": Binomial, "discretized": DiscretizedLogistic}


class UniformDequantization:
    """A continuous density on y = (x_int + u) / 256 - 0.5 in [-0.5, 0.5], u ~ U(0, 1)^D, bounds the
    discrete likelihood: -log2 P(x_int) <= -(log p_y(y) - D log 256) / ln 2 (Theis et al. 2016, sec. 3.1;
    Glow's input range, Kingma & Dhariwal 2018)."""

    @staticmethod
    def dequantize(x_int: torch.Tensor, u: torch.Tensor | float) -> torch.Tensor:
        """y = (x_int + u) / 256 - 0.5 (u in [0, 1); Jacobian 256**-D)."""
        return (x_int + u) / 256.0 - 0.5

    @staticmethod
    def to_image(y: torch.Tensor) -> torch.Tensor:
        """Inverse of ``dequantize(x_int, 0.5)`` mapped to [-1, 1]: ((y + 0.5) * 256 - 0.5) / 127.5 - 1, clamped."""
        return (((y + 0.5) * 256.0 - 0.5) / 127.5 - 1.0).clamp(-1, 1)

    @staticmethod
    def bits_per_dim(log_p_y: torch.Tensor, dims: int) -> torch.Tensor:
        """Bits/dim of the discrete images from log p_y(y) in nats: -log p_y / (D ln 2) + 8."""
        return (-log_p_y / dims + LOG256) / math.log(2.0)
