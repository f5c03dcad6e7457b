"""The Classification Accuracy Score (Ravuri & Vinyals 2019, CAS; Shmelkov et al.'s GAN-train): fresh classifiers
(the evaluator's recipe, :func:`exprbench.metrics.extractors.classifier_training.train_classifier`, on a short schedule and a
narrower net) trained only on generated images with their conditioning labels and tested on real PrivateTest
images, over several classifier seeds. Reported with its ratio to the same recipe trained on as many real
training images with the same class balance (the real-data baseline, cached on disk under a content-hash key).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from exprbench.data import FaceDataset, cache_dir
from exprbench.core.errors import UserError
from exprbench.core.io import cached_json, content_key

from exprbench.metrics.families.bootstrap import CI_SEED, balanced_mean_ci
from exprbench.metrics.families.classaware import STATISTIC, check_labels, accuracy_baselines, balanced_accuracy
from exprbench.metrics.extractors.classifier_training import TrainRecipe, accuracy_of, train_classifier
from exprbench.metrics.extractors.evaluator_net import NetConfig
from exprbench.metrics.families.fidelity_inputs import PREPROCESS_VERSION, MetricInputError, check_images
from exprbench.metrics.families.labels import balanced_subset, confusion_matrix, per_class_accuracy

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


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
    train_labels = check_labels(train_labels, train_images.shape[0], k, "CAS training labels")
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


def compute_cas(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``cas``: fresh classifiers trained on n generated images, tested on real test images (PrivateTest, whose
    classes are imbalanced): value = the mean over the classifier seeds (:meth:`CASProtocol.classifier_seeds`: 3
    from 1,000 training images, 1 under) of their class-balanced accuracy in [0, 1] (mean per-class recall), plain
    accuracy and the ratio to :func:`reference_cas` in details. Interval: :data:`SEED_RULE` (details
    ``classifier_seeds``, ``per_seed``, ``seed_sd``, ``interval``; ``ci_bootstrap95`` the test-face part alone).

    Raises:
        MetricInputError: fewer than ``spec.min_samples`` images per class.
    """
    per_class, seeds = _cas_size(spec, ctx)
    ctx.note(f"training {len(seeds)} fresh classifier{'s' if len(seeds) > 1 else ''} (seeds "
             f"{', '.join(map(str, seeds))}) on {per_class * ctx.k:,} images ({CAS.epochs} epochs); its real-data "
             "baseline (the recipe on as many real train images) is trained once, then cached")
    base = cas_real_baseline(ctx.data, per_class, CAS, ctx.device)
    base_bal = base["balanced_acc"]
    imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    res = cas_over_seeds(imgs, labs, ctx.test, CAS, ctx.device)
    bal = res["balanced_acc"]
    ratio = bal / base_bal if bal is not None and base_bal else None
    return {"value": bal, "n_samples": res["n_train"], "extractor_sha256": cas_sha(), **_interval(ctx, res, bal),
            "details": {"statistic": STATISTIC, "accuracy": res["value"], "balanced_acc": bal,
                        "ratio_to_real": ratio, "real_baseline": base_bal, "real_baseline_accuracy": base["value"],
                        "threads": base.get("threads"), "cpu_capability": base.get("cpu_capability"),
                        "per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        **_seed_details(res), "protocol": asdict(CAS), "n_test": res["n_test"],
                        "train_seconds": res["train_seconds"], **_trivial(ctx)}}


def reference_cas(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``cas``'s reference: the same statistic of the recipe trained on as many real train images
    (class-balanced), with the same seeds (trained once, cached: :func:`cas_real_baseline`).

    Raises:
        MetricInputError: fewer than ``spec.min_samples`` images per class.
    """
    per_class, _ = _cas_size(spec, ctx)
    base = cas_real_baseline(ctx.data, per_class, CAS, ctx.device)
    base_bal = base["balanced_acc"]
    return {"value": base_bal, "n_samples": base["n_train"], "extractor_sha256": cas_sha(),
            **_interval(ctx, base, base_bal),
            "details": {"statistic": STATISTIC, "accuracy": base["value"], "balanced_acc": base_bal,
                        "per_class": base["per_class"], "confusion_matrix": base["confusion_matrix"],
                        **_seed_details(base), "protocol": asdict(CAS),
                        "train": "real train images, class-balanced", **_trivial(ctx)}}


def _cas_size(spec: MetricSpec, ctx: EvalContext) -> tuple[int, list[int]]:
    """``(images per class, classifier seeds)`` of ``spec`` (MetricInputError under ``spec.min_samples`` a class)."""
    per_class = max(spec.n_samples // ctx.k, 1)
    if per_class < spec.min_samples:  # a classifier of a handful of images per class answers one class: chance
        raise MetricInputError(f"{spec.name}: CAS needs at least {spec.min_samples} images per class to train its "
                               f"classifier, {spec.name} gives {per_class}")
    return per_class, CAS.classifier_seeds(per_class * ctx.k)


def _trivial(ctx: EvalContext) -> dict:
    """Chance and majority-class baselines on the test split."""
    return accuracy_baselines(ctx.train.labels, ctx.test.labels, ctx.data.class_names)


def _interval(ctx: EvalContext, res: dict, value) -> dict:
    """The test-face bootstrap of ``res`` widened by its seed spread ({} without draws or per-image results)."""
    if not (res.get("correct") and ctx.ci_draws and value is not None):
        return {}
    over = "test images (the classifiers are fixed; resampling their training set would retrain them)"
    boot = balanced_mean_ci(res["correct"], ctx.test.labels.cpu().numpy(), ctx.ci_draws, CI_SEED, over, value)
    return seed_interval(boot, value, res["per_seed"])


def _seed_details(res: dict) -> dict:
    return {"classifier_seeds": res["classifier_seeds"], "per_seed": res["per_seed"], "seed_sd": res["seed_sd"],
            "interval": SEED_RULE}
