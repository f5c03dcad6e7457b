"""The VAE's encoder and decoder nets (see :mod:`.vae` and docs/MODELS.md, "VAE").

c enters E as K constant one-hot label maps concatenated to the image channels, and D concatenated to
z (the ``resnet`` decoder also through class-conditional batch norm). Label vectors y (float N x K) may
be soft (edits): D takes them linearly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import DataSpec

from .blocks import CondBatchNorm2d



def label_vector(c: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 N labels -> float32 N x K one-hot; float N x K label vectors (soft, for edits) pass through."""
    return c.float() if c.is_floating_point() else F.one_hot(c, num_classes).float()


def label_maps(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[x | y as K constant maps]: float N x (C + K) x H x W."""
    return torch.cat([x, y.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


def fp32_out(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` in float32 outside autocast (bf16 resolves ~1/128, a bin is 2/255 wide)."""
    with torch.autocast(h.device.type, enabled=False):
        return layer(h.float())


def cond_bn(norm: CondBatchNorm2d, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``norm(h, c)`` for label vectors y (N x K): gain/bias = y @ table, equal to the lookup for one-hot y."""
    if not norm.num_classes:
        return norm(h, None)
    h = norm.bn(h)
    return h * (y @ norm.gain.weight)[:, :, None, None] + (y @ norm.bias.weight)[:, :, None, None]


def _encoder_head(spec: DataSpec, width: int, stages: int, z_dim: int) -> nn.Linear:
    return nn.Linear(width * (spec.height >> stages) * (spec.width >> stages), 2 * z_dim)


def _split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = out.float().chunk(2, dim=1)
    return mu, logvar.clamp(-30.0, 20.0)


class RefEncoder(nn.Module):
    """E(x, c): [x | K label maps] -> [Conv 4x4 s2 + BN + ReLU] per width -> Dense -> (mu, logvar).

    Inputs x float N x C x H x W, y float N x K; outputs two float32 N x z_dim.
    """

    def __init__(self, spec: DataSpec, z_dim: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = spec.channels + spec.num_classes
        for w in widths:
            layers += [nn.Conv2d(cin, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.head = _encoder_head(spec, cin, len(widths), z_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.head(self.net(label_maps(x, y))))


class RefDecoder(nn.Module):
    """D(z, c): [z | onehot c] -> Dense + ReLU -> [ConvT 4x4 s2 + BN + ReLU] -> ConvT 4x4 s2 -> params.

    Inputs z float N x z_dim, c int64 N or float N x K; output float32 N x (m C) x H x W (m = 1 logits,
    m = 2 location and log-scale).
    """

    def __init__(self, spec: DataSpec, z_dim: int, widths: tuple[int, ...], m: int) -> None:
        super().__init__()
        L, self.k = len(widths), spec.num_classes
        self.c0, self.h0, self.w0 = widths[-1], spec.height >> L, spec.width >> L
        self.fc = nn.Sequential(nn.Linear(z_dim + self.k, self.c0 * self.h0 * self.w0), nn.ReLU())
        rev, layers = widths[::-1], []
        for a, b in zip(rev[:-1], rev[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out = nn.ConvTranspose2d(widths[0], m * spec.channels, 4, 2, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        y = label_vector(c, self.k)
        h = self.fc(torch.cat([z, y.to(z.dtype)], dim=1)).view(-1, self.c0, self.h0, self.w0)
        return fp32_out(self.out, self.net(h))


class ResBlock(nn.Module):
    """Pre-activation residual block x + Conv3x3(SiLU(BN(Conv3x3(SiLU(BN(x)))))); class-conditional
    BNs (label vectors y) when ``num_classes > 0``."""

    def __init__(self, ch: int, num_classes: int = 0) -> None:
        super().__init__()
        self.n1, self.n2 = CondBatchNorm2d(ch, num_classes), CondBatchNorm2d(ch, num_classes)
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(F.silu(cond_bn(self.n1, x, y)))
        return x + self.c2(F.silu(cond_bn(self.n2, h, y)))


class ResEncoder(nn.Module):
    """E(x, c): Conv3x3 on [x | K label maps], per width a ResBlock then Conv 4x4 s2, BN + SiLU, Dense.

    Inputs x float N x C x H x W, y float N x K; outputs two float32 N x z_dim (mu, logvar).
    """

    def __init__(self, spec: DataSpec, z_dim: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(spec.channels + spec.num_classes, widths[0], 3, 1, 1)]
        for i, w in enumerate(widths):
            layers += [ResBlock(w), nn.Conv2d(w, widths[min(i + 1, len(widths) - 1)], 4, 2, 1)]
        layers += [nn.BatchNorm2d(widths[-1]), nn.SiLU(), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.head = _encoder_head(spec, widths[-1], len(widths), z_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.head(self.net(label_maps(x, y))))


class ResDecoder(nn.Module):
    """D(z, c): Dense([z | onehot c]) at H / 2^L, per width (reversed) ConvT 4x4 s2 then a class-conditional
    ResBlock, cBN + SiLU, Conv3x3 -> params (see :class:`RefDecoder` for shapes)."""

    def __init__(self, spec: DataSpec, z_dim: int, widths: tuple[int, ...], m: int) -> None:
        super().__init__()
        L, k = len(widths), spec.num_classes
        self.k, self.c0, self.h0, self.w0 = k, widths[-1], spec.height >> L, spec.width >> L
        self.fc = nn.Linear(z_dim + k, self.c0 * self.h0 * self.w0)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[min(i + 1, L - 1)], widths[i], 4, 2, 1)
                                  for i in reversed(range(L))])
        self.blocks = nn.ModuleList([ResBlock(widths[i], k) for i in reversed(range(L))])
        self.norm = CondBatchNorm2d(widths[0], k)
        self.out = nn.Conv2d(widths[0], m * spec.channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        y = label_vector(c, self.k)
        h = self.fc(torch.cat([z, y.to(z.dtype)], dim=1)).view(-1, self.c0, self.h0, self.w0)
        for up, block in zip(self.ups, self.blocks):
            h = block(up(h), y)
        return fp32_out(self.out, F.silu(cond_bn(self.norm, h, y)))


class GaussianPrior(nn.Module):
    """The VAE's prior p(z | c) = N(mu_c, diag exp(logvar_c)).

    With ``num_classes`` > 0 the per-class means and log-variances are learned (initialised at N(0, I)):
    a class-conditional prior, so sampling draws from where each class's posteriors lie and the KL term
    no longer pulls every class to one centre (the "holes" an ex-post per-class Gaussian closes, Ghosh
    et al. 2020). With 0 it is the standard normal N(0, I) (Kingma & Welling 2014) and has no parameters.
    ``c`` is int64 N (or any shape S of labels); outputs broadcast over leading sample axes of ``z``.
    """

    def __init__(self, z_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.z_dim, self.learned = z_dim, num_classes > 0
        if self.learned:
            self.mu = nn.Parameter(torch.zeros(num_classes, z_dim))
            self.logvar = nn.Parameter(torch.zeros(num_classes, z_dim))

    def params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of classes ``c``: float32 S x z_dim each (zeros for the standard prior)."""
        if self.learned:
            return self.mu[c], self.logvar[c]
        z = torch.zeros(*c.shape, self.z_dim, device=c.device)
        return z, z

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || p(z | c)) per dimension, nats, float N x z_dim."""
        mp, lp = self.params(c)
        return 0.5 * (lp - logvar + (logvar.exp() + (mu - mp).pow(2)) * torch.exp(-lp) - 1.0)

    def log_prob(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """log p(z | c) without the -D/2 log(2 pi) constant, nats, float ... x N (z: ... x N x z_dim)."""
        mp, lp = self.params(c)
        return -0.5 * ((z - mp).pow(2) * torch.exp(-lp) + lp).sum(-1)

    def sample(self, eps: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """mu_c + exp(logvar_c / 2) * eps for standard normal ``eps`` (float N x z_dim)."""
        mp, lp = self.params(c.to(eps.device))
        return mp + torch.exp(0.5 * lp) * eps
