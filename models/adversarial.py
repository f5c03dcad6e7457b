"""The adversarial update written once (mimicry ``nets/gan/gan.py`` style): every GAN-family plugin
(gan, cgan, acgan, bigan, bicogan, ccyclegan) subclasses :class:`AdversarialPlugin` and supplies its
nets, its defaults and its loss terms; the skeleton of a step lives here:

    pre_step(batch)                                 optional extra update (ACGAN's classifier C)
    no_grad: real_in, fake_in, ctx = d_inputs(batch)   the fakes (and any encodings) for D
    real_out, fake_out = D(*real_in), D(*fake_in)   D(real) before D(fake)
    D update on d_objective(...)
    D frozen: G update (with ``g_nets``' optimizers together) on g_objective(batch, ctx)

The order of random draws and of forward passes is the plugins' own (kept exactly: the same seed
gives the same numbers as the hand-written steps this replaces).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .base import Batch, ModelPlugin
from .real_classifier import RealClassifierMixin
from .runtime import frozen, joint_step, optimizer_step

Inputs = tuple[torch.Tensor, ...]


class AdversarialPlugin(RealClassifierMixin, ModelPlugin):
    """Base of the GAN-family plugins: one D update, then one G update with D frozen, per step.

    D and the real-face classifier C (:class:`~.real_classifier.RealClassifierMixin`, where a plugin has one)
    DiffAugment every image they see when ``cfg.diffaugment`` is set (Zhao et al. 2020), real and fake, in
    every update: written once here for every GAN-family plugin.

    Subclasses implement :meth:`d_inputs`, :meth:`d_objective` and :meth:`g_objective` (and
    :meth:`pre_step` where they train another net first); ``g_nets`` names the nets the G update
    steps together (``("G",)``, or ``("G", "E")`` for bidirectional GANs), ``g_loss_name`` the log key
    of its loss. ``self.nets["D"]`` is the discriminator.
    """

    g_nets: ClassVar[tuple[str, ...]] = ("G",)
    augmented_nets: ClassVar[tuple[str, ...]] = ("D", "C")
    g_loss_name: ClassVar[str] = "loss_g"

    # -- the hooks -----------------------------------------------------------------------------
    def pre_step(self, batch: Batch) -> dict[str, float]:
        """An update before D's (default: none); returns its logs."""
        return {}

    def d_inputs(self, batch: Batch) -> tuple[Inputs, Inputs, dict[str, Any]]:
        """Under ``torch.no_grad()``: D's arguments for the real side and the fake side, plus a context
        dict handed to :meth:`d_objective` and :meth:`g_objective` (e.g. the fakes' labels)."""
        raise NotImplementedError

    def d_objective(self, batch: Batch, real_out: Any, fake_out: Any, ctx: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """D's loss (a scalar) from its outputs on the real and fake side, and logs (floats)."""
        raise NotImplementedError

    def g_objective(self, batch: Batch, ctx: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The G update's loss (scalar; D is frozen) from fresh fakes, and logs (floats)."""
        raise NotImplementedError

    # -- the skeleton -------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One D update then one G update (see the module docstring); returns the hooks' logs with
        ``loss_d`` and :attr:`g_loss_name` first."""
        D = self.nets["D"]
        logs = self.pre_step(batch)
        with torch.no_grad():
            real_in, fake_in, ctx = self.d_inputs(batch)
        real_out = D(*real_in)
        fake_out = D(*fake_in)
        loss_d, logs_d = self.d_objective(batch, real_out, fake_out, ctx)
        optimizer_step(self.optimizers["D"], loss_d)
        with frozen(D):
            loss_g, logs_g = self.g_objective(batch, ctx)
            joint_step([self.optimizers[k] for k in self.g_nets], loss_g)
        return {**logs, "loss_d": loss_d.item(), self.g_loss_name: loss_g.item(), **logs_g, **logs_d}

    # -- construction and generation helpers ----------------------------------------------------------
    def init_adversarial(self, builders: dict[str, Callable[[], tuple[nn.Module, nn.Module]]]) -> None:
        """:meth:`init_nets` for a (G, D) pair with ``cfg.lr_g`` and ``cfg.lr_d`` (an ``AdversarialConfig``)."""
        self.init_nets({arch: (lambda make=make: dict(zip(("G", "D"), make()))) for arch, make in builders.items()},
                       {"G": self.cfg.lr_g, "D": self.cfg.lr_d})

    def noise(self, n: int) -> torch.Tensor:
        """Training latents z ~ N(0, I), float32 n x ``cfg.z_dim``, drawn on the device from the global RNG."""
        return torch.randn(n, self.cfg.z_dim, device=self.device)

    def draw_fake(self, c: torch.Tensor, z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes for a training step of a ``G(z, c)`` model: (images N x C x H x W, their labels N).

        Args:
            c: int64 N labels for the fakes: the real batch's labels, so fake labels follow the
                training-label distribution (a D that sees c could otherwise score label frequency;
                see docs/MODELS.md). Metrics keep their class-balanced sampling.
            z_dim: latent size; z ~ N(0, I) is drawn on the device from the global RNG.
        """
        z = torch.randn(c.shape[0], z_dim, device=self.device)
        return self.nets["G"](z, c), c

    def latent_inputs(self, n: int, z_dim: int, generator: torch.Generator) -> Inputs:
        """``(z,)`` for an unconditional ``G(z)``, ``(z, c)`` with uniform labels for a conditional
        ``G(z, c)``: z float32 n x z_dim ~ N(0, I), c int64 n, both drawn with the CPU ``generator``."""
        z = self.randn(n, z_dim, generator=generator)
        if "conditional" in self.capabilities:
            return z, self.random_labels(n, generator).to(self.device)
        return (z,)

    def bn_calibration_inputs(self, n: int, generator: torch.Generator) -> Inputs | None:
        """``latent_inputs`` of G for the EMA BatchNorm recalibration (``cfg.z_dim``-sized latents)."""
        return self.latent_inputs(n, self.cfg.z_dim, generator)

    def conditional_sample(self, n: int, z_dim: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """``sample`` for a generator ``G(z, c)`` with z ~ N(0, I) of size ``z_dim`` (z, then uniform
        labels when None, drawn with the CPU ``generator``)."""
        z = self.randn(n, z_dim, generator=generator)
        if labels is None:
            labels = self.random_labels(n, generator)
        return self.generate(z, labels.to(self.device))
