"""InterFaceGAN (Shen et al. 2020, "Interpreting the Latent Space of GANs for Semantic Face Editing",
arXiv:2005.09635): expression editing in the latent space of a trained unconditional generator.

The plugin wraps the generator G of a trained ``gan`` run (``model.base_run``, its EMA G when it has
one) and "trains" by fitting one linear boundary per emotion (paper sec. 2.2 and 3.1):

1. draw ``n_latents`` z ~ N(0, I) (10,000 in the paper) and generate G(z);
2. score every image with a FER classifier's per-emotion probabilities (hflip TTA): the project's auxiliary
   classifier ``metrics/weights/fer_aux_classifier.pt`` (narrower, other seed), not the evaluator that then
   scores the run's ``acc_gen`` and ``edit_success`` (fitting on the scorer would favour this model);
3. for each emotion e, sort by p(e | G(z)) and keep the top and the bottom ``ratio`` (2%) as positives
   and negatives; split them 70/30 (``val_fraction``) and fit a linear SVM (scikit-learn
   ``SVC(kernel="linear")``, or ``LinearSVC``); log the validation accuracy;
4. the boundary normal is n_e = w / ||w||.

Editing moves a latent to the signed distance d from the boundary, z' = z + (d - z.n) n (the paper's
z + alpha n, with alpha chosen so that z'.n = d; sweep d over [-3, 3]). Conditional manipulation
(change emotion A, keep B) uses the projected direction n_A - (n_A.n_B) n_B, renormalized (sec. 2.3).
Conditional sampling to emotion e moves random z to distance ``cond_distance`` along n_e.

The whole fit happens in the first :meth:`InterFaceGAN.training_step` (the named configs train for 1
step; the harness's batch is not used). The run directory then holds G (a copy of the base run's
sampling generator, so the run stands alone once trained) and the boundaries; building the plugin
still reads the base run's ``config.json`` (the architecture of G), so keep the base run with it (a published base
run, weights without checkpoints, will do: ``exprbench publish`` names it ``{runs}/<point>``, a sibling folder).

Configs: ``reference`` is the paper's protocol (N = 10,000, ratio 0.02, 70/30, linear SVC, C = 1);
``default`` scores N = 50,000 latents with the same ratio (1,000 positives and negatives per emotion
instead of 200: better boundaries, see ``named_configs``). ``model.base_run`` (required) names the GAN
run to interpret.
Capabilities: ``sample``, ``conditional``, ``edit`` (``edit_mode = "distance"``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from exprbench.data import DataSpec, to_uint8
from exprbench.core.errors import CheckpointError, ConfigError, UserError

from . import register_model
from .base import Batch, ModelPlugin, Resources
from .blocks import AdversarialConfig
from .contracts import Conditional, Editor, Sampler, move_to_distance, project_out

SVMS = ("svc", "linear_svc")


@dataclass
class InterFaceGANConfig:
    """Hyper-parameters of the boundary fit.

    Attributes:
        base_run: the run directory of a trained unconditional generator (``gan``); required.
        n_latents: latents sampled and scored (paper: 10,000).
        ratio: fraction kept as positives and as negatives for each emotion (paper: 0.02).
        val_fraction: share of the kept latents held out to report the SVM's accuracy (paper: 0.3).
        svm: ``svc`` (``SVC(kernel="linear")``, the paper's) or ``linear_svc`` (``LinearSVC``, faster).
        svm_c: the SVM's regularization constant C.
        cond_distance: signed distance along n_e used by conditional sampling.
        score_batch: images generated and scored per batch.
        scorer_weights: the classifier that scores G(z) for the fit ("" = the shipped auxiliary classifier
            ``metrics/weights/fer_aux_classifier.pt``; naming the evaluator's weights fits on the scorer).
        space: where the boundaries live: ``z`` (the paper's Z, N(0, I)) or ``w`` (the base generator's
            intermediate space w = mapping(z), a ``gan`` run with ``model.mapping_layers`` > 0; the paper's
            sec. 4 finds StyleGAN's W more separable), standardized per dimension with the mean and std of the
            fit's latents, so distances read on the same scale as in Z.
    """

    base_run: str = ""
    n_latents: int = field(default=10000, metadata={'min': 2})
    ratio: float = field(default=0.02, metadata={'gt': 0, 'max': 0.5})
    val_fraction: float = field(default=0.3, metadata={'min': 0, 'lt': 1})
    svm: str = field(default="svc", metadata={'choices': ['svc', 'linear_svc']})
    svm_c: float = field(default=1.0, metadata={'gt': 0})
    cond_distance: float = 3.0
    score_batch: int = field(default=500, metadata={'min': 1})
    scorer_weights: str = ""
    space: str = field(default="z", metadata={'choices': ['z', 'w']})


def fit_boundary(z: np.ndarray, scores: np.ndarray, ratio: float = 0.02, val_fraction: float = 0.3,
                 svm: str = "svc", C: float = 1.0, seed: int = 0) -> tuple[np.ndarray, float, int]:
    """Fit one InterFaceGAN boundary (Shen et al. 2020, sec. 3.1; their ``train_boundary``).

    Args:
        z: float N x D latents.
        scores: float N attribute scores of G(z) (higher = more of the attribute).
        ratio: the top and bottom ``ratio`` of the latents by score are positives / negatives.
        val_fraction: share of them held out for the reported accuracy.
        svm: ``svc`` (sklearn ``SVC(kernel="linear")``) or ``linear_svc`` (``LinearSVC``).
        C: SVM regularization constant.
        seed: seed of the train/validation split.

    Returns:
        ``(n, val_accuracy, n_per_side)``: the unit normal n (float32 D), the SVM's accuracy on the
        held-out latents (in [0, 1]), and the positives kept per side.

    Raises:
        ValueError: shapes disagree, an unknown ``svm``, or fewer than 2 latents per side.
    """
    from sklearn.svm import SVC, LinearSVC

    z, scores = np.asarray(z, dtype=np.float64), np.asarray(scores, dtype=np.float64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != scores.shape[0]:
        raise ValueError(f"expected z of N x D and N scores, got {z.shape} and {scores.shape}")
    if svm not in SVMS:
        raise ValueError(f"svm={svm!r}: expected one of {', '.join(SVMS)}")
    m = int(z.shape[0] * ratio)
    if m < 2:
        raise ValueError(f"ratio {ratio} of {z.shape[0]} latents keeps {m} per side; need at least 2")
    order = np.argsort(-scores, kind="stable")
    pos, neg = z[order[:m]], z[order[-m:]]
    rng = np.random.default_rng(seed)
    n_train = max(1, int(round(m * (1 - val_fraction))))
    ip, ineg = rng.permutation(m), rng.permutation(m)
    x_tr = np.concatenate([pos[ip[:n_train]], neg[ineg[:n_train]]])
    y_tr = np.concatenate([np.ones(n_train), np.zeros(n_train)])
    x_va = np.concatenate([pos[ip[n_train:]], neg[ineg[n_train:]]])
    y_va = np.concatenate([np.ones(m - n_train), np.zeros(m - n_train)])
    clf = SVC(kernel="linear", C=C) if svm == "svc" else LinearSVC(C=C, dual="auto", max_iter=10000)
    clf.fit(x_tr, y_tr)
    acc = float((clf.predict(x_va) == y_va).mean()) if len(y_va) else float("nan")
    w = clf.coef_.reshape(-1)
    return (w / np.linalg.norm(w)).astype(np.float32), acc, m


class WStats(nn.Module):
    """Per-dimension mean and std of w = mapping(z) over the fit's latents (buffers, float32 D each): the editing
    latent is u = (w - mean) / std."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))


class Boundaries(nn.Module):
    """The fitted boundaries as buffers (so they travel in the checkpoint).

    Buffers: ``normals`` float32 K x D (unit rows n_e), ``val_acc`` float32 K, ``fitted`` bool scalar.
    """

    def __init__(self, k: int, z_dim: int) -> None:
        super().__init__()
        self.register_buffer("normals", torch.zeros(k, z_dim))
        self.register_buffer("val_acc", torch.zeros(k))
        self.register_buffer("fitted", torch.tensor(False))


@register_model("interfacegan")
class InterFaceGAN(ModelPlugin, Sampler, Conditional, Editor):
    """InterFaceGAN plugin: boundaries fitted on a trained GAN's latents; editing and conditional sampling."""

    Config = InterFaceGANConfig
    ema_net = "G"  # a frozen copy: an EMA of it (train.ema) would equal it
    edit_mode = "distance"
    edit_reference_strength = 3.0
    edit_sweep_extent = 5 / 3  # the sweep runs to d = +-5: success was still rising at d = 3 (the paper's range)
    needs = frozenset({"load_run", "load_scorer"})
    named_configs = {
        # 50,000 latents (the paper's 10,000 x 5; ratio 0.02 keeps 1,000 per side): on the cpu suite's GAN
        # s0 boundary validation accuracy rose 0.74 -> 0.85 and edit_success 0.266 -> 0.309 at 4 minutes
        # of fitting on one thread (results/cpu/trials/interfacegan-n50000-r0.02-s0)
        "default": {"train.steps": 1, "train.batch_size": 1, "train.ema": False, "train.ckpt_every": 0, "train.sample_every": 0,
                    "train.log_every": 1, "model.n_latents": 50000},
        "reference": {"train.steps": 1, "train.batch_size": 1, "train.ema": False, "train.ckpt_every": 0, "train.sample_every": 0,
                      "train.log_every": 1, "model.n_latents": 10000, "model.ratio": 0.02,
                      "model.val_fraction": 0.3, "model.svm": "svc", "model.svm_c": 1.0},
    }

    def __init__(self, cfg: InterFaceGANConfig, spec: DataSpec, device="cpu", channels_last: bool = False,
                 resources: Resources | None = None) -> None:
        super().__init__(cfg, spec, device, channels_last, resources)
        if cfg.svm not in SVMS:
            raise ValueError(f"model.svm={cfg.svm!r}: expected one of {', '.join(SVMS)}")
        if not 0 < cfg.ratio <= 0.5 or not 0 < cfg.val_fraction < 1:
            raise ValueError(f"model.ratio={cfg.ratio} must be in (0, 0.5] and model.val_fraction={cfg.val_fraction} in (0, 1)")
        G, self.z_dim, self.base_info = self._base_generator(cfg.base_run, spec)
        if cfg.space == "w" and not hasattr(G, "mapping"):
            raise ValueError(f"model.space='w' needs a base generator with a mapping network (a gan run with "
                             f"model.mapping_layers > 0); {cfg.base_run!r} has none")
        self.nets["G"] = G
        self.nets["boundary"] = Boundaries(spec.num_classes, self.z_dim)
        if cfg.space == "w":
            self.nets["wstats"] = WStats(self.z_dim)
        self.place()

    def _base_generator(self, base_run: str, spec: DataSpec) -> tuple[nn.Module, int, dict]:
        """G of the base run (its EMA copy when it has one), its z size, and what identifies it."""
        if not base_run:
            raise ValueError("model.base_run is empty: name the run directory of a trained gan "
                             "(--set model.base_run=results/runs/gan-default-s0)")
        try:  # a run with checkpoints, or a published one (weights.safetensors, no checkpoints)
            base_cfg, base, base_spec, step = self.resources.get("load_run", self.name)(base_run, self.device)
        except (CheckpointError, ConfigError):  # a corrupt checkpoint or a stale config: its own error
            raise
        except UserError as e:  # no config.json, or neither checkpoints nor published weights
            raise ValueError(f"model.base_run={base_run!r} is not a trained run directory ({e})") from None
        if "sample" not in base.capabilities or "conditional" in base.capabilities or not isinstance(base.cfg, AdversarialConfig):
            raise ValueError(f"model.base_run={base_run!r} is a {base.name!r} run: InterFaceGAN needs an "
                             "unconditional generator G(z) (a gan run)")
        if (base_spec.channels, base_spec.height, base_spec.width) != (spec.channels, spec.height, spec.width):
            raise ValueError(f"model.base_run={base_run!r} generates {base_spec.channels}x{base_spec.height}x"
                             f"{base_spec.width} images, the data is {spec.channels}x{spec.height}x{spec.width}")
        G = copy.deepcopy(base.sampling_net()).eval()
        G.requires_grad_(False)
        info = {"base_model": base.name, "base_config": base_cfg.config_name, "base_step": step}
        return G, int(base.cfg.z_dim), info

    # -- the fit ---------------------------------------------------------------------------
    @torch.no_grad()
    def score_latents(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample n latents and score G(z) with the auxiliary FER classifier (``scorer_weights``).

        Returns:
            ``(z, probs)``: float32 n x z_dim (CPU) and float32 n x K per-emotion probabilities
            (hflip TTA, restricted to ``spec.class_names``).

        Raises:
            EvaluatorError: missing or mismatching classifier weights, or images it cannot read (it is
            FER-specific: 48 x 48).
        """
        ev = self.resources.get("load_scorer", self.name)(self.cfg.scorer_weights or None, self.device)
        w_space = self.cfg.space == "w"
        zs, ps = [], []
        for i in range(0, n, self.cfg.score_batch):
            z = torch.randn(min(self.cfg.score_batch, n - i), self.z_dim, generator=generator)
            if w_space:  # the raw w = mapping(z), decoded by the synthesis net
                z = self.nets["G"].mapping(z.to(self.device)).cpu()
                images = self._synthesize(z.to(self.device))
            else:
                images = self.edit_decode(z.to(self.device))
            zs.append(z)
            ps.append(ev.probs(to_uint8(images), self.spec.class_names))
        lat = torch.cat(zs)
        if w_space:  # standardize W with the fit's own latents (the editing latent u)
            stats = self.nets["wstats"]
            stats.mean.copy_(lat.mean(0))
            stats.std.copy_(lat.std(0).clamp_min(1e-6))
            lat = (lat - stats.mean.cpu()) / stats.std.cpu()
        return lat, torch.cat(ps).float()

    def fit(self, generator: torch.Generator | None = None) -> dict[str, float]:
        """Fit every emotion's boundary (module docstring); returns ``{"val_acc_<emotion>": ..., "val_acc_mean":
        ..., "n_per_side": ...}``."""
        z, probs = self.score_latents(self.cfg.n_latents, generator)
        b = self.nets["boundary"]
        logs: dict[str, float] = {}
        for e, name in enumerate(self.spec.class_names):
            n, acc, m = fit_boundary(z.numpy(), probs[:, e].numpy(), self.cfg.ratio, self.cfg.val_fraction,
                                     self.cfg.svm, self.cfg.svm_c, seed=e)
            b.normals[e] = torch.from_numpy(n).to(b.normals)
            b.val_acc[e] = acc
            logs[f"val_acc_{name}"] = acc
            logs[f"score_top_{name}"] = float(probs[:, e].sort(descending=True).values[:m].mean())
            logs["n_per_side"] = float(m)
        b.fitted.fill_(True)
        logs["val_acc_mean"] = float(b.val_acc.mean())
        return logs

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Fit the boundaries on the first call (the batch is unused); later calls only report them."""
        b = self.nets["boundary"]
        if not bool(b.fitted):
            return self.fit()
        return {f"val_acc_{name}": float(b.val_acc[e]) for e, name in enumerate(self.spec.class_names)} | {
            "val_acc_mean": float(b.val_acc.mean())}

    # -- editing -----------------------------------------------------------------------------
    def _normals(self) -> torch.Tensor:
        b = self.nets["boundary"]
        if not bool(b.fitted):
            raise RuntimeError("interfacegan: the boundaries are not fitted yet (train the run first)")
        return b.normals

    def edit_direction(self, target: int, keep: int | None = None) -> torch.Tensor:
        """Unit normal n_target (float32 z_dim); with ``keep``: n_A - (n_A.n_B) n_B renormalized (sec. 2.3).

        Raises:
            ValueError: a bad class index or ``keep == target``. RuntimeError: not fitted.
        """
        normals = self._normals()
        n = normals[self.check_class(target, "target")]
        if keep is None:
            return n
        if self.check_class(keep, "keep") == target:
            raise ValueError(f"keep={keep} equals target={target}: nothing to hold fixed")
        return project_out(n, normals[keep])

    def edit_start(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n editing latents (float32 n x z_dim) from z ~ N(0, I) drawn on the CPU with ``generator``: z itself, or
        in ``space = "w"`` the standardized u = (mapping(z) - mean) / std; ``labels`` unused."""
        z = self.randn(n, self.z_dim, generator=generator)
        if self.cfg.space == "z":
            return z
        stats = self.nets["wstats"]
        with torch.no_grad():
            return (self.nets["G"].mapping(z) - stats.mean) / stats.std

    def edit_decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z), or in W the synthesis of w = mean + std u: float32 N x C x H x W in [-1, 1] for float32 N x z_dim
        editing latents."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected latents N x {self.z_dim}, got {tuple(z.shape)}")
        z = z.float().to(self.device)
        if self.cfg.space == "z":
            return self.generate(z)
        stats = self.nets["wstats"]
        return self._synthesize(stats.mean + stats.std * z)

    def _synthesize(self, w: torch.Tensor) -> torch.Tensor:
        """The base generator's synthesis net on raw w (float32 N x z_dim), in eval mode: float32 images."""
        G = self.nets["G"]
        was = G.training
        G.eval()
        try:
            return G.synthesis(w).float()
        finally:
            G.train(was)

    def signed_distance(self, z: torch.Tensor, target: int) -> torch.Tensor:
        """z.n_target (float32 N): the signed distance of latents z to emotion ``target``'s boundary."""
        return z.float() @ self.edit_direction(target).to(z.device)

    # -- generation --------------------------------------------------------------------------
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conditional sampling: random z moved to distance ``cond_distance`` along n_label, then G.

        Returns float32 n x C x H x W in [-1, 1]; ``labels`` int64 n (uniform random when None).
        """
        z = self.edit_start(n, generator)
        if labels is None:
            labels = self.random_labels(n, generator)
        normals = self._normals()[self.check_labels(labels, n)]
        return self.edit_decode(move_to_distance(z, normals, self.cfg.cond_distance))

    def num_parameters(self) -> dict[str, int]:
        return {"G": sum(p.numel() for p in self.nets["G"].parameters()), "boundary": self.nets["boundary"].normals.numel()}
