"""Class-conditional normalizing flow: Glow (Kingma & Dhariwal 2018, arXiv:1807.03039) built from the
``normflows`` library's blocks, with RealNVP's multi-scale architecture and affine coupling (Dinh et
al. 2017, arXiv:1605.08803).

For C x H x W images (H, W divisible by 2**L): L levels of squeeze, K ``nf.flows.GlowBlock`` steps
(affine coupling with ``ch`` hidden channels, LU 1x1 conv, actnorm) and a split; every factored-out
latent has a class-conditional diagonal Gaussian prior. At 48x48x1 with L=3 the latents are 2x24x24,
4x12x12 and 16x6x6 (D = 2304). Likelihood: uniform dequantization of the uint8 values
(:class:`~.likelihoods.UniformDequantization`, Theis et al. 2016), bits/dim = -log p_y / (D ln 2) + 8,
exact up to that bound; training minimizes it. Architecture, data mapping and configs in full:
docs/MODELS.md ("Normalizing flow").

Configs: ``reference`` (K=32, L=3, 512 channels, batch 64, 20,000 steps, temperature 0.7) and
``default`` (a CPU-sized Glow: K=8, 128 channels). Both run in float32 (autocast is disabled inside).
Capabilities: ``sample`` (prior at ``temperature``), ``conditional``, ``encode`` (z = all levels'
latents, c_logits from Bayes' rule on the prior), ``likelihood`` (exact), ``edit`` (attribute vectors,
``offset`` mode).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from exprbench.data import DataSpec

from . import register_model
from .base import Batch, ModelPlugin
from .contracts import AttributeVectorEditor, Conditional, Encoder, Likelihood, Sampler, class_mean_differences
from .flow_nets import GlowNet, latent_shapes
from .likelihoods import UniformDequantization, to_levels
from .runtime import fp32

dequantize, to_image = UniformDequantization.dequantize, UniformDequantization.to_image

SCALE_MAPS = ("sigmoid", "sigmoid_inv", "exp")
RESAMPLE_ROUNDS = 8  # draws of fresh latents for samples that came out non-finite, before giving up
SPLIT_MODES = ("channel", "checkerboard")


@dataclass
class FlowConfig:
    """Hyper-parameters of the Glow flow.

    Attributes:
        levels: L, the number of squeeze levels (H and W must be divisible by 2**L).
        steps_per_level: K, flow steps (actnorm, 1x1 conv, coupling) per level.
        ch: hidden channels of the coupling nets (Glow: 512).
        scale_map: coupling scale: ``sigmoid`` (sigmoid(h + 2), official Glow: the encoder multiplies by it, so
            sampling divides by it and an out-of-distribution latent can be amplified step after step until
            it overflows), ``sigmoid_inv`` (the same bounded scale, multiplied when sampling: generation only
            contracts; normflows' option) or ``exp`` (RealNVP).
        split_mode: which half a coupling conditions on: ``channel`` (Glow) or ``checkerboard``.
        net_actnorm: actnorm after the hidden convs of the coupling nets (official Glow).
        lr, betas: Adam settings.
        warmup_steps: linear learning-rate warm-up from lr/warmup_steps to lr (0 = off).
        grad_clip: max global gradient norm (0 = off); steps with a non-finite norm are skipped.
        temperature: scale of the prior's standard deviation when sampling (Glow: 0.3-0.7).
        weight_y: weight of Glow's class loss (the public Glow code's ``weight_y``): a linear classifier on
            the spatial mean of the top-level latent predicts c, and ``weight_y * CE / ln 2`` (bits per image)
            is added to the bits/dim objective, so the class-conditional priors are pulled apart (0 = off).
    """

    levels: int = field(default=3, metadata={'min': 1})
    steps_per_level: int = field(default=8, metadata={'min': 1})
    ch: int = field(default=128, metadata={'min': 1})
    scale_map: str = field(default="sigmoid", metadata={'choices': ['sigmoid', 'sigmoid_inv', 'exp']})
    split_mode: str = field(default="channel", metadata={'choices': ['channel', 'checkerboard']})
    net_actnorm: bool = True
    lr: float = field(default=1e-3, metadata={'gt': 0})
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = field(default=500, metadata={'min': 0})
    grad_clip: float = field(default=50.0, metadata={'min': 0})
    temperature: float = field(default=0.7, metadata={'gt': 0})
    weight_y: float = field(default=0.0, metadata={'min': 0})


@register_model("flow")
class Flow(ModelPlugin, Sampler, Conditional, Encoder, Likelihood, AttributeVectorEditor):
    """Glow plugin: one maximum-likelihood Adam step on the mean bits/dim per ``training_step``.

    Edit vectors (``edit_fit``) are plain attributes, recomputed from data, not part of the checkpoint.
    """

    Config = FlowConfig
    ema_net = None
    likelihood_exact = True
    edit_mode = "offset"
    edit_reference_strength = 1.0
    named_configs = {
        "default": {"train.batch_size": 64, "train.steps": 20000, "train.ema": False, "train.amp": False},
        "reference": {
            "model.levels": 3, "model.steps_per_level": 32, "model.ch": 512, "model.scale_map": "sigmoid",
            "model.split_mode": "channel", "model.net_actnorm": True, "model.lr": 1e-3,
            "model.betas": [0.9, 0.999], "model.warmup_steps": 1000, "model.grad_clip": 50.0,
            "model.temperature": 0.7, "train.batch_size": 64, "train.steps": 20000, "train.ema": False,
            "train.amp": False, "data.label_set": "fer7", "data.augment.hflip": False,
        },
    }

    def __init__(self, cfg: FlowConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        # channels_last is ignored: normflows' Squeeze reshapes with .view, which needs contiguous NCHW
        super().__init__(cfg, spec, device, channels_last=False)
        if cfg.scale_map not in SCALE_MAPS:
            raise ValueError(f"model.scale_map={cfg.scale_map!r}: expected one of {', '.join(SCALE_MAPS)}")
        if cfg.split_mode not in SPLIT_MODES:
            raise ValueError(f"model.split_mode={cfg.split_mode!r}: expected one of {', '.join(SPLIT_MODES)}")
        if cfg.steps_per_level < 1 or cfg.ch < 1:
            raise ValueError(f"model.steps_per_level={cfg.steps_per_level}, model.ch={cfg.ch}: expected >= 1")
        if not cfg.temperature > 0:
            raise ValueError(f"model.temperature={cfg.temperature}: expected > 0")
        latent_shapes(spec, cfg.levels)  # shape check first, with a message naming the image shape
        if cfg.split_mode == "checkerboard" and (spec.width >> cfg.levels) % 2:
            raise ValueError(f"images {spec.channels}x{spec.height}x{spec.width}: split_mode=checkerboard needs "
                             f"an even width at the coarsest level (width divisible by {2 ** (cfg.levels + 1)})")
        with warnings.catch_warnings():  # normflows' Invertible1x1Conv calls the deprecated Tensor.lu()
            warnings.filterwarnings("ignore", message=r".*torch\.lu is deprecated")
            self.nets["flow"] = GlowNet(spec, cfg)
        self.place()
        self.adam("flow", cfg.lr, cfg.betas)
        self.dim = spec.channels * spec.height * spec.width
        self.edit_vectors: torch.Tensor | None = None  # K x D, set by edit_fit
        self.nonfinite_resampled = 0  # samples drawn again because they came out non-finite (see sample)

    @property
    def net(self) -> GlowNet:
        return self.nets["flow"]

    def to_bpd(self, log_p: torch.Tensor) -> torch.Tensor:
        """Bits/dim of discrete images from log p_y(y) in nats: -log p_y / (D ln 2) + 8 (module docstring)."""
        return UniformDequantization.bits_per_dim(log_p, self.dim)

    def _fp32(self):
        return fp32(self.device)

    # -- training ----------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based): linear warm-up to ``cfg.lr`` over ``warmup_steps``."""
        w = self.cfg.warmup_steps
        return self.cfg.lr * min(1.0, (step + 1) / w) if w > 0 else self.cfg.lr

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One Adam step on the mean bits/dim (fresh dequantization noise from the device RNG), plus Glow's
        class loss ``weight_y * CE(y_logits, c) / ln 2`` when ``weight_y > 0``.

        Returns ``loss``, ``bpd`` (the batch mean), ``bits_y`` (with ``weight_y``), ``grad_norm`` (before
        clipping; -1 when non-finite), ``skipped`` (1.0 when the update was skipped for a non-finite
        gradient) and ``lr``.
        """
        net, opt, cfg = self.net, self.optimizers["flow"], self.cfg
        logs = {}
        with self._fp32():
            x_int = to_levels(batch.x.contiguous())
            y = dequantize(x_int, torch.rand_like(x_int))
            if not bool(net.initialized):
                net.data_init(y)
            lr = self.lr_at(step)
            for g in opt.param_groups:
                g["lr"] = lr
            c = batch.c.to(self.device)
            zs, log_det = net.latents(y)
            bpd = self.to_bpd(net.prior_log_prob(zs, c) + log_det).mean()
            loss = bpd
            if cfg.weight_y > 0:
                bits_y = F.cross_entropy(net.y_logits(zs), c) / math.log(2)
                loss = loss + cfg.weight_y * bits_y
                logs["bits_y"] = bits_y.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            ok = bool(torch.isfinite(norm))
            if ok:
                opt.step()
            else:
                opt.zero_grad(set_to_none=True)
        return {"loss": loss.item(), "bpd": bpd.item(), **logs, "grad_norm": float(norm) if ok else -1.0,
                "skipped": float(not ok), "lr": lr}

    # -- generation --------------------------------------------------------------------------
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (float32 n x C x H x W in [-1, 1]) from the class-conditional prior at ``cfg.temperature``;
        ``edit_decode(edit_start(n, generator, labels))``, except that a sample with a non-finite pixel is
        drawn again from fresh latents of its class (counted in ``nonfinite_resampled``; the metrics never
        see it as a black square).

        Raises:
            ValueError: bad labels.
            RuntimeError: samples still non-finite after :data:`RESAMPLE_ROUNDS` fresh draws.
        """
        eps = self.randn(n, self.dim, generator=generator)
        labels = self.check_labels(self.random_labels(n, generator) if labels is None else labels, n)
        x = self.edit_decode(self.prior_latents(eps, labels))
        for _ in range(RESAMPLE_ROUNDS):
            bad = ~torch.isfinite(x).flatten(1).all(1)
            if not bool(bad.any()):
                return x
            self.nonfinite_resampled += int(bad.sum())
            fresh = self.randn(int(bad.sum()), self.dim, generator=generator)
            x[bad] = self.edit_decode(self.prior_latents(fresh, labels[bad]))
        if not bool(torch.isfinite(x).all()):
            raise RuntimeError(f"flow: {int((~torch.isfinite(x).flatten(1).all(1)).sum())} of {n} samples still "
                               f"non-finite after {RESAMPLE_ROUNDS} fresh draws at temperature {self.cfg.temperature}")
        return x

    # -- likelihood --------------------------------------------------------------------------
    @torch.no_grad()
    def bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """-log2 P(x_int | c) / D for images x (float32 N x C x H x W in [-1, 1], uint8 values / 127.5 - 1).

        The flow density is exact; the discrete likelihood is the uniform-dequantization bound (Theis
        et al. 2016) estimated with a single noise draw u = ``torch.rand(x.shape, generator=generator)``
        (CPU), the same objective as training. With ``c=None`` the class is marginalized under the
        uniform class prior: p(x) = mean_k p(x | k).

        Returns:
            float32 N bits/dim on ``self.device``.

        Raises:
            ValueError: wrong image shape/dtype, labels not N ints in 0..K-1.
        """
        x, c = self.check_images(x, c)
        u = torch.rand(x.shape, generator=generator).to(self.device)
        with self._fp32():
            zs, log_det = self.net.latents(dequantize(to_levels(x), u))
            if c is None:
                log_pz = torch.logsumexp(self.net.class_log_probs(zs), dim=1) - math.log(self.spec.num_classes)
            else:
                log_pz = self.net.prior_log_prob(zs, c)
            return self.to_bpd(log_pz + log_det).float()

    # -- encoder -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x -> z, deterministic (centered dequantization u = 0.5).

        Args:
            x: float32 N x C x H x W in [-1, 1].

        Returns:
            ``z``: float32 N x D (D = C*H*W; all levels' latents, coarsest first); ``c_logits``: float32
            N x K, log p(z | k) + log(1/K) in nats: softmax gives the Bayes posterior p(k | x) (the
            Jacobian term does not depend on k and cancels).

        Raises:
            ValueError: wrong image shape or dtype.
        """
        x, _ = self.check_images(x)
        with self._fp32():
            zs, _ = self.net.latents(dequantize(to_levels(x), 0.5))
            logits = self.net.class_log_probs(zs) - math.log(self.spec.num_classes)
            return {"z": self.net.flatten(zs).float(), "c_logits": logits.float()}

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """decode(encode(x)): equals x (float32 N x C x H x W in [-1, 1]) up to float error for uint8-valued
        images; ``c`` is validated but not needed (the flow is a bijection)."""
        x, _ = self.check_images(x, c)
        return self.edit_decode(self.encode(x)["z"])

    # -- editing -----------------------------------------------------------------------------
    @torch.no_grad()
    def edit_fit(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """Attribute vectors v_k = mean z(class k) - mean z(other classes) (Glow paper, "semantic
        manipulation") from labelled images x (float32 N x C x H x W in [-1, 1]), c (int64 N), encoded
        in batches of 256. Stored in ``self.edit_vectors`` (float32 K x D).

        Raises:
            ValueError: bad shapes or labels, ``c`` missing, or a class with no images.
        """
        if c is None:
            raise ValueError("edit_fit needs the labels c of the images")
        x, c = self.check_images(x, c)
        k = self.spec.num_classes
        counts = torch.bincount(c, minlength=k)
        if bool((counts == 0).any()):
            missing = [self.spec.class_names[i] for i in range(k) if counts[i] == 0]
            raise ValueError(f"edit_fit: no images of class(es) {', '.join(missing)}")
        z = torch.cat([self.encode(x[i:i + 256])["z"] for i in range(0, len(x), 256)]).double()
        self.edit_vectors = class_mean_differences(z, c, k).float()

    def edit_start(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents z = mu_c + temperature * sigma_c * eps (float32 n x D on ``self.device``) from the prior
        of classes ``labels`` (int64 n; uniform random when None); eps and random labels are drawn on
        the CPU with ``generator`` (in that order)."""
        eps = self.randn(n, self.dim, generator=generator)
        labels = self.random_labels(n, generator) if labels is None else labels
        return self.prior_latents(eps, self.check_labels(labels, n))

    @torch.no_grad()
    def prior_latents(self, eps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """mu_c + temperature * sigma_c * eps: float32 n x D latents of classes ``labels`` (int64 n on the
        device) from standard normal ``eps`` (float n x D)."""
        loc, log_scale = self.net.prior_params(labels)
        return (loc + self.cfg.temperature * log_scale.exp() * eps).float()

    def edit_encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``encode(x)["z"]``: float32 N x D for x float32 N x C x H x W in [-1, 1] (``c`` validated, unused)."""
        x, _ = self.check_images(x, c)
        return self.encode(x)["z"]

    @torch.no_grad()
    def edit_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Invert the flow: latents z (float N x D) -> images float32 N x C x H x W in [-1, 1].

        Raises:
            ValueError: ``z`` not a float N x D tensor.
        """
        if not torch.is_tensor(z) or not z.is_floating_point() or z.dim() != 2 or z.shape[1] != self.dim:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"expected float latents N x {self.dim}, got {shape}")
        with self._fp32():
            y = self.net.generate(self.net.unflatten(z.to(self.device, torch.float32)))
        return to_image(y).float()
