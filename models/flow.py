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

import normflows as nf
import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import DataSpec

from . import register_model
from .base import Batch, ModelPlugin
from .contracts import Conditional, Editor, Encoder, Likelihood, Sampler, class_mean_differences, project_out
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


def latent_shapes(spec: DataSpec, levels: int) -> list[tuple[int, int, int]]:
    """Shapes (C, H, W) of the latents, coarsest level first (normflows' order of ``z``).

    Raises:
        ValueError: ``levels`` < 1, or H or W of ``spec`` not divisible by 2**levels.
    """
    c, h, w = spec.channels, spec.height, spec.width
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"model.levels={levels!r}: expected an integer >= 1")
    if h % 2 ** levels or w % 2 ** levels:
        raise ValueError(f"images {c}x{h}x{w}: height and width must be divisible by 2**levels = "
                         f"{2 ** levels} (model.levels={levels})")
    shapes = [(c * 2 ** (levels + 1), h >> levels, w >> levels)]
    shapes += [(c * 2 ** (levels - i), h >> (levels - i), w >> (levels - i)) for i in range(1, levels)]
    return shapes


class GlowNet(nn.Module):
    """The invertible network and its prior: an ``nf.MultiscaleFlow`` of ``nf.flows.GlowBlock`` steps.

    normflows' convention: ``forward`` maps latents to data, ``inverse`` data to latents. Here y is the
    flow's input (float N x C x H x W in [-0.5, 0.5], see :func:`dequantize`), z a list of per-level
    latents (coarsest first, shapes :func:`latent_shapes`) or their flattened concatenation (N x D).

    Actnorm initialization: normflows' ``ActNorm`` initializes itself from the first batch it sees
    (buffer ``data_dep_init_done``), whichever direction and whatever the batch is (samples, a test
    input). To keep sampling and encoding free of side effects, all actnorms are marked initialized
    (identity) at construction, and :meth:`data_init` re-runs the data-dependent initialization
    explicitly on the first training batch; the ``initialized`` buffer records that it happened, so a
    loaded checkpoint is never re-initialized.
    """

    def __init__(self, spec: DataSpec, cfg: FlowConfig) -> None:
        super().__init__()
        self.shapes = latent_shapes(spec, cfg.levels)
        self.sizes = [math.prod(s) for s in self.shapes]
        self.num_classes = spec.num_classes
        q0, flows, merges = [], [], []
        for i in range(cfg.levels):
            channels = spec.channels * 2 ** (cfg.levels + 1 - i)
            flows.append([nf.flows.GlowBlock(channels, cfg.ch, scale=True, scale_map=cfg.scale_map,
                                             split_mode=cfg.split_mode, net_actnorm=cfg.net_actnorm)
                          for _ in range(cfg.steps_per_level)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
            q0.append(nf.distributions.ClassCondDiagGaussian(self.shapes[i], spec.num_classes))
        self.flow = nf.MultiscaleFlow(q0, flows, merges, class_cond=True)
        if cfg.weight_y > 0:  # Glow's y_logits: linear_zeros on the spatial mean of the top-level latent
            self.y_head = nn.Linear(self.shapes[0][0], spec.num_classes)
            nn.init.zeros_(self.y_head.weight)
            nn.init.zeros_(self.y_head.bias)
        self.register_buffer("initialized", torch.tensor(False))
        self._mark_actnorms(1.0)

    def _mark_actnorms(self, done: float) -> None:
        for m in self.modules():
            if isinstance(m, nf.flows.ActNorm):
                # normflows rebinds this buffer to a new CPU tensor when it initializes; rebind on our device
                m.data_dep_init_done = torch.tensor(done, device=m.s.device)

    @torch.no_grad()
    def data_init(self, y: torch.Tensor) -> None:
        """Data-dependent actnorm initialization (Glow sec. 3.1) from a batch y (N x C x H x W)."""
        self._mark_actnorms(0.0)
        self.flow.inverse_and_log_det(y)
        self._mark_actnorms(1.0)
        self.initialized.fill_(True)

    def latents(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """y -> (per-level latents, log|det dz/dy| float N)."""
        return self.flow.inverse_and_log_det(y.contiguous())  # Squeeze uses .view: needs NCHW-contiguous

    def generate(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Per-level latents -> y (N x C x H x W)."""
        return self.flow.forward_and_log_det(zs)[0]

    def y_logits(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Glow's class logits from the top-level latent's spatial mean: float N x K (needs ``weight_y > 0``)."""
        return self.y_head(zs[0].mean(dim=(2, 3)))

    def prior_log_prob(self, zs: list[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        """log p(z | c) in nats (float N) under the class-conditional priors; c int64 N."""
        return sum(q.log_prob(z, c) for q, z in zip(self.flow.q0, zs))

    def class_log_probs(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """log p(z | c = k) for every class k: float N x K (nats)."""
        n = zs[0].shape[0]
        return torch.stack([self.prior_log_prob(zs, torch.full((n,), k, dtype=torch.long, device=zs[0].device))
                            for k in range(self.num_classes)], dim=1)

    def log_prob(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Exact log-density log p(y | c) in nats (float N) by the change of variables."""
        zs, log_det = self.latents(y)
        return self.prior_log_prob(zs, c) + log_det

    def prior_params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened prior mean and log-scale for labels c: two float N x D tensors."""
        loc = [q.loc.permute(q.n_dim, *range(q.n_dim))[c].flatten(1) for q in self.flow.q0]
        log_scale = [q.log_scale.permute(q.n_dim, *range(q.n_dim))[c].flatten(1) for q in self.flow.q0]
        return torch.cat(loc, 1), torch.cat(log_scale, 1)

    def flatten(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Per-level latents -> N x D (concatenated, coarsest level first)."""
        return torch.cat([z.flatten(1) for z in zs], dim=1)

    def unflatten(self, z: torch.Tensor) -> list[torch.Tensor]:
        """N x D -> per-level latents (inverse of :meth:`flatten`)."""
        return [part.reshape(-1, *s) for part, s in zip(z.split(self.sizes, dim=1), self.shapes)]


@register_model("flow")
class Flow(ModelPlugin, Sampler, Conditional, Encoder, Likelihood, Editor):
    """Glow plugin: one maximum-likelihood Adam step on the mean bits/dim per ``training_step``.

    Edit vectors (``edit_fit``) are plain attributes, recomputed from data, not part of the checkpoint.
    """

    name = "flow"
    capabilities = frozenset({"sample", "conditional", "encode", "likelihood", "edit"})
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

    def edit_direction(self, target: int, keep: int | None = None) -> torch.Tensor:
        """The attribute vector v_target (float32 D, not normalized: strength 1 moves by the full class
        mean difference). With ``keep``: v_t - (v_t.v_k / |v_k|^2) v_k rescaled to |v_t|.

        Raises:
            ValueError: ``target``/``keep`` not a class index, or ``keep == target``.
            RuntimeError: :meth:`edit_fit` was not called.
        """
        t = self.check_class(target, "target")
        if keep is not None and self.check_class(keep, "keep") == t:
            raise ValueError(f"keep {keep} equals target {target}: nothing to keep")
        if self.edit_vectors is None:
            raise RuntimeError("call edit_fit first: the flow's edit directions come from labelled images")
        v = self.edit_vectors[t]
        return v.clone() if keep is None else project_out(v, self.edit_vectors[keep])

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
