"""Conditional variational autoencoder (cVAE): encoder E(x, c) -> q(z | x, c) = N(mu, diag exp(logvar)),
decoder D(z, c) -> p(x | z, c), prior p(z) = N(0, I).

Sources: Kingma & Welling 2014, arXiv:1312.6114 (ELBO, reparameterization); Sohn et al. 2015 (the
conditional form); Higgins et al. 2017 (beta-VAE); Burda et al. 2016, arXiv:1509.00519 (IWAE bound,
active units); Kingma et al. 2016, arXiv:1606.04934 (free bits); Salimans et al. 2017, arXiv:1701.05517
(discretized logistic). The objective, the pixel models (:mod:`.likelihoods`), the configs and the
edit recipe are written out in docs/MODELS.md ("VAE").

Net names: the decoder D(z, c) is ``nets["G"]`` (the harness's generator EMA, ``sampling_net`` and
sample grids address the generator as "G"; "D" means a discriminator everywhere else), the encoder
``nets["E"]``. All decoding uses :meth:`~.base.ModelPlugin.sampling_net` (the EMA decoder when
``train.ema`` is on) and E in eval mode.

Configs: ``reference`` (the deeper conv VAE of the facts, conditional, Bernoulli pixels, 2,243 steps)
and ``default`` (residual nets, z 128, discretized-logistic pixels, KL warm-up, free bits).
Capabilities: ``sample``, ``conditional``, ``encode`` (posterior mean; the class inferred from per-class
ELBOs when not given), ``translate``, ``likelihood`` (the ELBO bound, ``likelihood_exact`` False),
``iw_likelihood`` (the IWAE bound) and ``edit`` (attribute vectors, ``offset`` mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from exprbench.data import DataSpec

from . import register_model
from .base import Batch, ModelPlugin
from .contracts import (AttributeVectorEditor, Conditional, Encoder, IWLikelihood, Likelihood, Sampler, Translator,
                        class_mean_differences)
from .likelihoods import PIXEL_MODELS, nats_to_bpd, quantize
from .real_classifier import RealClassifierMixin
from .runtime import evaluating, joint_step
from .vae_nets import GaussianPrior, RefDecoder, RefEncoder, ResDecoder, ResEncoder

LIKELIHOODS = tuple(PIXEL_MODELS)
DECODE_CHUNK = 2048  # images per decoder call in the likelihood bounds


@dataclass
class VAEConfig:
    """Hyper-parameters of the conditional VAE (see the module docstring for the objective).

    Attributes:
        arch: ``resnet`` (the default nets) or ``reference`` (the plain conv VAE of the facts).
        z_dim: latent size.
        channels: encoder widths, one per stride-2 stage (the decoder mirrors them); H and W must be
            divisible by 2 ** len(channels).
        ch: when > 0, the widths are ``ch * 2**i`` for the ``len(channels)`` stages instead (the
            ``model.ch`` width knob shared with the GAN plugins; tests use it).
        beta: KL weight (beta-VAE; 1 = the ELBO).
        kl_warmup: fraction of the run's budget (``Batch.progress``) over which the KL weight rises
            linearly from 0 to ``beta`` (0 = off), so a run of any length ends on the ELBO it reports.
        free_bits: per-latent-dimension floor on the batch-mean KL in nats (0 = off).
        likelihood: pixel model, ``bernoulli`` or ``discretized``.
        lr, betas: Adam settings of E and D (one optimizer each, stepped together).
        edit_labels: attribute vectors include the label part of the edit latent (see
            :meth:`VAE.edit_fit`); False keeps the label fixed and moves z only.
        prior: ``standard`` (N(0, I)) or ``class`` (learned p(z | c), :class:`~.vae_nets.GaussianPrior`).
        cls_weight: weight of the class loss CE(C(D(z, c)), c) on decoded prior samples, C a real-face
            classifier of width ``cls_ch`` (Adam at ``lr_c``) trained on real faces only (CVAE-GAN, Bao et
            al. 2017): the ELBO alone lets D ignore c (0 = off, the plain CVAE).
        diffaugment: DiffAugment policy on every image C sees (see :mod:`.diffaugment`); ``""`` is off.
    """

    arch: str = "resnet"
    z_dim: int = field(default=128, metadata={'min': 1})
    channels: tuple[int, ...] = (32, 64, 128, 256)
    ch: int = field(default=0, metadata={'min': 0})
    beta: float = field(default=1.0, metadata={'min': 0})
    kl_warmup: float = field(default=0.3, metadata={'min': 0, 'max': 1})
    free_bits: float = field(default=0.05, metadata={'min': 0})
    likelihood: str = field(default="discretized", metadata={'choices': ['bernoulli', 'discretized']})
    lr: float = field(default=1e-3, metadata={'gt': 0})
    betas: tuple[float, float] = (0.9, 0.999)
    edit_labels: bool = True
    prior: str = field(default="standard", metadata={'choices': ['standard', 'class']})
    cls_weight: float = field(default=0.0, metadata={'min': 0})
    cls_ch: int = field(default=24, metadata={'min': 1})
    lr_c: float = field(default=1e-3, metadata={'gt': 0})
    diffaugment: str = ""

    def widths(self) -> tuple[int, ...]:
        return tuple(self.ch * 2**i for i in range(len(self.channels))) if self.ch > 0 else tuple(self.channels)


# --------------------------------------------------------------------------------------------
# plugin


@register_model("vae")
class VAE(RealClassifierMixin, ModelPlugin, Sampler, Conditional, Encoder, Translator, Likelihood, IWLikelihood,
          AttributeVectorEditor):
    """Conditional (beta-)VAE plugin: one joint E + D update of the (weighted) negative ELBO per step."""

    Config = VAEConfig
    named_configs = {
        # beta stays 1: a beta-4 trial (cpu suite, seed 0; results/cpu/trials/vae-beta4-s0) halved the
        # posterior's KL (279 -> 131 nats) but was worse on FID_ml (17.2 vs 13.3), bits/dim and KID, and
        # its prior samples still ignored c
        "default": {"train.batch_size": 128, "train.steps": 20000},
        "reference": {
            "model.arch": "reference", "model.z_dim": 100, "model.channels": [32, 64, 128, 256],
            "model.likelihood": "bernoulli", "model.beta": 1.0, "model.kl_warmup": 0.0,
            "model.free_bits": 0.0, "model.lr": 1e-3, "model.betas": [0.9, 0.999],
            "train.batch_size": 256, "train.steps": 2243, "data.augment.hflip": False,
        },
    }
    likelihood_exact = False
    training_only_nets = frozenset({"C"})
    edit_mode = "offset"
    edit_reference_strength = 1.0

    def __init__(self, cfg: VAEConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        widths, L = cfg.widths(), len(cfg.channels)
        if cfg.likelihood not in LIKELIHOODS:
            raise ValueError(f"model.likelihood={cfg.likelihood!r}: expected one of {', '.join(LIKELIHOODS)}")
        if cfg.z_dim < 1 or not widths or min(widths) < 1:
            raise ValueError(f"model.z_dim={cfg.z_dim}, widths {widths}: expected positive sizes and >= 1 stage")
        if cfg.beta < 0 or cfg.free_bits < 0 or not 0 <= cfg.kl_warmup <= 1:
            raise ValueError("model.beta and model.free_bits must be >= 0, model.kl_warmup in [0, 1]")
        if spec.height % 2**L or spec.width % 2**L:
            raise ValueError(f"vae: H and W must be divisible by 2^{L} (len(model.channels)), "
                             f"got {spec.height}x{spec.width}")
        #: the decoder's pixel model (:mod:`.likelihoods`), chosen by ``model.likelihood``
        self.pixels = PIXEL_MODELS[cfg.likelihood](spec.channels)
        m = self.pixels.params_per_channel
        self.init_nets({
            "reference": lambda: {"E": RefEncoder(spec, cfg.z_dim, widths),
                                  "G": RefDecoder(spec, cfg.z_dim, widths, m)},
            "resnet": lambda: {"E": ResEncoder(spec, cfg.z_dim, widths),
                               "G": ResDecoder(spec, cfg.z_dim, widths, m)},
        }, {"E": cfg.lr, "G": cfg.lr})
        #: p(z | c): learned per class (``prior = class``, a net of its own, stepped with E and D) or N(0, I)
        self.prior = GaussianPrior(cfg.z_dim, spec.num_classes if cfg.prior == "class" else 0)
        if self.prior.learned:
            self.nets["P"] = self.prior
            self.place()
            self.adam("P", cfg.lr, cfg.betas)
        if cfg.cls_weight > 0:
            self.init_real_classifier(cfg.cls_ch, cfg.lr_c)
        self.dims = spec.channels * spec.height * spec.width
        #: attribute vectors (float32 K x (z_dim + K)) from :meth:`edit_fit`, None before it
        self.edit_vectors: torch.Tensor | None = None

    # -- pieces ------------------------------------------------------------------------------
    def beta_at(self, progress: float) -> float:
        """The KL weight when ``progress`` (fraction in [0, 1]) of the budget is spent:
        beta * min(1, progress / kl_warmup), beta without warm-up."""
        c = self.cfg
        return c.beta if c.kl_warmup <= 0 else c.beta * min(1.0, progress / c.kl_warmup)

    def _onehot(self, c: torch.Tensor) -> torch.Tensor:
        return F.one_hot(c.to(self.device), self.spec.num_classes).float()

    def log_px(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z, c) of the discrete pixel model (``self.pixels``), float32 N nats."""
        return self.pixels.log_prob(params, x)

    def image(self, params: torch.Tensor) -> torch.Tensor:
        """Decoder output -> its mean image (binomial) / location (logistic), float32 in [-1, 1]."""
        return self.pixels.mean(params)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """D(z, c) mean images, float32 N x C x H x W in [-1, 1] (the EMA decoder when enabled, eval mode).

        Args:
            z: float N x z_dim; c: int64 N labels or float N x K label vectors.
        """
        G = self.sampling_net()
        with evaluating(G):
            return self.image(G(z.float().to(self.device), c.to(self.device)))

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One Adam step of E, D (and the learned prior) on the weighted negative ELBO, plus the class loss on
        decoded prior samples when ``cls_weight > 0`` (after C's own step on the real batch). Logs: ``loss``,
        ``recon`` (nats per image), ``kl`` (to p(z | c), nats per image), ``beta_eff``, ``bpd`` (the batch's
        negative ELBO, one posterior sample), ``active_dims`` (Var of the posterior mean > 0.01, Burda et al.
        2016); with C: ``loss_c``, ``c_acc_real``, ``loss_cls_g``, ``c_acc_gen``."""
        cfg, x, c = self.cfg, batch.x, batch.c
        logs = self.real_classifier_step(batch)
        y = self._onehot(c)
        mu, logvar = self.nets["E"](x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        params = self.nets["G"](z, y).float()
        recon, log_px = self.pixels.recon_loss(params, x)
        kl = self.prior.kl(mu, logvar, c)
        kl_term = kl.mean(0).clamp(min=cfg.free_bits).sum() if cfg.free_bits > 0 else kl.sum(1).mean()
        beta = self.beta_at(batch.progress)
        loss = recon.mean() + beta * kl_term
        if cfg.cls_weight > 0:  # CE(C(D(z, c)), c), z ~ p(z | c): c must show in what D draws (CVAE-GAN)
            z_p = self.prior.sample(torch.randn_like(mu), c)
            logits = self.real_classifier_logits(self.image(self.nets["G"](z_p, y).float()))
            loss_cls = F.cross_entropy(logits, c)
            loss = loss + cfg.cls_weight * loss_cls
            logs.update(loss_cls_g=loss_cls.item(), c_acc_gen=(logits.argmax(1) == c).float().mean().item())
        joint_step([self.optimizers[k] for k in ("E", "G", "P") if k in self.optimizers], loss)
        kl_img = kl.detach().sum(1)
        return {"loss": loss.item(), "recon": recon.mean().item(), "kl": kl_img.mean().item(), "beta_eff": float(beta),
                "bpd": nats_to_bpd((kl_img - log_px.detach()).mean(), self.dims).item(),
                "active_dims": float((mu.detach().var(0, unbiased=False) > 0.01).sum()), **logs}

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """D(z, c) mean images for z ~ N(0, I) drawn on the CPU with ``generator`` (then the labels, when
        None, uniform): float32 n x C x H x W in [-1, 1] on the device. Raises ValueError for bad labels."""
        z = self.randn(n, self.cfg.z_dim, generator=generator)
        labels = self.check_labels(self.random_labels(n, generator) if labels is None else labels, n)
        return self.decode(self.prior.sample(z, labels), labels)

    # -- encoder -----------------------------------------------------------------------------
    def encode_with(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, c): (mu, logvar), float32 N x z_dim each, for float N x C x H x W in [-1, 1] and int64 N.

        Raises:
            ValueError: bad image shape/dtype or labels (``c`` is required).
        """
        if c is None:
            raise ValueError("encode_with needs labels c (int64 N); encode(x) infers them")
        x, c = self.check_images(x, c)
        with evaluating(self.nets["E"]):
            return self.nets["E"](x, self._onehot(c))

    @torch.no_grad()
    def class_elbos(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class deterministic ELBOs and posterior means of validated images ``x`` (on the device).

        ``scores[:, k] = log p(x_q | z = mu_k, k) - KL(q(z | x, k) || p(z)) + log(1 / K)`` in nats, with
        x_q the images quantized to 256 levels and mu_k the posterior mean under label k: the ELBO with
        the mean instead of a posterior sample, plus the uniform class prior, i.e. an approximate
        log p(x, c = k); softmax over k approximates p(c | x) (typically near one-hot: the scores differ
        by many nats). Returns (scores float32 N x K, mus float32 K x N x z_dim). Costs K passes of E and D.
        """
        E, G, K = self.nets["E"], self.sampling_net(), self.spec.num_classes
        xq, scores, mus = quantize(x), [], []
        with evaluating(E, G):
            for k in range(K):
                y = self._onehot(torch.full((x.shape[0],), k, dtype=torch.long))
                mu, logvar = E(x, y)
                c = torch.full((x.shape[0],), k, dtype=torch.long, device=self.device)
                scores.append(self.log_px(G(mu, y), xq) - self.prior.kl(mu, logvar, c).sum(1) - math.log(K))
                mus.append(mu)
        return torch.stack(scores, 1), torch.stack(mus)

    def _infer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores, mus = self.class_elbos(x)
        c = scores.argmax(1)
        return mus[c, torch.arange(x.shape[0], device=c.device)], scores, c

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"z": float32 N x z_dim, "c_logits": float32 N x K}`` for float32 N x C x H x W in [-1, 1].

        The encoder needs c: ``c_logits`` are the per-class ELBOs of :meth:`class_elbos` (nats, an
        approximate log p(x, c); argmax = the inferred class) and ``z`` is the posterior mean under the
        inferred class. With known labels use :meth:`encode_with`. Raises ValueError for bad images.
        """
        x, _ = self.check_images(x)
        z, scores, _ = self._infer(x)
        return {"z": z, "c_logits": scores}

    def _mu(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if c is None:
            z, _, c = self._infer(x)
            return z, c
        with evaluating(self.nets["E"]):
            return self.nets["E"](x, self._onehot(c))[0], c

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """D(mu(x, c), c), float32 N x C x H x W in [-1, 1]; c int64 N, or None for the inferred class."""
        x, c = self.check_images(x, c)
        z, c = self._mu(x, c)
        return self.decode(z, c)

    def translate(self, x: torch.Tensor, c_target: torch.Tensor, c_source: torch.Tensor | None = None) -> torch.Tensor:
        """D(mu(x, c_source), c_target): encode under the source label (inferred when None), decode under
        the target. float32 N x C x H x W in [-1, 1]. Raises ValueError for bad images or labels."""
        x, c_target = self.check_images(x, c_target)
        _, c_source = self.check_images(x, c_source)
        z, _ = self._mu(x, c_source)
        return self.decode(z, c_target)

    # -- likelihood ----------------------------------------------------------------------------
    @torch.no_grad()
    def _log_bound(self, x: torch.Tensor, c: torch.Tensor | None, k: int, generator: torch.Generator | None,
                   iw: bool) -> torch.Tensor:
        """Lower bound on log p(x_q) (nats, float32 N): the ELBO with ``k`` posterior samples averaged
        (analytic KL) or, with ``iw``, the IWAE bound log mean_k p(x, z_k) / q(z_k | x). c None: the
        class-marginal bound log sum_c p(c) exp(bound_c) (K times the work)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"samples/k={k!r}: expected an int >= 1")
        x, c = self.check_images(x, c)
        n, K = x.shape[0], self.spec.num_classes
        xq = quantize(x)
        E, G = self.nets["E"], self.sampling_net()
        per_class = []
        with evaluating(E, G):
            classes = [c] if c is not None else [torch.full((n,), j, dtype=torch.long, device=self.device)
                                                 for j in range(K)]
            for cc in classes:
                y = self._onehot(cc)
                mu, logvar = E(xq, y)
                std = torch.exp(0.5 * logvar)
                eps = torch.randn(k, n, self.cfg.z_dim, generator=generator).to(self.device)
                terms = []
                for e in eps.split(max(1, DECODE_CHUNK // max(n, 1))):
                    j = e.shape[0]
                    z = mu + std * e
                    lp = self.log_px(G(z.flatten(0, 1), y.repeat(j, 1)), xq.repeat(j, 1, 1, 1)).view(j, n)
                    if iw:  # + log p(z | c) - log q(z | x, c)
                        lp = lp + self.prior.log_prob(z, cc) + 0.5 * (logvar + e.pow(2)).sum(2)
                    terms.append(lp)
                lw = torch.cat(terms)
                if iw:
                    per_class.append(torch.logsumexp(lw, 0) - math.log(k))
                else:
                    per_class.append(lw.mean(0) - self.prior.kl(mu, logvar, cc).sum(1))
        if c is not None:
            return per_class[0]
        return torch.logsumexp(torch.stack(per_class), 0) - math.log(K)

    def bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     samples: int = 1) -> torch.Tensor:
        """The negative ELBO in bits/dim, an upper bound on -log2 p(x) / D (``likelihood_exact`` is False).

        -ELBO = E_q[-log p(x_q | z, c)] + KL(q(z | x, c) || p(z)) with the expectation estimated from
        ``samples`` posterior draws (eps on the CPU from ``generator``; an unbiased estimate of the bound)
        and the KL analytic; x_q = ``x`` snapped to the 256 pixel levels; p(x | z, c) is the discrete
        pixel model (discretized logistic, or Binomial(255, p) for ``bernoulli``: see the module
        docstring). With ``c`` None the bound is class-marginal, -log sum_c (1/K) exp(ELBO_c).

        Args:
            x: float32 N x C x H x W in [-1, 1]; c: int64 N or None; generator: CPU generator;
            samples: posterior samples per image (int >= 1).

        Returns:
            float32 N bits/dim on the device.

        Raises:
            ValueError: bad images, labels or ``samples``.
        """
        return nats_to_bpd(-self._log_bound(x, c, samples, generator, iw=False), self.dims)

    def iw_bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 64,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """The importance-weighted bound in bits/dim (Burda et al. 2016): -log2 mean_k [p(x_q, z_k | c) /
        q(z_k | x, c)] / D with z_k ~ q (eps from ``generator``). Tighter than :meth:`bits_per_dim` in
        expectation and non-increasing in ``k``; still an upper bound on -log2 p(x) / D. Same arguments,
        returns and errors as :meth:`bits_per_dim` (``k`` an int >= 1)."""
        return nats_to_bpd(-self._log_bound(x, c, k, generator, iw=True), self.dims)

    # -- editing ---------------------------------------------------------------------------------
    def edit_fit(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """Store the attribute vectors v_e = mean w(class e) - mean w(others) of the edit latents w = [mu(x, c) |
        onehot(c)] (float32 N x (z_dim + K); label part zeroed with ``model.edit_labels=false``) of images x
        (float32 N x C x H x W in [-1, 1]) with labels c (int64 N, required); docs/MODELS.md ("VAE") has the
        recipe. A class without images (or without other images) gets no vector. Raises ValueError for bad input."""
        if c is None:
            raise ValueError("edit_fit needs labels c (int64 N)")
        x, c = self.check_images(x, c)
        mus = [self.encode_with(xb, cb)[0] for xb, cb in zip(x.split(512), c.split(512))]
        w = torch.cat([torch.cat(mus), self._onehot(c) * float(self.cfg.edit_labels)], dim=1)
        self.edit_vectors = class_mean_differences(w, c, self.spec.num_classes)

    def _check_latents(self, w: torch.Tensor) -> torch.Tensor:
        d = self.cfg.z_dim + self.spec.num_classes
        if not torch.is_tensor(w) or not w.is_floating_point() or w.dim() != 2 or w.shape[1] != d:
            raise ValueError(f"expected float edit latents N x {d} ([z | label vector]), got "
                             f"{tuple(w.shape) if torch.is_tensor(w) else type(w).__name__}")
        return w.float().to(self.device)

    def edit_start(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """[z | onehot c] with z ~ p(z | c) (eps, then uniform labels when None, drawn with ``generator``: the
        draws of :meth:`sample`, so ``edit_decode(edit_start(...))`` equals ``sample(...)``): float32
        n x (z_dim + K). Raises ValueError for bad labels."""
        z = self.randn(n, self.cfg.z_dim, generator=generator)
        labels = self.check_labels(self.random_labels(n, generator) if labels is None else labels, n)
        with torch.no_grad():
            return torch.cat([self.prior.sample(z, labels), self._onehot(labels)], dim=1)

    def edit_encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """[mu(x, c) | onehot c] for real images (c inferred when None): float32 N x (z_dim + K)."""
        x, c = self.check_images(x, c)
        z, c = self._mu(x, c)
        return torch.cat([z, self._onehot(c)], dim=1)

    def edit_decode(self, z: torch.Tensor) -> torch.Tensor:
        """D(z, y) of edit latents [z | y]: float32 N x C x H x W in [-1, 1]. Raises ValueError for bad shapes."""
        w = self._check_latents(z)
        return self.decode(w[:, : self.cfg.z_dim], w[:, self.cfg.z_dim:])
