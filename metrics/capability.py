"""Capability metrics: encoders (``encode``) and image-to-image translation (``translate``).

Pure functions over image tensors and a model plugin; the registry / ``evaluate_run`` wiring lives
elsewhere. Images enter and leave as uint8 N x C x H x W (0..255, the real data's form), model outputs go
through :func:`exprbench.data.to_uint8` before any comparison, so every number is measured on images
quantized exactly like the real ones.

* Encoder label accuracy: E_c(x) used as a classifier on real test images (BiCoGAN).
* Linear probe: multinomial logistic regression (scikit-learn) on E(x) = z, trained on real train images,
  tested on real test images (BiGAN; the unsupervised-feature protocol of Donahue et al. 2017, sec. 4).
* Reconstruction: mean L1 and SSIM (Wang et al. 2004; ``kornia.metrics.ssim``, 11x11 Gaussian window)
  between x and G(E(x)), and a classifier's label agreement between x and G(E(x)) (Donahue et al. 2017
  and Jaiswal et al. 2019 show reconstructions; agreement measures whether the expression survives).
* Translation (every model with ``translate``): target accuracy (a classifier reads the target emotion in
  the translated image; the StarGAN / CCycleGAN protocol), the source x target accuracy matrix, identity
  preservation (L1 / SSIM to the source, and the distance between classifier features of source and
  translation), and the image sets for a FID of translated images against real images of the target.

Conventions: ``classifier`` is a callable uint8 N x C x H x W -> int64 N predicted labels in the model's
label set (e.g. ``lambda im: evaluator.predict(im, spec.class_names)``); ``features`` a callable uint8
N x C x H x W -> float N x D (e.g. ``lambda im: evaluator.features_and_logits(im)[0]``). L1 is measured on
the [0, 1] pixel scale (uint8 / 255); SSIM on the same scale (data range 1), per image then averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from exprbench.data import to_float, to_uint8
from exprbench.errors import UserError

Classifier = Callable[[torch.Tensor], torch.Tensor]
Features = Callable[[torch.Tensor], torch.Tensor]


class CapabilityMetricError(UserError):
    """Bad inputs to a capability metric, or a model without the capability it needs."""


# --------------------------------------------------------------------------------------------
# inputs


def _need(model, capability: str) -> None:
    if capability not in getattr(model, "capabilities", ()):
        raise CapabilityMetricError(f"model {getattr(model, 'name', model)!r} lacks the capability {capability!r}")


def _images(images, spec, what: str) -> torch.Tensor:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4:
        raise CapabilityMetricError(f"{what}: expected uint8 images N x C x H x W (0..255), got "
                                    f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if tuple(images.shape[1:]) != (spec.channels, spec.height, spec.width):
        raise CapabilityMetricError(f"{what}: expected N x {spec.channels} x {spec.height} x {spec.width}, "
                                    f"got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise CapabilityMetricError(f"{what}: empty set (0 images)")
    return images.cpu()


def _labels(labels, n: int, k: int, what: str) -> torch.Tensor:
    if not torch.is_tensor(labels) or labels.shape != (n,) or labels.is_floating_point():
        raise CapabilityMetricError(f"{what}: expected an int64 tensor of {n} labels")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise CapabilityMetricError(f"{what}: labels outside 0..{k - 1}")
    return labels.long().cpu()


def _batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    for i in range(0, tensors[0].shape[0], batch_size):
        out.append(fn(*(t[i : i + batch_size] for t in tensors)).cpu())
    return torch.cat(out)


def _unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def l1_ssim(a: torch.Tensor, b: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean absolute difference and SSIM of two uint8 image sets N x C x H x W.

    Returns (l1 float N in [0, 1], ssim float N in [-1, 1]), both on the [0, 1] pixel scale; SSIM with
    ``kornia.metrics.ssim`` (11x11 Gaussian window, sigma 1.5, max_val 1), averaged over its map.
    """
    from kornia.metrics import ssim

    l1s, ss = [], []
    for i in range(0, a.shape[0], batch_size):
        x, y = _unit(a[i : i + batch_size]), _unit(b[i : i + batch_size])
        l1s.append((x - y).abs().flatten(1).mean(1))
        ss.append(ssim(x, y, window_size=11, max_val=1.0).flatten(1).mean(1))
    return torch.cat(l1s), torch.cat(ss)


def _confusion(true: torch.Tensor, pred: torch.Tensor, k: int) -> list[list[int]]:
    cm = torch.zeros(k, k, dtype=torch.int64)
    cm.index_put_((true, pred), torch.ones_like(true), accumulate=True)
    return cm.tolist()


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
    _need(model, "encode")
    spec = model.spec
    images = _images(images, spec, "images")
    labels = _labels(labels, images.shape[0], spec.num_classes, "labels")

    def logits(x: torch.Tensor) -> torch.Tensor:
        enc = model.encode(to_float(x))
        if "c_logits" not in enc:
            raise CapabilityMetricError(f"model {model.name!r}: its encoder does not predict the class c")
        return enc["c_logits"]

    pred = _batched(logits, images, batch_size=batch_size).argmax(1)
    cm = _confusion(labels, pred, spec.num_classes)
    per = {n: (cm[i][i] / sum(cm[i]) if sum(cm[i]) else None) for i, n in enumerate(spec.class_names)}
    return {"value": float((pred == labels).float().mean()), "per_class": per, "confusion_matrix": cm,
            "n": int(images.shape[0])}


def encode_z(model, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """E(x) = z for uint8 images N x C x H x W: float32 N x z_dim on the CPU.

    Raises:
        CapabilityMetricError: no ``encode`` capability or bad images.
    """
    _need(model, "encode")
    images = _images(images, model.spec, "images")
    return _batched(lambda x: model.encode(to_float(x))["z"].float(), images, batch_size=batch_size)


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
    ytr = _labels(train_labels, ztr.shape[0], k, "train_labels").numpy()
    yte = _labels(test_labels, zte.shape[0], k, "test_labels")
    if len(set(ytr.tolist())) < 2:
        raise CapabilityMetricError("train_labels: the linear probe needs at least 2 classes")
    scaler = StandardScaler().fit(ztr)
    clf = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(ztr), ytr)
    pred = torch.from_numpy(clf.predict(scaler.transform(zte))).long()
    cm = _confusion(yte, pred, k)
    per = {n: (cm[i][i] / sum(cm[i]) if sum(cm[i]) else None) for i, n in enumerate(model.spec.class_names)}
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
    _need(model, "encode")
    images = _images(images, model.spec, "images")
    if labels is not None:
        labels = _labels(labels, images.shape[0], model.spec.num_classes, "labels")
        rec = _batched(lambda x, c: to_uint8(model.reconstruct(to_float(x), c)), images, labels, batch_size=batch_size)
    else:
        rec = _batched(lambda x: to_uint8(model.reconstruct(to_float(x))), images, batch_size=batch_size)
    l1, ss = l1_ssim(images, rec)
    agree = None
    if classifier is not None:
        agree = float((classifier(images).cpu() == classifier(rec).cpu()).float().mean())
    return {"l1": float(l1.mean()), "ssim": float(ss.mean()), "label_agreement": agree, "n": int(images.shape[0]),
            "reconstructions": rec}


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
    _need(model, "translate")
    spec = model.spec
    images = _images(images, spec, "images")
    source_labels = _labels(source_labels, images.shape[0], spec.num_classes, "source_labels")
    t = torch.tensor(list(range(spec.num_classes)) if targets is None else list(targets), dtype=torch.long)
    _labels(t, t.shape[0], spec.num_classes, "targets")
    cols = []
    for k in t.tolist():
        ct = torch.full_like(source_labels, k)
        cols.append(_batched(lambda x, cs, c: to_uint8(model.translate(to_float(x), c, cs)),
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
    real_labels = _labels(real_labels, real_images.shape[0], len(tr.class_names), "real_labels")
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
