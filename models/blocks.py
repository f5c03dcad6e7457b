"""Building blocks shared by several model plugins: adversarial losses, label maps, conditional
batch norm, and the SNGAN-style generator / discriminator trunks used by the ``default`` configs.

Sources: DCGAN (Radford et al. 2016); SNGAN "standard CNN" (Miyato et al. 2018, Table 3);
projection discriminator (Miyato & Koyama 2018); conditional batch norm (de Vries et al. 2017);
hinge loss (Lim & Ye 2017).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from exprbench.data import DataSpec

LOSSES = ("bce", "hinge", "lsgan")


@dataclass
class AdversarialConfig:
    """Hyper-parameters shared by the GAN-family plugins (each plugin subclasses it to add its own).

    Attributes:
        arch: ``sngan`` (the default nets of this module) or ``reference`` (the plugin's reference nets).
        z_dim: latent size.
        ch: base width of the ``sngan`` nets (ignored by ``reference``).
        loss: ``bce``, ``hinge`` or ``lsgan`` (see :func:`d_loss`).
        lr_g, lr_d: Adam learning rates of G and D.
        betas: Adam betas.
        upsample: how the ``sngan`` generator doubles its size: ``deconv`` (ConvTranspose2d 4x4 s2, the seeds'
            layers), ``nearest`` or ``bilinear`` (x2 resize then a 3x3 conv: no checkerboard footprint, Odena
            et al. 2016).
        diffaugment: DiffAugment policy on every image D and C see, e.g. ``translation,cutout`` (Zhao et al.
            2020; see :mod:`.diffaugment`); ``""`` is off.

    Ranges (checked by :mod:`exprbench.runs.config` when a value is set): ``z_dim`` and ``ch`` >= 1,
    learning rates > 0.
    """

    arch: str = "sngan"
    z_dim: int = field(default=128, metadata={"min": 1})
    ch: int = field(default=64, metadata={"min": 1})
    loss: str = "hinge"
    lr_g: float = field(default=2e-4, metadata={"gt": 0})
    lr_d: float = field(default=2e-4, metadata={"gt": 0})
    betas: tuple[float, float] = (0.5, 0.999)
    upsample: str = "deconv"
    diffaugment: str = ""


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from logits ``real``/``fake`` (any shape, float), a scalar.

    ``bce``: non-saturating GAN (Goodfellow et al. 2014); ``hinge``: Lim & Ye 2017;
    ``lsgan``: Mao et al. 2017 with targets 1 / 0.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())
    raise ValueError(f"unknown GAN loss {kind!r} (known: {', '.join(LOSSES)})")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from the discriminator's logits on fakes, a scalar (see :func:`d_loss`)."""
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1.0).pow(2).mean()
    raise ValueError(f"unknown GAN loss {kind!r} (known: {', '.join(LOSSES)})")


def r1_penalty(real_logit: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018, arXiv:1801.04406, eq. 9 without gamma/2): the batch mean
    of ||d D(x) / d x||^2 over real images, a scalar with a graph for D's update.

    Args:
        real_logit: D's logits on ``x_real`` (any shape; summed), computed with ``x_real`` requiring grad.
        x_real: the real images D saw, float N x C x H x W with ``requires_grad``.
    """
    (grad,) = torch.autograd.grad(real_logit.sum(), x_real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral normalization (Miyato et al. 2018) when ``enabled``."""
    return spectral_norm(module) if enabled else module


class LabelMap(nn.Module):
    """Label -> one extra image channel: Embedding(K, emb) -> Linear(emb, h*w) -> 1 x h x w.

    The label conditioning of the Keras cGAN/ACGAN FER2013 references (Mirza & Osindero 2014).
    Input int64 N; output float N x 1 x h x w.
    """

    def __init__(self, num_classes: int, h: int, w: int, emb_dim: int = 50) -> None:
        super().__init__()
        self.h, self.w = h, w
        self.emb = nn.Embedding(num_classes, emb_dim)
        self.fc = nn.Linear(emb_dim, h * w)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(c)).view(-1, 1, self.h, self.w)


class CondBatchNorm2d(nn.Module):
    """Conditional batch norm: BN without affine, then per-class gain and bias (de Vries et al. 2017).

    With ``num_classes == 0`` it is a plain ``BatchNorm2d``. Input float N x C x H x W, labels int64 N.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.bn(x)
        if self.num_classes:
            h = h * self.gain(c)[:, :, None, None] + self.bias(c)[:, :, None, None]
        return h


UPSAMPLES = ("deconv", "nearest", "bilinear")


def upsample_x2(cin: int, cout: int, mode: str) -> nn.Module:
    """A x2 up-sampling layer: ``deconv`` = ConvTranspose2d(4, 2, 1); ``nearest`` / ``bilinear`` = resize x2 then
    Conv2d(3, 1, 1) (resize-convolution, Odena et al. 2016, "Deconvolution and checkerboard artifacts": every
    output pixel gets the same number of kernel taps, so no period-2 pattern at initialisation).

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode == "deconv":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    if mode in ("nearest", "bilinear"):
        up = nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
        return nn.Sequential(up, nn.Conv2d(cin, cout, 3, 1, 1))
    raise ValueError(f"model.upsample={mode!r}: expected one of {', '.join(UPSAMPLES)}")


class DCGenerator(nn.Module):
    """SNGAN "standard CNN" generator, sized from the data: z -> base x base -> 3 x (up x2) -> image.

    ``base = H / 8`` (6 for 48x48 FER2013, 8 for 64x64 CelebA). Channels ``8ch, 4ch, 2ch, ch``.
    With ``num_classes > 0`` its batch norms are class-conditional (cBN). ``upsample`` picks the x2 layers
    (:func:`upsample_x2`: ConvT 4x4 s2 as in SNGAN, or resize + 3x3 conv).

    Input z float N x z_dim (and c int64 N); output float N x C x H x W in [-1, 1] (tanh).

    Raises:
        ValueError: image height or width not divisible by 8, or an unknown ``upsample``.
    """

    def __init__(self, spec: DataSpec, z_dim: int, ch: int, num_classes: int = 0, upsample: str = "deconv") -> None:
        super().__init__()
        if spec.height % 8 or spec.width % 8:
            raise ValueError(f"DCGenerator needs H and W divisible by 8, got {spec.height}x{spec.width}")
        self.bh, self.bw = spec.height // 8, spec.width // 8
        self.c0 = 8 * ch
        self.fc = nn.Linear(z_dim, self.c0 * self.bh * self.bw)
        chans = [8 * ch, 4 * ch, 2 * ch, ch]
        self.norms = nn.ModuleList([CondBatchNorm2d(c, num_classes) for c in chans])
        self.ups = nn.ModuleList([upsample_x2(a, b, upsample) for a, b in zip(chans[:-1], chans[1:])])
        self.out = nn.Conv2d(ch, spec.channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.bh, self.bw)
        h = F.relu(self.norms[0](h, c))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = F.relu(norm(up(h), c))
        return torch.tanh(self.out(h))


class SNDiscriminatorTrunk(nn.Module):
    """SNGAN "standard CNN" discriminator body: image -> feature vector (global sum pooling).

    Pairs of (3x3 s1, 4x4 s2) convs at ``ch, 2ch, 4ch`` then a 3x3 conv at ``8ch``, LeakyReLU 0.1,
    spectral norm on every layer. Input float N x C x H x W; output float N x 8ch (``out_dim``).
    """

    def __init__(self, spec: DataSpec, ch: int, sn: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = spec.channels
        for cout in (ch, 2 * ch, 4 * ch):
            layers += [maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), sn), nn.LeakyReLU(0.1)]
            layers += [maybe_sn(nn.Conv2d(cout, cout, 4, 2, 1), sn), nn.LeakyReLU(0.1)]
            cin = cout
        layers += [maybe_sn(nn.Conv2d(cin, 8 * ch, 3, 1, 1), sn), nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*layers)
        self.out_dim = 8 * ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).sum(dim=(2, 3))


class BNClassifier(nn.Module):
    """A small BatchNorm CNN classifier for an auxiliary class loss (not spectrally normalized).

    Stages ``ch`` (one conv3x3-BN-ReLU at full resolution), ``2ch`` and ``4ch`` (two each), a 2x2 max
    pool after each stage, global average pooling, a linear layer to ``num_classes`` logits.
    Input float N x C x H x W in [-1, 1]; output float N x num_classes (logits).
    """

    def __init__(self, spec: DataSpec, ch: int) -> None:
        super().__init__()

        def conv(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        self.body = nn.Sequential(
            *conv(spec.channels, ch), nn.MaxPool2d(2),
            *conv(ch, 2 * ch), *conv(2 * ch, 2 * ch), nn.MaxPool2d(2),
            *conv(2 * ch, 4 * ch), *conv(4 * ch, 4 * ch), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(4 * ch, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))
