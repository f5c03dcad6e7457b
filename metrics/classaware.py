"""Class-aware metrics and their protocols: intra-class FID, label accuracy ("GAN-test") and the
Classification Accuracy Score ("GAN-train").

* Label accuracy (Shmelkov et al. 2018, "How good is my GAN?", GAN-test): images generated for each
  emotion are classified by the fixed FER2013 evaluator (hflip TTA); the fraction classified as the
  emotion they were generated for, overall and per class, with the confusion matrix. On real test
  images the same function gives the evaluator's test accuracy (its card).
* Classification Accuracy Score (Ravuri & Vinyals 2019, CAS; Shmelkov et al.'s GAN-train): a fresh
  classifier (the evaluator's recipe, :func:`exprbench.metrics.evaluator.train_classifier`, on a short
  schedule and a narrower net) is trained only on generated images with their conditioning labels and
  tested on real PrivateTest images. Reported with its ratio to the same recipe trained on as many
  real training images with the same class balance (the real-data baseline, cached on disk under a
  content-hash key).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from exprbench.data import FaceDataset, cache_dir
from exprbench.errors import UserError
from exprbench.io import cached_json, content_key

from .bootstrap import CI_SEED, balanced_mean_ci, mean_ci, stratified_fid_ci
from .classifier_training import TrainRecipe, accuracy_of, train_classifier
from .evaluator import Evaluator
from .evaluator_net import NetConfig
from .fidelity import intra_class_fid
from .fidelity_inputs import PREPROCESS_VERSION, MetricInputError, check_images, extractor_info, generated_cache_name
from .labels import balanced_subset, confusion_matrix, per_class_accuracy


def _check_labels(labels, n: int, k: int, what: str) -> torch.Tensor:
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
    labels = _check_labels(labels, images.shape[0], len(class_names), "labels")
    return accuracy_of_predictions(evaluator.predict(images, class_names, tta=tta), labels, class_names)


def accuracy_of_predictions(pred: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """:func:`label_accuracy`'s result from predicted labels (int64 N) and true labels (int64 N, indices into
    ``class_names``). Raises MetricInputError when their counts differ or a label is out of range."""
    labels = _check_labels(labels, int(pred.shape[0]), len(class_names), "labels")
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


@dataclass(frozen=True)
class CASProtocol:
    """What defines a CAS number.

    Attributes:
        width, feat_dim: the fresh classifier (a narrow :class:`FERNet`).
        epochs, batch_size, lr: its short schedule (rest of the recipe as the evaluator's).
        seed: seed of the classifier's training (init, order, augmentation); the first classifier seed.
        seeds: classifiers trained per CAS value, with seeds ``seed, seed + 1, ...``: the value is their mean
            and its interval includes their spread (:func:`cas_over_seeds`).
        seeds_from: training sets of fewer images train one classifier (seed ``seed``) instead, to keep the
            small protocols cheap (the smoke suite's ``cas350``, the tests' ``cas70``/``cas140``).
    """

    width: int = 16
    feat_dim: int = 128
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    seed: int = 0
    seeds: int = 3
    seeds_from: int = 1000

    def recipe(self, seed: int | None = None) -> TrainRecipe:
        """The training recipe with classifier seed ``seed`` (default :attr:`seed`)."""
        return TrainRecipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           seed=self.seed if seed is None else int(seed))

    def classifier_seeds(self, n_train: int) -> list[int]:
        """The classifier seeds for a training set of ``n_train`` images: ``seeds`` of them from ``seed`` on,
        one (``seed``) under ``seeds_from`` images."""
        return list(range(self.seed, self.seed + (max(self.seeds, 1) if n_train >= self.seeds_from else 1)))

    def net(self, class_names: Sequence[str]) -> NetConfig:
        return NetConfig(width=self.width, feat_dim=self.feat_dim, dropout=0.3, class_names=tuple(class_names))


@contextmanager
def deterministic():
    """Deterministic kernels for the block (``torch.use_deterministic_algorithms(True, warn_only=True)``; on
    CUDA also cuDNN's deterministic, non-benchmarking mode), the caller's settings restored after it. With the
    seeds fixed, a CAS classifier trained twice at the same thread count (CPU) is the same classifier."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def classifier_accuracy_on_real(train_images: torch.Tensor, train_labels: torch.Tensor, test: FaceDataset,
                                protocol: CASProtocol, device: torch.device | str = "cpu",
                                seed: int | None = None) -> dict:
    """Train the CAS classifier on (images, labels) and test it on real ``test`` images (hflip TTA).

    Training is seeded (``seed``, default ``protocol.seed``: weights, data order, augmentation) and runs with
    deterministic kernels (:func:`deterministic`): the same inputs at the same thread count give the same
    result.

    Args:
        train_images: uint8 N x 1 x 48 x 48; train_labels: int64 N indices into ``test.class_names``.
        test: the real test split (PrivateTest) in the same label set.
        seed: the classifier seed.

    Returns:
        ``{"value": accuracy, "per_class": {...}, "confusion_matrix": K x K, "n_train": N,
        "n_test": M, "train_seconds": float, "balanced_acc": mean per-class recall on test,
        "correct": [0/1] * M (per test image)}``.

    Raises:
        MetricInputError: bad images or labels.
    """
    k = len(test.class_names)
    train_images = check_images(train_images, "CAS training images")
    train_labels = _check_labels(train_labels, train_images.shape[0], k, "CAS training labels")
    t0 = time.perf_counter()
    with deterministic():
        net, _ = train_classifier(train_images, train_labels, protocol.net(test.class_names), protocol.recipe(seed),
                                  device)
        secs = time.perf_counter() - t0
        acc, pred = accuracy_of(net, test.images, test.labels, torch.device(device), tta=True)
    cm = confusion_matrix(test.labels, pred, k)
    per = per_class_accuracy(cm, test.class_names)
    return {"value": acc, "per_class": per, "confusion_matrix": cm,
            "n_train": int(train_images.shape[0]), "n_test": int(test.images.shape[0]),
            "train_seconds": round(secs, 2), "balanced_acc": balanced_accuracy(per),
            "correct": (pred.cpu() == test.labels.cpu()).long().tolist()}


SEED_RULE = ("the mean of the classifier seeds' class-balanced accuracies; 95% interval: the bootstrap over test "
             "faces (stratified by class) of that mean, each side widened in quadrature by the seeds' "
             "t(0.975, n-1)*sd/sqrt(n) (none for one seed)")


def cas_over_seeds(train_images: torch.Tensor, train_labels: torch.Tensor, test: FaceDataset, protocol: CASProtocol,
                   device: torch.device | str = "cpu") -> dict:
    """:func:`classifier_accuracy_on_real` once per classifier seed (``protocol.classifier_seeds(N)``), combined.

    Args: as :func:`classifier_accuracy_on_real`.

    Returns:
        ``{"value": mean plain accuracy, "balanced_acc": mean of the seeds' class-balanced accuracies,
        "per_class": mean recall per class, "confusion_matrix": K x K counts summed over seeds,
        "classifier_seeds": [int], "per_seed": [balanced accuracy per seed], "per_seed_accuracy": [plain],
        "seed_sd": sample sd of per_seed (0.0 for one seed), "n_train", "n_test", "train_seconds" (summed),
        "correct": [float] * M, per test image the fraction of the seeds' classifiers right}``. The mean over
        seeds of per-image outcomes keeps the class-balanced mean: the balanced mean of ``correct`` is
        ``balanced_acc``.

    Raises:
        MetricInputError: bad images or labels.
    """
    seeds = protocol.classifier_seeds(int(train_images.shape[0]))
    runs = [classifier_accuracy_on_real(train_images, train_labels, test, protocol, device, seed=s) for s in seeds]
    n = len(runs)
    per_seed = [r["balanced_acc"] for r in runs]
    cm = [[sum(r["confusion_matrix"][i][j] for r in runs) for j in range(len(test.class_names))]
          for i in range(len(test.class_names))]
    per_class = {}
    for name in test.class_names:
        vals = [r["per_class"][name] for r in runs]
        per_class[name] = None if any(v is None for v in vals) else sum(vals) / n
    known = [b for b in per_seed if b is not None]
    mean_bal = sum(known) / len(known) if len(known) == n else None
    sd = (sum((b - mean_bal) ** 2 for b in known) / (n - 1)) ** 0.5 if n > 1 and mean_bal is not None else 0.0
    return {"value": sum(r["value"] for r in runs) / n, "balanced_acc": mean_bal, "per_class": per_class,
            "confusion_matrix": cm, "classifier_seeds": seeds, "per_seed": per_seed,
            "per_seed_accuracy": [r["value"] for r in runs], "seed_sd": sd,
            "n_train": runs[0]["n_train"], "n_test": runs[0]["n_test"],
            "train_seconds": round(sum(r["train_seconds"] for r in runs), 2),
            "correct": [sum(c) / n for c in zip(*(r["correct"] for r in runs))]}


def seed_interval(boot: dict, value: float, per_seed: Sequence[float]) -> dict:
    """The CAS interval (:data:`SEED_RULE`): the bootstrap interval ``boot`` (:func:`balanced_mean_ci` fields
    of the seed mean over test faces) with each side widened in quadrature by ``t(0.975, n-1) * sd / sqrt(n)``
    of the ``n`` seeds' values ``per_seed`` (unchanged for one seed).

    Returns:
        ``boot`` with ``ci95`` widened, ``ci_method`` saying so and ``ci_bootstrap95`` (the test-face part alone).
    """
    from scipy import stats

    n = len(per_seed)
    if not boot or n < 2:
        return dict(boot)
    mean = sum(per_seed) / n
    sd = (sum((b - mean) ** 2 for b in per_seed) / (n - 1)) ** 0.5
    h = float(stats.t.ppf(0.975, n - 1)) * sd / n ** 0.5
    lo, hi = boot["ci95"]
    wide = [value - ((value - lo) ** 2 + h ** 2) ** 0.5, value + ((hi - value) ** 2 + h ** 2) ** 0.5]
    return {**boot, "ci95": [float(wide[0]), float(wide[1])], "ci_bootstrap95": list(boot["ci95"]),
            "ci_method": boot["ci_method"] + f"; widened by the spread over {n} classifier seeds ({SEED_RULE})"}


def balanced_real_subset(train: FaceDataset, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` real training images of each class (drawn without replacement; with replacement
    only for a class that has fewer, e.g. disgust with 436 train images), labels int64.

    Raises:
        UserError: a class has no training image.
    """
    counts = torch.bincount(train.labels.cpu(), minlength=len(train.class_names)).tolist()
    for k, c in enumerate(counts):
        if c == 0:
            raise UserError(f"class {train.class_names[k]!r} has no training image")
    idx = balanced_subset(train.labels, len(train.class_names), per_class, seed, short="resample")
    return train.images[idx], train.labels[idx].cpu()


def cas_real_baseline(data: FaceDataset, per_class: int, protocol: CASProtocol,
                      device: torch.device | str = "cpu", use_cache: bool = True) -> dict:
    """The CAS recipe trained on real training images (``per_class`` per class), tested on real test.

    Cached as JSON under ``$EXPRBENCH_CACHE/metrics/`` with a key hashing the decoded data's content
    (:meth:`~exprbench.data.FaceDataset.content_sha256`), preprocessing version, label set, per-class count,
    the protocol, the device type and, on CPU, torch's thread count and CPU capability (ISA), so a changed
    recipe, dataset or machine kind never reuses it: the trained classifier depends on them (the reference
    config's balanced accuracy on the same 7,000 FER2013 faces measured 0.350 and 0.367 at 1 thread on two
    machines (each reproducible on its own) and 0.392 at 2 threads), so CAS is comparable only between evaluations whose
    ``details.threads`` and ``details.cpu_capability`` match.

    The classifiers are those of a generated set of as many images (:func:`cas_over_seeds`: the same classifier
    seeds, the same deterministic training), so the reference row is what a re-run computes.

    Returns:
        Same dict as :func:`cas_over_seeds`, plus ``"cache_key"``, ``"threads"`` and ``"cpu_capability"`` (None off CPU).
    """
    dev_type = torch.device(device).type
    threads = torch.get_num_threads() if dev_type == "cpu" else None  # CPU kernels split reductions by thread
    isa = torch.backends.cpu.get_cpu_capability() if dev_type == "cpu" else None  # and pick kernels by ISA
    key_parts = {"v": 5, "data": data.content_sha256(), "preprocess": PREPROCESS_VERSION, "label_set": data.label_set,
                 "per_class": int(per_class),
                 "protocol": asdict(protocol), "device_type": dev_type, "threads": threads, "cpu_capability": isa}
    key = content_key(key_parts)
    path = cache_dir() / "metrics" / f"cas-real-{key}.json"

    def compute() -> dict:
        x, y = balanced_real_subset(data.split("train"), per_class, protocol.seed + 1)
        res = cas_over_seeds(x, y, data.split("test"), protocol, device)
        res["cache_key"], res["threads"], res["cpu_capability"] = key, threads, isa
        return res

    return cached_json(path, compute) if use_cache else compute()


# -- the protocols: ifid, acc_gen, cas --------------------------------------------------------------
CAS = CASProtocol()


def cas_sha() -> str:
    """Content hash of the CAS recipe (recorded as the entries' ``extractor_sha256``)."""
    return hashlib.sha256(json.dumps(asdict(CAS), sort_keys=True).encode()).hexdigest()


def run_ifid(spec, ctx, real: bool) -> dict:
    """``ifid``: per emotion, FID of n/K generated vs that emotion's train images; value = mean over emotions.
    Reference: per emotion n/K real test faces of that emotion, from PrivateTest + PublicTest where PrivateTest
    has fewer, all of them where both have fewer (the counts are in details ``n_reference_per_class``)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    names = ctx.data.class_names
    # an emotion's train features are rows of the full train split's (extracted once)
    ref_names = [ctx.train_subset_name(spec, sha, ctx.train.labels == k, f"class={n}") for k, n in enumerate(names)]
    if real:
        rs = ctx.real_set_per_class(spec.n_samples // ctx.k, spec.seed)
        imgs, labs = rs.images, rs.labels
    else:
        imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    res = intra_class_fid(imgs, labs, ctx.train.images, ctx.train.labels, names, real_cache_names=ref_names,
                          **ctx.fidelity_kw(spec))
    if real:
        feat_name = ctx.ref_name(rs.split, len(imgs), spec.extractor, sha, rs.selection)
    else:
        feat_name = generated_cache_name(imgs, spec.extractor, sha)
        ctx.gen_cache_names.add(feat_name)
    ci = {}
    if ctx.ci_draws:
        feats = ctx.fidelity_feats(spec, imgs, feat_name, "generated")
        gl, tl = labs.cpu(), ctx.train.labels.cpu()
        ci = stratified_fid_ci([feats[gl == k] for k in range(len(names))],
                               [fid_features_to_statistics(ctx.fidelity_feats(spec, ctx.train.images[tl == k],
                                                                              ref_names[k], "real"))
                                for k in range(len(names))],
                               res["mean"], ctx.ci_draws, CI_SEED)
    out = {"value": res["mean"], "n_samples": int(imgs.shape[0]), "extractor_sha256": sha, **ci,
           "details": {"per_class": res["per_class"], "n_generated_per_class" if not real else "n_reference_per_class":
                       res["n_generated"], "n_real_per_class": res["n_real"]}}
    if real:
        out["n_protocol"] = spec.n_samples // ctx.k * ctx.k
        out["details"].update(reference_set=rs.where, reference_selection=rs.selection,
                              protocol_n_per_class=spec.n_samples // ctx.k)
    return out


def run_acc(spec, ctx, real: bool, balanced: bool = True) -> dict:
    """``acc_gen``: evaluator label accuracy of n/K generated images per emotion; with equal counts per class it
    is the class-balanced accuracy. Reference (``real``): the evaluator's class-balanced accuracy (mean
    per-class recall) on the real test split, the same statistic; with ``balanced=False`` its plain accuracy.
    Both accuracies, chance and the majority-class baselines go to details."""
    if real:  # the evaluator's test-split labels, classified once per cache (ctx.test_predictions)
        labs = ctx.test.labels
        res = accuracy_of_predictions(ctx.test_predictions(), labs, ctx.data.class_names)
    else:
        imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
        res = label_accuracy(ctx.evaluator, imgs, labs, ctx.data.class_names)
    base = accuracy_baselines(ctx.train.labels, labs, ctx.data.class_names)
    stratified = real and balanced
    over = "test images" if real else "generated samples"
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


def evaluator_reference(spec, ctx, balanced: bool = True) -> dict:
    """The evaluator on all real test images, recorded with its extractor: the reference of the protocols
    whose value is an evaluator accuracy on model outputs. ``balanced``: its class-balanced accuracy (for
    values balanced over classes: acc_gen, translate_acc, edit_success); else its plain accuracy (for a
    value over test images in their natural class balance: enc_acc)."""
    out = run_acc(spec, ctx, real=True, balanced=balanced)
    out["extractor"] = "fer-evaluator"
    return out


def run_cas(spec, ctx, real: bool) -> dict:
    """``cas``: fresh classifiers trained on n generated images, tested on real test images (PrivateTest, whose
    classes are imbalanced): value = the mean over the classifier seeds (:meth:`CASProtocol.classifier_seeds`: 3
    from 1,000 training images, 1 under) of their class-balanced accuracy (mean per-class recall), plain accuracy
    in details; reference: the same statistic of the recipe on as many real train images, with the same seeds
    (trained once, cached). Interval: :data:`SEED_RULE` (details ``classifier_seeds``, ``per_seed``, ``seed_sd``,
    ``interval``; ``ci_bootstrap95`` the test-face part alone)."""
    per_class = max(spec.n_samples // ctx.k, 1)
    if per_class < spec.min_samples:  # a classifier of a handful of images per class answers one class: chance
        raise MetricInputError(f"{spec.name}: CAS needs at least {spec.min_samples} images per class to train its "
                               f"classifier, {spec.name} gives {per_class}")
    seeds = CAS.classifier_seeds(per_class * ctx.k)
    if not real:
        ctx.note(f"training {len(seeds)} fresh classifier{'s' if len(seeds) > 1 else ''} (seeds "
                 f"{', '.join(map(str, seeds))}) on {per_class * ctx.k:,} images ({CAS.epochs} epochs); its real-data "
                 "baseline (the recipe on as many real train images) is trained once, then cached")
    base = cas_real_baseline(ctx.data, per_class, CAS, ctx.device)
    common = {"extractor_sha256": cas_sha()}
    trivial = accuracy_baselines(ctx.train.labels, ctx.test.labels, ctx.data.class_names)
    over = "test images (the classifiers are fixed; resampling their training set would retrain them)"
    test_labels = ctx.test.labels.cpu().numpy()
    base_bal = base["balanced_acc"]

    def interval(res: dict, value) -> dict:
        if not (res.get("correct") and ctx.ci_draws and value is not None):
            return {}
        boot = balanced_mean_ci(res["correct"], test_labels, ctx.ci_draws, CI_SEED, over, value)
        return seed_interval(boot, value, res["per_seed"])

    def seed_details(res: dict) -> dict:
        return {"classifier_seeds": res["classifier_seeds"], "per_seed": res["per_seed"], "seed_sd": res["seed_sd"],
                "interval": SEED_RULE}

    if real:
        return {"value": base_bal, "n_samples": base["n_train"], **common, **interval(base, base_bal),
                "details": {"statistic": STATISTIC, "accuracy": base["value"], "balanced_acc": base_bal,
                            "per_class": base["per_class"], "confusion_matrix": base["confusion_matrix"],
                            **seed_details(base), "protocol": asdict(CAS),
                            "train": "real train images, class-balanced", **trivial}}
    imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    res = cas_over_seeds(imgs, labs, ctx.test, CAS, ctx.device)
    bal = res["balanced_acc"]
    ratio = bal / base_bal if bal is not None and base_bal else None
    return {"value": bal, "n_samples": res["n_train"], **common, **interval(res, bal),
            "details": {"statistic": STATISTIC, "accuracy": res["value"], "balanced_acc": bal,
                        "ratio_to_real": ratio, "real_baseline": base_bal, "real_baseline_accuracy": base["value"],
                        "threads": base.get("threads"), "cpu_capability": base.get("cpu_capability"),
                        "per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        **seed_details(res), "protocol": asdict(CAS), "n_test": res["n_test"],
                        "train_seconds": res["train_seconds"], **trivial}}
