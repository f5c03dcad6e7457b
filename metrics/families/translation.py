"""Translation metrics (capability ``translate``) and their protocols: ``translate_acc``, ``translate_fid``.

Target accuracy (a classifier reads the target emotion in the translated image; the StarGAN / CCycleGAN
protocol), the source x target accuracy matrix, identity preservation (L1 / SSIM to the source, and the
distance between classifier features of source and translation), and the image sets for a FID of
translated images against real images of the target.

Conventions: ``classifier`` is a callable uint8 N x C x H x W -> int64 N predicted labels in the model's
label set; ``features`` a callable uint8 N x C x H x W -> float N x D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from exprbench.data import to_float, to_uint8

from exprbench.metrics.families.classaware import balanced_accuracy, evaluator_reference
from exprbench.metrics.families.fidelity import fidelity_scores
from exprbench.metrics.families.fidelity_inputs import extractor_info
from exprbench.metrics.families.imageops import CapabilityMetricError, Classifier, Features, batched, check_labels, check_model_images, l1_ssim, need

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


# --------------------------------------------------------------------------------------------
# translation


@dataclass
class Translations:
    """Every source image translated to every target class.

    Attributes:
        source: uint8 N x C x H x W source images.
        source_labels: int64 N their labels.
        targets: int64 T target classes (the columns of ``images``).
        images: uint8 N x T x C x H x W, ``images[i, j]`` = source i translated to ``targets[j]``.
        class_names: the model's label names.
    """

    source: torch.Tensor
    source_labels: torch.Tensor
    targets: torch.Tensor
    images: torch.Tensor
    class_names: tuple[str, ...]


def translate_all(model, images: torch.Tensor, source_labels: torch.Tensor,
                  targets: Sequence[int] | None = None, batch_size: int = 256) -> Translations:
    """Translate every image to every class in ``targets`` (default: all K, its own class included).

    Args:
        model: a plugin with ``translate``.
        images: uint8 N x C x H x W real images; source_labels: int64 N (passed as ``c_source``).
        targets: class indices (default ``range(K)``).

    Raises:
        CapabilityMetricError: no ``translate`` capability or bad inputs.
    """
    need(model, "translate")
    spec = model.spec
    images = check_model_images(images, spec, "images")
    source_labels = check_labels(source_labels, images.shape[0], spec.num_classes, "source_labels")
    t = torch.tensor(list(range(spec.num_classes)) if targets is None else list(targets), dtype=torch.long)
    check_labels(t, t.shape[0], spec.num_classes, "targets")
    cols = []
    for k in t.tolist():
        ct = torch.full_like(source_labels, k)
        cols.append(batched(lambda x, cs, c: to_uint8(model.translate(to_float(x), c, cs)),
                             images, source_labels, ct, batch_size=batch_size))
    return Translations(images, source_labels, t, torch.stack(cols, dim=1), tuple(spec.class_names))


def translation_metrics(tr: Translations, classifier: Classifier, features: Features | None = None) -> dict:
    """Target accuracy, the source x target matrix, and identity preservation of a :class:`Translations`.

    Pairs whose target equals the source class are left out of every number except ``self_l1`` /
    ``self_ssim`` (translation to the image's own emotion, which should leave it unchanged).

    Args:
        tr: from :func:`translate_all`.
        classifier: uint8 images -> int64 labels in the model's label set (the FER evaluator).
        features: uint8 images -> float N x D features (the evaluator's penultimate layer); None skips
            ``feature_distance``.

    Returns:
        ``{"target_accuracy": fraction of translations classified as their target, "pair_matrix": K x K
        accuracies (rows source class, columns target; None where no pair or target == source),
        "per_target": {name: accuracy or None}, "identity_l1", "identity_ssim": mean over translations
        vs their source, "feature_distance": mean L2 distance between features of translation and source
        (None without ``features``), "self_l1", "self_ssim": own-class translations vs source (None if
        the own class is not among the targets), "n_pairs"}``.
    """
    n, t = tr.images.shape[:2]
    k = len(tr.class_names)
    flat = tr.images.flatten(0, 1)
    tgt = tr.targets.repeat(n)
    src_lab = tr.source_labels.repeat_interleave(t)
    src_img = tr.source.repeat_interleave(t, dim=0)
    other = tgt != src_lab
    if not bool(other.any()):
        raise CapabilityMetricError("translations: no pair with a target other than its source class")
    pred = classifier(flat[other]).cpu().long()
    hit = (pred == tgt[other]).float()
    sums = torch.zeros(k, k)
    counts = torch.zeros(k, k)
    sums.index_put_((src_lab[other], tgt[other]), hit, accumulate=True)
    counts.index_put_((src_lab[other], tgt[other]), torch.ones_like(hit), accumulate=True)
    matrix = [[(float(sums[i, j] / counts[i, j]) if counts[i, j] else None) for j in range(k)] for i in range(k)]
    per_target = {}
    for j, name in enumerate(tr.class_names):
        m = tgt[other] == j
        per_target[name] = float(hit[m].mean()) if bool(m.any()) else None
    l1, ss = l1_ssim(src_img[other], flat[other])
    fdist = None
    if features is not None:
        src_idx = torch.arange(n).repeat_interleave(t)[other]  # each source's features once, not once per target
        fa, fb = features(tr.source).float().cpu()[src_idx], features(flat[other]).float().cpu()
        fdist = float((fa - fb).norm(dim=1).mean())
    self_l1 = self_ssim = None
    if bool((~other).any()):
        sl, sss = l1_ssim(src_img[~other], flat[~other])
        self_l1, self_ssim = float(sl.mean()), float(sss.mean())
    return {"target_accuracy": float(hit.mean()), "pair_matrix": matrix, "per_target": per_target,
            "identity_l1": float(l1.mean()), "identity_ssim": float(ss.mean()), "feature_distance": fdist,
            "self_l1": self_l1, "self_ssim": self_ssim, "n_pairs": int(other.sum())}


def translation_fid_inputs(tr: Translations, real_images: torch.Tensor, real_labels: torch.Tensor) -> dict:
    """The image sets for a FID of translated images against real images of the target emotion.

    Args:
        tr: from :func:`translate_all` (pairs with target == source are left out).
        real_images: uint8 M x C x H x W real reference images (e.g. the train split); real_labels int64 M.

    Returns:
        ``{"translated": uint8 P x C x H x W, "translated_labels": int64 P (targets), "real": uint8, the
        real images whose label is among the targets, "real_labels": int64, "per_target": {name:
        (translated uint8, real uint8)}}`` -- feed ``translated`` vs ``real`` to an overall FID, or each
        ``per_target`` pair to an intra-class FID to average.

    Raises:
        CapabilityMetricError: bad real images or labels.
    """
    if real_images.dtype != torch.uint8 or tuple(real_images.shape[1:]) != tuple(tr.source.shape[1:]):
        raise CapabilityMetricError(f"real_images: expected uint8 N x {' x '.join(map(str, tr.source.shape[1:]))}")
    real_labels = check_labels(real_labels, real_images.shape[0], len(tr.class_names), "real_labels")
    n, t = tr.images.shape[:2]
    tgt = tr.targets.repeat(n)
    keep = tgt != tr.source_labels.repeat_interleave(t)
    flat, tgt = tr.images.flatten(0, 1)[keep], tgt[keep]
    real_keep = torch.isin(real_labels, tr.targets)
    per = {}
    for j in tr.targets.tolist():
        per[tr.class_names[j]] = (flat[tgt == j], real_images[real_labels == j].cpu())
    return {"translated": flat, "translated_labels": tgt, "real": real_images[real_keep].cpu(),
            "real_labels": real_labels[real_keep], "per_target": per}



def compute_translate_acc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``translate_acc``: evaluator target accuracy in [0, 1] of test faces translated to every other emotion,
    balanced over the targets (each target has fewer pairs where its own class is common among the sources),
    pair matrix, identity."""
    tr = ctx.translations(spec.n_samples, spec.seed)
    res = translation_metrics(tr, ctx.classify, ctx.features)
    details = {k: v for k, v in res.items() if k != "target_accuracy"}
    balanced = balanced_accuracy(res["per_target"])
    details.update(class_names=list(ctx.data.class_names), n_sources=int(tr.source.shape[0]), tta="hflip",
                   pair_matrix_axes="rows = source class, columns = target class (None: target == source)",
                   accuracy=res["target_accuracy"], balanced_acc=balanced,
                   statistic="class-balanced target accuracy (mean over targets of per_target); plain accuracy "
                             "over all pairs in details (accuracy)")
    return {"value": balanced, "n_samples": int(tr.source.shape[0]),
            "extractor_sha256": ctx.evaluator.sha256, "details": details}


def reference_translate_acc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``translate_acc``'s reference: the evaluator's class-balanced accuracy on the real test split."""
    return evaluator_reference(spec, ctx)


def compute_translate_fid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``translate_fid``: per target emotion k, FID of the translations to k (sources of other classes) vs the
    train images of k (per-class references cached as ifid's); value = mean over targets with at least 2
    images on both sides (the others are listed in ``details.targets_left_out``); no real-data reference."""
    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    tr = ctx.translations(spec.n_samples, spec.seed)
    sets = translation_fid_inputs(tr, ctx.train.images, ctx.train.labels)
    per, n_tr, n_real, left = {}, {}, {}, []
    for k, name in enumerate(ctx.data.class_names):
        gen, real_imgs = sets["per_target"][name]
        if gen.shape[0] < 2 or real_imgs.shape[0] < 2:
            left.append(name)
            continue
        # the emotion's train features are rows of the full train split's (as ifid's, extracted once)
        ref = ctx.train_subset_name(spec, sha, ctx.train.labels == k, f"class={name}")
        per[name] = fidelity_scores(gen, real_imgs, ("fid",), real_cache_name=ref, **ctx.fidelity_kw(spec))["fid"]
        n_tr[name], n_real[name] = int(gen.shape[0]), int(real_imgs.shape[0])
    if not per:
        return {"value": None, "status": "unavailable", "n_samples": int(tr.source.shape[0]), "extractor_sha256": sha,
                "reason": "no target emotion has 2 translations and 2 train images"}
    return {"value": sum(per.values()) / len(per), "n_samples": int(tr.source.shape[0]), "extractor_sha256": sha,
            "details": {"per_target": per, "n_translated_per_target": n_tr, "n_real_per_target": n_real,
                        "targets_left_out": left, "aggregate": "mean over target emotions of per-target FID",
                        "reference": "train images of the target emotion"}}
