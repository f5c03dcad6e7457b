"""Editing metrics (capability ``edit``) and the ``edit_success`` protocol.

Editing (InterFaceGAN, Shen et al. 2020; attribute vectors, e.g. Kingma & Dhariwal 2018 sec. 5.2): start
latents z_0 (``model.edit_start``: random latents, so every edit-capable model is measured on its own
samples) are moved toward each emotion e with ``model.edit_move(z_0, e, s)`` over a sweep of strengths s,
decoded, quantized to uint8 like real images, and read by a classifier (the FER evaluator):

* success(e, s): fraction of edited images the classifier reads as e (hflip TTA);
* identity drift(e, s): mean L1 and SSIM ([0, 1] pixel scale) and the classifier-feature distance
  (L2 of penultimate features) between the edited image and the unedited start image G(z_0);
* entanglement(e, s): how much the edit changes the *other* emotions: the total-variation distance
  between the start's and the edit's probabilities over the classes other than e, each renormalized
  to sum to 1 (0: the edit only moves mass to or from e; 1: it swaps which other emotion the face shows).
  Renormalizing removes the mass that necessarily leaves the other classes when p(e) rises.

The strengths are ``model.edit_reference_strength`` times ``linspace(-e, e, ...)`` with e the model's
``edit_sweep_extent``: signed distances [-5, 5] for InterFaceGAN (``edit_mode = "distance"``; reference 3, where
its success was still rising), attribute-vector multiples [-1, 1] otherwise.
The leaderboard number is the success at the reference strength, averaged over target emotions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

from exprbench.data import to_float, to_uint8

from exprbench.metrics.families.classaware import evaluator_reference
from exprbench.metrics.families.imageops import l1_ssim, need
from exprbench.metrics.families.labels import balanced_subset
from exprbench.metrics.protocols.names import EDIT_FIT_PER_CLASS, EDIT_SEED

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext

Probs = Callable[[torch.Tensor], torch.Tensor]  # uint8 N x C x H x W -> float N x K probabilities
Features = Callable[[torch.Tensor], torch.Tensor]  # uint8 N x C x H x W -> float N x D


@torch.no_grad()
def fit_edit_directions(model, images: torch.Tensor, labels: torch.Tensor, per_class: int = EDIT_FIT_PER_CLASS,
                        seed: int = EDIT_SEED) -> int:
    """``model.edit_fit`` on a class-balanced subset (:func:`balanced_subset`, by default the ``edit_success``
    protocol's: <= 500 per class, seed 5) of uint8 real images N x C x H x W with int64 labels N; returns
    the number of images used. A no-op for models whose directions are part of the run (InterFaceGAN)."""
    idx = balanced_subset(labels, model.spec.num_classes, per_class, seed)
    model.edit_fit(to_float(images[idx]).to(model.device), labels[idx].to(model.device))
    return int(idx.numel())


def parse_strengths(text: str) -> list[float]:
    """``"a:b:n"`` -> n evenly spaced strengths from a to b (n >= 2), or ``"a,b,c"`` -> that list.

    Raises:
        ValueError: anything else (the message names the text).
    """
    try:
        if ":" in text:
            a, b, n = text.split(":")
            n = int(n)
            if n < 2:
                raise ValueError
            return [round(float(v), 6) for v in torch.linspace(float(a), float(b), n)]
        vals = [float(v) for v in text.split(",") if v.strip()]
        if not vals:
            raise ValueError
        return vals
    except ValueError:
        raise ValueError(f"--strength {text!r}: expected START:STOP:COUNT (COUNT >= 2, e.g. -3:3:7) "
                         "or a comma-separated list") from None


def edit_strengths(model, steps: int = 7) -> list[float]:
    """The strength sweep of ``model``: ``edit_reference_strength * linspace(-e, e, (steps - 1) e + 1)`` (floats)
    with e = ``edit_sweep_extent`` (1: ``steps`` points over [-r, r]; InterFaceGAN's 5/3: 11 points over [-5, 5],
    on the same grid, so the reference strength stays a point of it)."""
    r, e = float(model.edit_reference_strength), float(getattr(model, "edit_sweep_extent", 1.0))
    n = int(round((steps - 1) * e)) + 1
    return [round(r * float(t), 6) + 0.0 for t in torch.linspace(-e, e, n)]  # + 0.0: no -0.0


def _entanglement(p0: torch.Tensor, p1: torch.Tensor, target: int) -> torch.Tensor:
    """Per-image TV distance of the non-target probabilities (renormalized), float N in [0, 1]."""
    keep = [k for k in range(p0.shape[1]) if k != target]
    a, b = p0[:, keep], p1[:, keep]
    a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
    b = b / b.sum(1, keepdim=True).clamp_min(1e-12)
    return 0.5 * (a - b).abs().sum(1)


@torch.no_grad()
def edit_metrics(model, z: torch.Tensor, probs: Probs, features: Features | None = None,
                 strengths: Sequence[float] | None = None, targets: Sequence[int] | None = None,
                 batch_size: int = 500) -> dict:
    """Success, identity drift and entanglement of edits of latents ``z`` toward every target emotion.

    Args:
        model: a plugin with ``edit`` (its directions fitted: ``edit_fit`` called where needed).
        z: float32 N x D start latents (``model.edit_start`` or ``model.edit_encode``).
        probs: uint8 images -> float N x K class probabilities in the model's label set.
        features: uint8 images -> float N x F features (None skips the feature distance).
        strengths: the sweep (default :func:`edit_strengths`).
        targets: class indices edited toward (default all K).

    Returns:
        ``{"strengths": [...], "targets": [names], "success": {name: [per strength]},
        "l1" / "ssim" / "feat_dist" / "entanglement": {name: [per strength]} (feat_dist None without
        ``features``), "success_mean" / "l1_mean" / "ssim_mean" / "feat_dist_mean" / "entanglement_mean":
        [per strength, mean over targets], "start_accuracy": {name: fraction of unedited starts already
        read as that class}, "n": N}``. All fractions in [0, 1]; L1 on the [0, 1] pixel scale.

    Raises:
        CapabilityMetricError: the model lacks ``edit``.
    """
    need(model, "edit")
    k = model.spec.num_classes
    names = list(model.spec.class_names)
    targets = list(range(k)) if targets is None else [model.check_class(int(t), "target") for t in targets]
    strengths = edit_strengths(model) if strengths is None else [float(s) for s in strengths]

    def decode(lat: torch.Tensor) -> torch.Tensor:
        return torch.cat([to_uint8(model.edit_decode(lat[i : i + batch_size])).cpu()
                          for i in range(0, lat.shape[0], batch_size)])

    start = decode(z)
    p0 = probs(start).float().cpu()
    f0 = features(start).float().cpu() if features is not None else None
    out: dict = {"strengths": strengths, "targets": [names[t] for t in targets], "n": int(z.shape[0]),
                 "start_accuracy": {names[t]: float((p0.argmax(1) == t).float().mean()) for t in targets}}
    keys = ("success", "l1", "ssim", "feat_dist", "entanglement")
    for key in keys:
        out[key] = {}
    for t in targets:
        rows: dict[str, list] = {key: [] for key in keys}
        for s in strengths:
            img = decode(model.edit_move(z, t, s))
            p1 = probs(img).float().cpu()
            l1, ss = l1_ssim(start, img)
            rows["success"].append(float((p1.argmax(1) == t).float().mean()))
            rows["l1"].append(float(l1.mean()))
            rows["ssim"].append(float(ss.mean()))
            rows["feat_dist"].append(float((features(img).float().cpu() - f0).norm(dim=1).mean()) if f0 is not None else None)
            rows["entanglement"].append(float(_entanglement(p0, p1, t).mean()))
        for key in keys:
            out[key][names[t]] = rows[key]
    for key in keys:
        cols = list(zip(*out[key].values()))
        out[f"{key}_mean"] = [None if any(v is None for v in c) else sum(c) / len(c) for c in cols]
    return out


def strength_index(strengths: Sequence[float], strength: float) -> int:
    """Index of the sweep point nearest to ``strength``."""
    return min(range(len(strengths)), key=lambda j: abs(strengths[j] - strength))


def at_strength(result: dict, strength: float, key: str = "success_mean"):
    """The value of ``result[key]`` (a per-strength list) at ``strength`` (nearest sweep point)."""
    return result[key][strength_index(result["strengths"], strength)]


def compute_edit(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``edit_success``: edit n sampled latents toward every emotion over the model's strength sweep; value =
    success at the reference strength, mean over emotions. Attribute-vector models first fit their vectors
    on a fixed class-balanced train subset (the mean over emotions is balanced: n edits per emotion). Reference: the
    evaluator's class-balanced accuracy on real test images (:func:`reference_edit`)."""
    fit_per_class = EDIT_FIT_PER_CLASS
    model = ctx.model
    g = torch.Generator().manual_seed(spec.seed)
    fit_edit_directions(model, ctx.train.images, ctx.train.labels, seed=spec.seed)
    with torch.no_grad():
        z = model.edit_start(spec.n_samples, generator=g)
        res = edit_metrics(model, z, lambda im: ctx.evaluator.probs(im, ctx.data.class_names), ctx.features,
                           batch_size=ctx.batch_size)
    ref = float(model.edit_reference_strength)
    i = strength_index(res["strengths"], ref)
    summary = {key: res[f"{key}_mean"][i] for key in ("success", "l1", "ssim", "feat_dist", "entanglement")}
    per_target = {name: vals[i] for name, vals in res["success"].items()}
    return {"value": summary["success"], "n_samples": spec.n_samples, "extractor_sha256": ctx.evaluator.sha256,
            "details": {"reference_strength": ref, "edit_mode": model.edit_mode, "at_reference": summary,
                        "identity_l1": summary["l1"], "identity_ssim": summary["ssim"],
                        "feature_distance": summary["feat_dist"], "entanglement": summary["entanglement"],
                        "per_target": per_target, "sweep": res,
                        "start": "model.edit_start (sampled latents)", "tta": "hflip",
                        "fit": f"edit_fit on <= {fit_per_class}/class train images (attribute-vector models)"}}


def reference_edit(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``edit_success``'s reference: the evaluator's class-balanced accuracy on the real test split."""
    return evaluator_reference(spec, ctx)
