"""Encoder metrics (capability ``encode``) and their protocols: ``enc_acc``, ``probe``, ``recon``.

* Encoder label accuracy: E_c(x) used as a classifier on real test images (BiCoGAN).
* Linear probe: multinomial logistic regression (scikit-learn) on E(x) = z, trained on real train images,
  tested on real test images (BiGAN; the unsupervised-feature protocol of Donahue et al. 2017, sec. 4).
* Reconstruction: mean L1 and SSIM between x and G(E(x)), and a classifier's label agreement between x
  and G(E(x)) (Donahue et al. 2017 and Jaiswal et al. 2019 show reconstructions; agreement measures
  whether the expression survives).

Model outputs go through :func:`exprbench.data.to_uint8` before any comparison, so every number is
measured on images quantized exactly like the real ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from exprbench.data import to_float, to_uint8

from exprbench.metrics.families.classaware import evaluator_reference
from exprbench.metrics.protocols.names import PROBE_TRAIN_PER_CLASS
from exprbench.metrics.families.imageops import (CapabilityMetricError, Classifier, batched, check_labels, check_model_images, l1_ssim,
                       need)
from exprbench.metrics.families.labels import confusion_matrix, per_class_accuracy

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


# --------------------------------------------------------------------------------------------
# encoders


def encoder_label_accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> dict:
    """Accuracy of the encoder's class prediction argmax E_c(x) on real images (BiCoGAN's E as a classifier).

    Args:
        model: a plugin with ``encode`` whose :meth:`encode` returns ``c_logits``.
        images: uint8 N x C x H x W real images (the test split), 0..255.
        labels: int64 N true labels in the model's label set (``model.spec.class_names``).

    Returns:
        ``{"value": accuracy in [0, 1], "per_class": {name: recall or None}, "confusion_matrix": K x K
        counts (rows true, columns predicted), "n": N}``.

    Raises:
        CapabilityMetricError: no ``encode`` capability, an encoder without ``c_logits``, bad inputs.
    """
    need(model, "encode")
    spec = model.spec
    images = check_model_images(images, spec, "images")
    labels = check_labels(labels, images.shape[0], spec.num_classes, "labels")

    def logits(x: torch.Tensor) -> torch.Tensor:
        enc = model.encode(to_float(x))
        if "c_logits" not in enc:
            raise CapabilityMetricError(f"model {model.name!r}: its encoder does not predict the class c")
        return enc["c_logits"]

    pred = batched(logits, images, batch_size=batch_size).argmax(1)
    cm = confusion_matrix(labels, pred, spec.num_classes)
    per = per_class_accuracy(cm, spec.class_names)
    return {"value": float((pred == labels).float().mean()), "per_class": per, "confusion_matrix": cm,
            "n": int(images.shape[0])}


def encode_z(model, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """E(x) = z for uint8 images N x C x H x W: float32 N x z_dim on the CPU.

    Raises:
        CapabilityMetricError: no ``encode`` capability or bad images.
    """
    need(model, "encode")
    images = check_model_images(images, model.spec, "images")
    return batched(lambda x: model.encode(to_float(x))["z"].float(), images, batch_size=batch_size)


def linear_probe_accuracy(model, train_images: torch.Tensor, train_labels: torch.Tensor,
                          test_images: torch.Tensor, test_labels: torch.Tensor, c: float = 1.0,
                          max_iter: int = 2000, batch_size: int = 256) -> dict:
    """Linear probe: logistic regression on standardized E(x), fit on train images, scored on test images.

    Args:
        model: a plugin with ``encode``.
        train_images, test_images: uint8 N x C x H x W real images (0..255).
        train_labels, test_labels: int64 N labels in the model's label set.
        c: inverse L2 regularization strength of ``sklearn.linear_model.LogisticRegression``.
        max_iter: lbfgs iterations.

    Returns:
        ``{"value": test accuracy, "train_accuracy", "per_class": {name: test recall or None},
        "n_train", "n_test", "z_dim"}``. Deterministic (lbfgs, no randomness).

    Raises:
        CapabilityMetricError: no ``encode`` capability, bad inputs, or fewer than 2 classes in train.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    k = model.spec.num_classes
    ztr = encode_z(model, train_images, batch_size).double().numpy()
    zte = encode_z(model, test_images, batch_size).double().numpy()
    ytr = check_labels(train_labels, ztr.shape[0], k, "train_labels").numpy()
    yte = check_labels(test_labels, zte.shape[0], k, "test_labels")
    if len(set(ytr.tolist())) < 2:
        raise CapabilityMetricError("train_labels: the linear probe needs at least 2 classes")
    scaler = StandardScaler().fit(ztr)
    clf = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(ztr), ytr)
    pred = torch.from_numpy(clf.predict(scaler.transform(zte))).long()
    cm = confusion_matrix(yte, pred, k)
    per = per_class_accuracy(cm, model.spec.class_names)
    return {"value": float((pred == yte).float().mean()), "train_accuracy": float(clf.score(scaler.transform(ztr), ytr)),
            "per_class": per, "n_train": int(ztr.shape[0]), "n_test": int(zte.shape[0]), "z_dim": int(ztr.shape[1])}


def reconstruction_metrics(model, images: torch.Tensor, labels: torch.Tensor | None = None,
                           classifier: Classifier | None = None, batch_size: int = 256) -> dict:
    """Mean L1 and SSIM between real x and G(E(x)), and a classifier's label agreement between them.

    Args:
        model: a plugin with ``encode`` (its :meth:`reconstruct`).
        images: uint8 N x C x H x W real images (the test split).
        labels: int64 N true labels; passed as c to conditional generators (G(E_z(x), c)); None lets a
            conditional model use its encoder's predicted c. Unconditional models ignore them.
        classifier: uint8 images -> int64 predicted labels; None skips the agreement.

    Returns:
        ``{"l1": mean |x - x'| on the [0, 1] scale, "ssim": mean SSIM, "label_agreement": fraction with
        classifier(x) == classifier(x') (None without a classifier), "n": N}``, plus
        ``"reconstructions"``: the uint8 x' (N x C x H x W) for figures.

    Raises:
        CapabilityMetricError: no ``encode`` capability or bad inputs.
    """
    need(model, "encode")
    images = check_model_images(images, model.spec, "images")
    if labels is not None:
        labels = check_labels(labels, images.shape[0], model.spec.num_classes, "labels")
        rec = batched(lambda x, c: to_uint8(model.reconstruct(to_float(x), c)), images, labels, batch_size=batch_size)
    else:
        rec = batched(lambda x: to_uint8(model.reconstruct(to_float(x))), images, batch_size=batch_size)
    l1, ss = l1_ssim(images, rec)
    agree = None
    if classifier is not None:
        agree = float((classifier(images).cpu() == classifier(rec).cpu()).float().mean())
    return {"l1": float(l1.mean()), "ssim": float(ss.mean()), "label_agreement": agree, "n": int(images.shape[0]),
            "reconstructions": rec}




def compute_enc_acc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``enc_acc``: accuracy in [0, 1] of argmax E_c(x) vs the true label on ``min(n, len(test))`` real test
    images."""
    imgs, labs = ctx.test_subset(spec.n_samples, spec.seed)
    with torch.no_grad():
        res = encoder_label_accuracy(ctx.model, imgs, labs, batch_size=ctx.model_batch_size)
    return {"value": res["value"], "n_samples": res["n"],
            "details": {"per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        "class_names": list(ctx.data.class_names), "split": "test (PrivateTest)"}}


def reference_enc_acc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``enc_acc``'s reference: the evaluator's plain accuracy on the real test split."""
    return evaluator_reference(spec, ctx, balanced=False)


def compute_probe(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``probe``: logistic regression on E(x) fit on the fixed class-balanced train subset (at most
    :data:`PROBE_TRAIN_PER_CLASS` a class), accuracy in [0, 1] on the test images (no real-data reference)."""
    train_per_class = PROBE_TRAIN_PER_CLASS
    tr_imgs, tr_labs = ctx.probe_train(train_per_class, spec.seed)
    te_imgs, te_labs = ctx.test_subset(spec.n_samples, spec.seed)
    with torch.no_grad():
        res = linear_probe_accuracy(ctx.model, tr_imgs, tr_labs, te_imgs, te_labs, batch_size=ctx.model_batch_size)
    return {"value": res["value"], "n_samples": res["n_test"],
            "details": {"train_accuracy": res["train_accuracy"], "per_class": res["per_class"],
                        "n_train": res["n_train"], "train_per_class": train_per_class, "z_dim": res["z_dim"],
                        "classifier": "sklearn LogisticRegression(C=1, lbfgs, max_iter=2000) on standardized z"}}


def compute_recon_l1(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``recon``: mean L1 ([0, 1] scale) and SSIM of x vs G(E(x)) (the model's own c for conditional models; no
    real-data reference)."""
    imgs, _ = ctx.test_subset(spec.n_samples, spec.seed)
    with torch.no_grad():
        res = reconstruction_metrics(ctx.model, imgs, labels=None, classifier=ctx.classify,
                                     batch_size=ctx.model_batch_size)
    return {"value": res["l1"], "n_samples": res["n"], "extractor_sha256": ctx.evaluator.sha256,
            "details": {"l1": res["l1"], "ssim": res["ssim"], "label_agreement": res["label_agreement"],
                        "c": "the encoder's own prediction (conditional models)", "scale": "[0, 1] pixels"}}
