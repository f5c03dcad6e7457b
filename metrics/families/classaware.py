"""Class-aware metrics and their protocols: intra-class FID and label accuracy ("GAN-test"); the Classification
Accuracy Score ("GAN-train") is in :mod:`.cas`.

* Label accuracy (Shmelkov et al. 2018, "How good is my GAN?", GAN-test): images generated for each
  emotion are classified by the fixed FER2013 evaluator (hflip TTA); the fraction classified as the
  emotion they were generated for, overall and per class, with the confusion matrix. On real test
  images the same function gives the evaluator's test accuracy (its card).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

from exprbench.metrics.families.bootstrap import CI_SEED, balanced_mean_ci, mean_ci, stratified_fid_ci
from exprbench.metrics.extractors.evaluator import Evaluator
from exprbench.metrics.families.fidelity import intra_class_fid
from exprbench.metrics.families.fidelity_inputs import MetricInputError, check_images, extractor_info, generated_cache_name
from exprbench.metrics.families.labels import confusion_matrix, per_class_accuracy

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


def check_labels(labels, n: int, k: int, what: str) -> torch.Tensor:
    if not torch.is_tensor(labels) or labels.dim() != 1 or labels.dtype not in (torch.int64, torch.int32):
        raise MetricInputError(f"{what}: expected an int64 tensor of {n} labels")
    if labels.shape[0] != n:
        raise MetricInputError(f"{what}: {labels.shape[0]} labels for {n} images")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise MetricInputError(f"{what}: labels outside 0..{k - 1}")
    return labels.long().cpu()


def label_accuracy(evaluator: Evaluator, images: torch.Tensor, labels: torch.Tensor,
                   class_names: Sequence[str], tta: bool = True) -> dict:
    """Fraction of images the evaluator classifies as their label (GAN-test accuracy).

    Args:
        evaluator: the loaded FER2013 evaluator.
        images: uint8 N x 1 x 48 x 48 (0..255), generated (through ``to_uint8``) or real.
        labels: int64 N, indices into ``class_names`` (the labels the images were generated for).
        class_names: the label set (fer7 or fer6 names; evaluator logits of other classes are masked).
        tta: horizontal-flip test-time averaging (as in the evaluator's card).

    Returns:
        ``{"value": accuracy in [0, 1], "per_class": {name: recall or None}, "confusion_matrix": K x K
        counts (rows true, columns predicted), "n": N, "balanced_acc": mean per-class recall,
        "correct": [bool] * N}``.

    Raises:
        MetricInputError: bad images or labels.
    """
    images = check_images(images, "images")
    labels = check_labels(labels, images.shape[0], len(class_names), "labels")
    return accuracy_of_predictions(evaluator.predict(images, class_names, tta=tta), labels, class_names)


def accuracy_of_predictions(pred: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """:func:`label_accuracy`'s result from predicted labels (int64 N) and true labels (int64 N, indices into
    ``class_names``). Raises MetricInputError when their counts differ or a label is out of range."""
    labels = check_labels(labels, int(pred.shape[0]), len(class_names), "labels")
    pred = pred.long().cpu()
    cm = confusion_matrix(labels, pred, len(class_names))
    per = per_class_accuracy(cm, class_names)
    return {"value": float((pred == labels).float().mean()), "per_class": per,
            "confusion_matrix": cm, "n": int(pred.shape[0]), "balanced_acc": balanced_accuracy(per),
            "correct": (pred == labels).tolist()}


def balanced_accuracy(per_class: dict) -> float | None:
    """Class-balanced accuracy: the mean per-class recall over the classes that have images (None if none).

    Args:
        per_class: ``{name: recall or None}`` (as :func:`per_class_accuracy` returns).
    """
    vals = [v for v in per_class.values() if v is not None]
    return float(sum(vals) / len(vals)) if vals else None


def accuracy_baselines(train_labels: torch.Tensor, eval_labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """What trivial classifiers score on a labelled set: chance and always answering the train majority.

    Args:
        train_labels: int64 labels of the training split (its most frequent class is the majority).
        eval_labels: int64 labels of the evaluated set.
        class_names: the K class names.

    Returns:
        ``{"chance": 1/K, "majority_class": name, "majority_acc": plain accuracy of always answering it
        on the evaluated set, "majority_balanced_acc": 1/K (its class-balanced accuracy)}``.
    """
    k = len(class_names)
    maj = int(torch.bincount(train_labels.cpu().long(), minlength=k).argmax())
    ev = eval_labels.cpu().long()
    return {"chance": 1.0 / k, "majority_class": class_names[maj],
            "majority_acc": float((ev == maj).double().mean()) if ev.numel() else None,
            "majority_balanced_acc": 1.0 / k}


def compute_ifid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``ifid``: per emotion, FID of n/K generated images vs that emotion's train images; value = mean over
    emotions (squared feature units, >= 0)."""

    def generated(sha: str) -> tuple[torch.Tensor, torch.Tensor, str]:
        imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
        feat_name = generated_cache_name(imgs, spec.extractor, sha)
        ctx.gen_cache_names.add(feat_name)
        return imgs, labs, feat_name

    return _ifid(spec, ctx, generated, "n_generated_per_class")


def reference_ifid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``ifid`` of real faces: per emotion n/K real test faces of that emotion, from PrivateTest + PublicTest where
    PrivateTest has fewer, all of them where both have fewer (the counts are in details ``n_reference_per_class``)."""
    rs = ctx.real_set_per_class(spec.n_samples // ctx.k, spec.seed)

    def real(sha: str) -> tuple[torch.Tensor, torch.Tensor, str]:
        return rs.images, rs.labels, ctx.ref_name(rs.split, len(rs.images), spec.extractor, sha, rs.selection)

    out = _ifid(spec, ctx, real, "n_reference_per_class")
    out["n_protocol"] = spec.n_samples // ctx.k * ctx.k
    out["details"].update(reference_set=rs.where, reference_selection=rs.selection,
                          protocol_n_per_class=spec.n_samples // ctx.k)
    return out


def _ifid(spec: MetricSpec, ctx: EvalContext, source: Callable[[str], tuple[torch.Tensor, torch.Tensor, str]],
          count_key: str) -> Entry:
    """Intra-class FID of the images ``source(extractor_sha256)`` gives (uint8 images, int64 labels, their features'
    cache name) against each emotion's train images, with the stratified bootstrap ci95 when ``ctx.ci_draws``;
    ``count_key`` names the per-class counts of the scored images in details."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    names = ctx.data.class_names
    # an emotion's train features are rows of the full train split's (extracted once)
    ref_names = [ctx.train_subset_name(spec, sha, ctx.train.labels == k, f"class={n}") for k, n in enumerate(names)]
    imgs, labs, feat_name = source(sha)
    res = intra_class_fid(imgs, labs, ctx.train.images, ctx.train.labels, names, real_cache_names=ref_names,
                          **ctx.fidelity_kw(spec))
    ci = {}
    if ctx.ci_draws:
        feats = ctx.fidelity_feats(spec, imgs, feat_name, "generated")
        gl, tl = labs.cpu(), ctx.train.labels.cpu()
        ci = stratified_fid_ci([feats[gl == k] for k in range(len(names))],
                               [fid_features_to_statistics(ctx.fidelity_feats(spec, ctx.train.images[tl == k],
                                                                              ref_names[k], "real"))
                                for k in range(len(names))],
                               res["mean"], ctx.ci_draws, CI_SEED)
    return {"value": res["mean"], "n_samples": int(imgs.shape[0]), "extractor_sha256": sha, **ci,
            "details": {"per_class": res["per_class"], count_key: res["n_generated"], "n_real_per_class": res["n_real"]}}


def compute_acc_gen(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``acc_gen``: evaluator label accuracy in [0, 1] of n/K generated images per emotion; with equal counts per
    class it is the class-balanced accuracy. Both accuracies, chance and the majority-class baselines go to
    details."""
    imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    res = label_accuracy(ctx.evaluator, imgs, labs, ctx.data.class_names)
    return _accuracy_entry(ctx, res, labs, stratified=False, balanced=True, over="generated samples")


def reference_acc_gen(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``acc_gen``'s reference: :func:`evaluator_reference` (class-balanced)."""
    return evaluator_reference(spec, ctx)


def _accuracy_entry(ctx: EvalContext, res: dict, labs: torch.Tensor, stratified: bool, balanced: bool,
                    over: str) -> Entry:
    """The entry of an evaluator accuracy ``res`` (:func:`label_accuracy` or :func:`accuracy_of_predictions`) over
    images of int64 labels ``labs``: the balanced accuracy when ``stratified`` (interval: stratified bootstrap),
    else the accuracy ``res["value"]``; ``balanced`` names the statistic in details."""
    base = accuracy_baselines(ctx.train.labels, labs, ctx.data.class_names)
    ci = {}
    if ctx.ci_draws:
        ci = (balanced_mean_ci(res["correct"], labs.cpu().numpy(), ctx.ci_draws, CI_SEED, over, res["balanced_acc"])
              if stratified
              else mean_ci(res["correct"], ctx.ci_draws, CI_SEED, over))
    return {"value": res["balanced_acc"] if stratified else res["value"], "n_samples": res["n"],
            "extractor_sha256": ctx.evaluator.sha256, **ci,
            "details": {"statistic": STATISTIC if balanced else PLAIN, "accuracy": res["value"],
                        "balanced_acc": res["balanced_acc"], "per_class": res["per_class"],
                        "confusion_matrix": res["confusion_matrix"], "class_names": list(ctx.data.class_names),
                        "tta": "hflip", **base}}


STATISTIC = "class-balanced accuracy (mean per-class recall); plain accuracy in details"
PLAIN = "plain accuracy (test images in their natural class balance); balanced accuracy in details"


def evaluator_reference(spec: MetricSpec, ctx: EvalContext, balanced: bool = True) -> Entry:
    """The evaluator on all real test images, recorded with its extractor: the reference of the protocols
    whose value is an evaluator accuracy on model outputs. ``balanced``: its class-balanced accuracy (for
    values balanced over classes: acc_gen, translate_acc, edit_success); else its plain accuracy (for a
    value over test images in their natural class balance: enc_acc)."""
    labs = ctx.test.labels  # the evaluator's test-split labels, classified once per cache (ctx.test_predictions)
    res = accuracy_of_predictions(ctx.test_predictions(), labs, ctx.data.class_names)
    out = _accuracy_entry(ctx, res, labs, stratified=balanced, balanced=balanced, over="test images")
    out["extractor"] = "fer-evaluator"
    return out
