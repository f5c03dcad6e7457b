"""The plugin contract every model implements (mimicry-style: the model owns losses and updates).

The harness builds a plugin from ``(cfg, spec, device)``, calls :meth:`ModelPlugin.training_step`
once per step with a :class:`Batch`, and checkpoints it through :meth:`state_dict`. It never
branches on the model type; metrics ask for :attr:`ModelPlugin.capabilities`.

Capabilities (a subset of :data:`CAPABILITIES`):
    ``sample``       generate images (``sample(n, labels)``)
    ``conditional``  generation takes class labels c
    ``encode``       x -> z (and c where predicted)
    ``translate``    (x, c_target) -> x'
    ``edit``         latent -> latent along an attribute direction
    ``likelihood``   bits/dim, exact or a bound
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from exprbench.data import DataSpec

CAPABILITIES = frozenset({"sample", "conditional", "encode", "translate", "edit", "likelihood"})


@dataclass
class Batch:
    """One training batch on the training device.

    Attributes:
        x: float32 N x C x H x W real images in [-1, 1] (augmented).
        c: int64 N class labels, indices into ``spec.class_names``.
        epoch: epochs of the training split consumed before this batch (float >= 0), for epoch-based
            schedules (BiCoGAN's EFL weight).
        progress: fraction of the run's budget spent before this batch, in [0, 1] (steps done / steps,
            or training seconds / minutes budget, whichever is larger), for budget-relative schedules
            (the VAE's KL warm-up).
    """

    x: torch.Tensor
    c: torch.Tensor
    epoch: float = 0.0
    progress: float = 0.0


class ModelPlugin:
    """Base class of model plugins.

    Subclasses set ``name``, ``capabilities``, ``Config`` (a dataclass of model hyper-parameters,
    optimizer settings included) and ``named_configs`` (``{"default": {...}, "reference": {...}}``:
    dotted overrides over the whole run config, ``model.*``, ``train.*`` and ``data.*``), build
    their nets into ``self.nets`` and their optimizers into ``self.optimizers``, and implement
    :meth:`training_step` and :meth:`sample`.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type]
    named_configs: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    ema_net: ClassVar[str | None] = "G"  # the net whose EMA copy is used for sampling
    #: batches x images drawn to recompute the EMA net's BatchNorm statistics (see :meth:`recalibrate_ema`)
    ema_bn_batches: ClassVar[tuple[int, int]] = (8, 256)
    #: nets needed only to train (left out of published weights, see :mod:`exprbench.weights`)
    training_only_nets: ClassVar[frozenset[str]] = frozenset({"D"})

    def __init__(self, cfg: Any, spec: DataSpec, device: torch.device | str = "cpu", channels_last: bool = False) -> None:
        self.cfg = cfg
        self.spec = spec
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.ema: AveragedModel | None = None
        self._ema_recalibrates = self._ema_stale = False

    # -- construction helpers ------------------------------------------------------------
    def place(self) -> None:
        """Move ``self.nets`` to the device (and channels_last); call before building optimizers."""
        self.nets.to(self.device)
        if self.channels_last:
            self.nets.to(memory_format=torch.channels_last)

    def adam(self, net: str, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam over ``self.nets[net]``'s parameters, registered as ``self.optimizers[net]``."""
        opt = torch.optim.Adam(self.nets[net].parameters(), lr=lr, betas=betas)
        self.optimizers[net] = opt
        return opt

    def init_nets(self, builders: dict[str, Callable[[], dict[str, nn.Module]]], lrs: dict[str, float]) -> None:
        """Build the nets of ``builders[self.cfg.arch]`` (name -> module) into ``self.nets``, place
        them, and create one Adam optimizer per entry of ``lrs`` (net name -> learning rate) with
        ``cfg.betas``.

        Raises:
            ValueError: ``cfg.arch`` is not a key of ``builders``.
        """
        if self.cfg.arch not in builders:
            raise ValueError(f"model.arch={self.cfg.arch!r}: expected one of {', '.join(map(repr, builders))}")
        for name, net in builders[self.cfg.arch]().items():
            self.nets[name] = net
        self.place()
        for name, lr in lrs.items():
            self.adam(name, lr, self.cfg.betas)

    def init_adversarial(self, builders: dict[str, Callable[[], tuple[nn.Module, nn.Module]]]) -> None:
        """:meth:`init_nets` for a (G, D) pair with ``cfg.lr_g`` and ``cfg.lr_d`` (an ``AdversarialConfig``)."""
        self.init_nets({arch: (lambda make=make: dict(zip(("G", "D"), make()))) for arch, make in builders.items()},
                       {"G": self.cfg.lr_g, "D": self.cfg.lr_d})

    def enable_ema(self, decay: float) -> None:
        """Keep an EMA copy of ``self.nets[self.ema_net]`` for sampling.

        The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
        ``num_updates`` schedule of TensorFlow's ExponentialMovingAverage), so early samples are not
        dominated by the initial weights. BatchNorm statistics of the training net belong to the
        training weights, not to the averaged ones: plugins whose :meth:`bn_calibration_inputs` gives
        the net's inputs get them recomputed for the EMA weights before each use
        (:meth:`recalibrate_ema`); the others average the buffers with the weights.
        """
        if self.ema_net is None:
            return

        def avg_fn(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
            return avg * d + new * (1.0 - d)

        probe = self.bn_calibration_inputs(1, torch.Generator().manual_seed(0))
        self._ema_recalibrates = probe is not None
        self.ema = AveragedModel(self.nets[self.ema_net], avg_fn=avg_fn, use_buffers=not self._ema_recalibrates)
        self._ema_stale = True

    def update_ema(self) -> None:
        """Fold the current weights into the EMA copy (called by the harness after each step)."""
        if self.ema is not None:
            self.ema.update_parameters(self.nets[self.ema_net])
            self._ema_stale = True

    def bn_calibration_inputs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...] | None:
        """Inputs of the EMA net for :meth:`recalibrate_ema` (e.g. ``(z,)`` or ``(z, c)`` of ``n``
        latents drawn with the CPU ``generator``), or None (the default) when the plugin cannot draw
        them: then the EMA copy averages the training net's BatchNorm buffers instead."""
        return None

    def latent_inputs(self, n: int, z_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(z,)`` for an unconditional ``G(z)``, ``(z, c)`` with uniform labels for a conditional
        ``G(z, c)``: z float32 n x z_dim ~ N(0, I), c int64 n, both drawn with the CPU ``generator``."""
        z = self.randn(n, z_dim, generator=generator)
        if "conditional" in self.capabilities:
            return z, self.random_labels(n, generator).to(self.device)
        return (z,)

    @torch.no_grad()
    def recalibrate_ema(self) -> None:
        """Recompute the BatchNorm running statistics of the EMA net for its averaged weights.

        Runs ``ema_bn_batches`` batches of :meth:`bn_calibration_inputs` (from a fixed private
        generator, so the result depends on the weights only and the training's random stream is
        untouched) through the EMA net in train mode with cumulative averaging
        (``momentum=None``), as ``torch.optim.swa_utils.update_bn`` does for SWA (Izmailov et al.
        2018). A no-op without EMA, without BatchNorm layers, or when nothing changed since the last call.
        """
        if self.ema is None or not self._ema_recalibrates or not self._ema_stale:
            return
        net = self.ema.module
        bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        self._ema_stale = False
        if not bns:
            return
        momenta = [m.momentum for m in bns]
        was = net.training
        gen = torch.Generator().manual_seed(20141210)
        n_batches, size = self.ema_bn_batches
        try:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            net.train()
            for _ in range(n_batches):
                net(*self.bn_calibration_inputs(size, gen))
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
            net.train(was)

    def sampling_net(self, name: str | None = None) -> nn.Module:
        """The net used for generation: the EMA copy when enabled (its BatchNorm statistics
        recomputed first where the plugin supports it), else the training net."""
        name = name or self.ema_net
        if self.ema is not None and name == self.ema_net:
            self.recalibrate_ema()
            return self.ema.module
        return self.nets[name]

    # -- the contract ---------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Do one update of every net from ``batch``; return scalar losses/diagnostics as floats."""
        raise NotImplementedError

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate ``n`` images, float32 n x C x H x W in [-1, 1], on ``self.device``.

        Args:
            n: number of images.
            labels: int64 n class indices (conditional models; uniform random when None,
                ignored by unconditional ones).
            generator: a CPU ``torch.Generator`` for z and random labels, so a fixed seed gives the
                same latents on any device.
        """
        raise NotImplementedError

    # -- capability API (override where the capability is declared) --------------------------
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Invert the generator (capability ``encode``): E(x).

        Args:
            x: float32 N x C x H x W real images in [-1, 1] (C, H, W of ``self.spec``), any device.

        Returns:
            ``{"z": float32 N x z_dim}`` on ``self.device``, plus ``"c_logits"`` (float32 N x K, K =
            ``spec.num_classes``, unnormalized; softmax gives p(c | x)) for models whose encoder
            predicts the class c.

        Raises:
            NotImplementedError: the model has no encoder. ValueError: wrong image shape or dtype.
        """
        raise NotImplementedError(f"model {self.name!r} has no encoder (capability 'encode')")

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """G(E(x)) (capability ``encode``): float32 N x C x H x W in [-1, 1] from ``x`` of the same form.

        Args:
            x: float32 N x C x H x W in [-1, 1].
            c: int64 N class labels for conditional generators; None uses the encoder's predicted c
                (ignored by unconditional models).

        Raises:
            NotImplementedError: the model has no encoder. ValueError: bad shapes or labels.
        """
        raise NotImplementedError(f"model {self.name!r} has no encoder (capability 'encode')")

    def translate(self, x: torch.Tensor, c_target: torch.Tensor, c_source: torch.Tensor | None = None) -> torch.Tensor:
        """Change the expression of ``x`` to ``c_target`` keeping the person (capability ``translate``).

        Args:
            x: float32 N x C x H x W in [-1, 1].
            c_target: int64 N target classes (indices into ``spec.class_names``).
            c_source: int64 N classes of ``x`` where known; models that need them and get None
                infer them (e.g. an encoder's predicted c), others ignore them.

        Returns:
            float32 N x C x H x W in [-1, 1] on ``self.device``.

        Raises:
            NotImplementedError: the model cannot translate. ValueError: bad shapes or labels.
        """
        raise NotImplementedError(f"model {self.name!r} cannot translate images (capability 'translate')")

    # -- likelihood (capability ``likelihood``) ---------------------------------------------
    #: True when :meth:`bits_per_dim` is an exact likelihood (flows), False for a bound (VAE ELBO)
    likelihood_exact: ClassVar[bool] = False

    def bits_per_dim(self, x: torch.Tensor, c: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative log-likelihood of real images in bits per dimension (capability ``likelihood``).

        The images are the uint8 values 0..255 mapped to [-1, 1]; the density is over the discrete
        values (uniform dequantization: ``-log2 p(x) / D`` with ``D = C * H * W``, Theis et al. 2016),
        so numbers are comparable across models. Exact for flows, an upper bound (the negative ELBO)
        for VAEs: see :attr:`likelihood_exact`.

        Args:
            x: float32 N x C x H x W in [-1, 1] (multiples of 2/255 offset by -1).
            c: int64 N labels (conditional models), None for unconditional ones.
            generator: CPU generator for the dequantization / posterior noise (reproducible numbers).

        Returns:
            float32 N bits/dim (on ``self.device``).

        Raises:
            NotImplementedError: the model has no likelihood. ValueError: bad shapes or labels.
        """
        raise NotImplementedError(f"model {self.name!r} has no likelihood (capability 'likelihood')")

    # -- editing (capability ``edit``) -------------------------------------------------------
    #: ``distance``: strength is the signed distance to the boundary the latent is moved to
    #: (InterFaceGAN, z' = z + (d - z.n) n); ``offset``: strength scales an attribute vector (z' = z + f v)
    edit_mode: ClassVar[str] = "offset"
    #: the strength the edit leaderboard reports success at
    edit_reference_strength: ClassVar[float] = 1.0

    def edit_fit(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """Derive the edit directions from labelled real images where the model needs them (attribute
        vectors: mean latent of one emotion minus the mean of the others). Models whose directions
        are part of the trained run (InterFaceGAN's SVM boundaries) ignore it.

        Args:
            x: float32 N x C x H x W in [-1, 1]; c: int64 N labels.
        """

    def edit_start(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` random start latents (float32 n x D on ``self.device``) for generative edits."""
        raise NotImplementedError(f"model {self.name!r} cannot edit (capability 'edit')")

    def edit_encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (float32 N x D) of real images x (float32 N x C x H x W in [-1, 1]) to edit.

        Raises:
            NotImplementedError: the model cannot edit given images (no encoder: InterFaceGAN).
        """
        raise NotImplementedError(f"model {self.name!r} cannot edit a given image (no encoder); use a seed")

    def edit_direction(self, target: int, keep: int | None = None) -> torch.Tensor:
        """The edit direction toward class ``target`` (float32 D): InterFaceGAN's unit normal n_target;
        an attribute vector for ``offset`` models. With ``keep``, the component along class ``keep``'s
        direction is projected out (conditional manipulation, Shen et al. 2020 sec. 2.3) and the result
        renormalized to the original length.

        Raises:
            ValueError: ``target``/``keep`` not a class index, or ``keep == target``.
        """
        raise NotImplementedError(f"model {self.name!r} cannot edit (capability 'edit')")

    def edit_move(self, z: torch.Tensor, target: int, strength: float, keep: int | None = None) -> torch.Tensor:
        """Move latents z (float32 N x D) along :meth:`edit_direction`: ``distance`` mode sets the signed
        distance to ``strength`` (z + (d - z.n) n), ``offset`` mode adds ``strength`` times the vector."""
        v = self.edit_direction(target, keep).to(z.device, z.dtype)
        if self.edit_mode == "distance":
            return move_to_distance(z, v, strength)
        return z + strength * v

    def edit_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images of latents z (float32 N x D): float32 N x C x H x W in [-1, 1] on ``self.device``."""
        raise NotImplementedError(f"model {self.name!r} cannot edit (capability 'edit')")

    def check_labels(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """``c`` as int64 n labels on the device.

        Raises:
            ValueError: ``c`` not n integer labels in 0..K-1 (the message gives its shape and dtype).
        """
        c = torch.as_tensor(c)
        k = self.spec.num_classes
        if c.shape != (n,) or c.is_floating_point() or (n and (int(c.min()) < 0 or int(c.max()) >= k)):
            raise ValueError(f"expected {n} int labels in 0..{k - 1}, got {tuple(c.shape)} {c.dtype}")
        return c.long().to(self.device)

    def check_class(self, k: int, what: str = "class") -> int:
        """``k`` as a class index; raises ValueError naming the value otherwise."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.spec.num_classes:
            raise ValueError(f"{what} {k!r}: expected a class index 0..{self.spec.num_classes - 1}")
        return k

    def check_images(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate capability-API inputs and move them to the device (x float32, c int64).

        Raises:
            ValueError: ``x`` not a float N x C x H x W of the spec's shape; ``c`` not N labels in 0..K-1.
        """
        s = self.spec
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 4 or tuple(x.shape[1:]) != (s.channels, s.height, s.width):
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected float images N x {s.channels} x {s.height} x {s.width} in [-1, 1], got {shape}")
        if c is not None:
            c = self.check_labels(c, x.shape[0])
        x = x.float().to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, c

    @torch.no_grad()
    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Run :meth:`sampling_net` in eval mode on ``inputs`` (restoring its mode); float32 output."""
        G = self.sampling_net()
        was = G.training
        G.eval()
        try:
            return G(*inputs).float()
        finally:
            G.train(was)

    def conditional_sample(self, n: int, z_dim: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """:meth:`sample` for models whose generator is ``G(z, c)`` with z ~ N(0, I) of size ``z_dim``."""
        z = self.randn(n, z_dim, generator=generator)
        if labels is None:
            labels = self.random_labels(n, generator)
        return self.generate(z, labels.to(self.device))

    def draw_fake(self, c: torch.Tensor, z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes for a training step of a ``G(z, c)`` model: (images N x C x H x W, their labels N).

        Args:
            c: int64 N labels for the fakes: the real batch's labels, so fake labels follow the
                training-label distribution. With uniform fake labels against skewed real ones
                (happy 25%, disgust 1.5% in FER2013), a D that sees c can score label frequency
                instead of the image (measured: D's mean real score ran +0.87 happy to -1.15 disgust
                after 200 cGAN steps). Metrics keep their class-balanced sampling.
            z_dim: latent size; z ~ N(0, I) is drawn on the device from the global RNG.
        """
        z = torch.randn(c.shape[0], z_dim, device=self.device)
        return self.nets["G"](z, c), c

    def random_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform int64 labels 0..num_classes-1 drawn on the CPU with ``generator``."""
        return torch.randint(0, self.spec.num_classes, (n,), generator=generator)

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise drawn on the CPU with ``generator``, moved to the device."""
        return torch.randn(*shape, generator=generator).to(self.device)

    # -- state ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> None:
        self.nets.train(mode)

    def state_dict(self) -> dict[str, Any]:
        """Everything the plugin owns: nets, optimizers, EMA (tensors and plain Python only)."""
        return {
            "nets": self.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (strict: missing or unexpected keys raise)."""
        self.nets.load_state_dict(state["nets"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
            self._ema_stale = True

    def num_parameters(self) -> dict[str, int]:
        """Parameter count per net."""
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.nets.items()}


def move_to_distance(z: torch.Tensor, n: torch.Tensor, d: float) -> torch.Tensor:
    """z + (d - z.n) n: latents z (float N x D) moved along unit normals n (D, or N x D: one per row) to
    the signed distance d from the hyperplane z.n = 0 (InterFaceGAN, Shen et al. 2020, sec. 2.2)."""
    return z + (d - (z * n).sum(-1, keepdim=True)) * n


def class_mean_differences(w: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """Attribute vectors v_e = mean w(class e) - mean w(other classes) (Kingma & Dhariwal 2018, sec. 5.2;
    the VAE recipe of docs/MODELS.md) of latents w (float N x D) with labels c (int64 N).

    Returns a K x D tensor of ``w``'s dtype; the row of a class without images, or without images of
    other classes, is NaN.
    """
    n = torch.bincount(c, minlength=k).to(w.dtype).unsqueeze(1)
    sums = torch.zeros(k, w.shape[1], dtype=w.dtype, device=w.device).index_add_(0, c, w)
    return sums / n - (w.sum(0) - sums) / (len(w) - n)  # 0/0 = NaN for an absent class


def project_out(v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """v without its component along u, rescaled to the length of v (float D): InterFaceGAN's conditional
    manipulation n_A - (n_A.n_B) n_B, renormalized (Shen et al. 2020, sec. 2.3), for any vectors.
    A zero or non-finite u leaves v as it is."""
    uu = u @ u
    if not bool(torch.isfinite(u).all()) or float(uu) <= 0:
        return v
    w = v - (v @ u) / uu * u
    return w * (v.norm() / w.norm().clamp_min(1e-12))


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """zero_grad (to None), backward ``loss``, step: one update of the nets ``opt`` owns."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
