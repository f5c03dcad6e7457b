"""The evaluation context: everything the protocols of one evaluation share (model, data, evaluator,
generated sets, fixed real subsets, reference caches) and what it says while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from exprbench.data import SPLITS, FaceDataset, to_uint8
from exprbench.core.errors import UserError

from exprbench.metrics.extractors.evaluator import load_evaluator
from exprbench.metrics.families.fidelity import cache_features, fidelity_features
from exprbench.metrics.families.fidelity_inputs import PREPROCESS_VERSION, fidelity_cache_root, is_cached, reference_cache_name
from exprbench.metrics.families.labels import balanced_subset
from exprbench.metrics.families.memorisation import duplicate_mask
from exprbench.metrics.run.eval_config import EvalConfig, network_mismatch
from exprbench.metrics.run.progress import EvalReporter
from exprbench.metrics.families.translation import translate_all

@dataclass(frozen=True)
class RealSet:
    """Real images standing in for generated ones in a real-data reference.

    Attributes:
        split: ``test`` (PrivateTest) or ``testval`` (PrivateTest + PublicTest); images: uint8 m x C x H x W;
        labels: int64 m; selection: how they were drawn (part of their features' cache name); wanted: the
        protocol's count (m < wanted where the data have fewer); per_class: ``{class: count}`` or None.
    """

    split: str
    images: torch.Tensor
    labels: torch.Tensor
    selection: str
    wanted: int
    per_class: dict | None = None

    @property
    def where(self) -> str:
        """``PrivateTest`` or ``PrivateTest + PublicTest``, for the entries' details."""
        return "PrivateTest" if self.split == "test" else "PrivateTest + PublicTest"


def _draw(split: str, imgs: torch.Tensor, labs: torch.Tensor, n: int, seed: int) -> RealSet:
    """``n`` of ``imgs`` at random (``seed``), or all of them (in order) when there are ``n`` or fewer."""
    if n >= len(imgs):
        return RealSet(split, imgs, labs, "all", n)
    idx = torch.randperm(len(imgs), generator=torch.Generator().manual_seed(seed))[:n]
    return RealSet(split, imgs[idx], labs[idx], f"random{n}-seed{seed}", n)


class EvalContext:
    """What the protocols of one evaluation share: its configuration (:class:`EvalConfig`, built once here and
    read-only: ``ctx.model``, ``ctx.data``, ``ctx.device``, ``ctx.ci_draws``, ...), the evaluator, the splits,
    and the caches of generated sets and fixed real subsets.

    Args:
        model, data, device, evaluator_weights, inception_weights: as :class:`EvalConfig`.
        reporter: progress hooks (default: silent).
        sample_store: a :class:`~exprbench.metrics.run.sample_store.SampleStore` keeping generated sets on disk, or None.
        **config: the other :class:`EvalConfig` fields (out_dir, ci_draws, batch_size, model_batch_size, image_words).

    Raises:
        TypeError: an unknown configuration field.
    """

    def __init__(self, model, data: FaceDataset, device: torch.device, evaluator_weights, inception_weights,
                 reporter: EvalReporter | None = None, sample_store=None, **config) -> None:
        self.config = EvalConfig(model, data, device, evaluator_weights, inception_weights, **config)
        self.sample_store = sample_store
        self.evaluator = load_evaluator(evaluator_weights, device)
        self.train, self.test = data.split("train"), data.split("test")
        self.val = data.split("val") if bool((data.splits == SPLITS.index("val")).any()) else None
        self.k = len(data.class_names)
        self.image_shape = tuple(data.images.shape[1:])
        self.conditional = "conditional" in model.capabilities
        self._gen: dict = {}
        self._real: dict = {}
        self.gen_cache_names: set[str] = set()
        self.reporter = reporter or EvalReporter()
        self.at = (0, 0, "")  # (index, total, protocol name) of the protocol running, for the reporter
        self.closest_pairs = None  # (scored images, pairs) of the last memorisation protocol, for figures
        self._stats: dict = {}

    # -- the configuration, read-only (EvalConfig) ------------------------------------------------
    model = property(lambda self: self.config.model, doc="The plugin evaluated (or a source of given images).")
    data = property(lambda self: self.config.data, doc="The dataset (FaceDataset).")
    device = property(lambda self: self.config.device, doc="The evaluator's torch device.")
    evaluator_weights = property(lambda self: self.config.evaluator_weights, doc="The evaluator's weights path.")
    inception_weights = property(lambda self: self.config.inception_weights, doc="Inception-V3 weights path or None.")
    out_dir = property(lambda self: self.config.out_dir, doc="Where figure inputs go (Path), or None.")
    ci_draws = property(lambda self: self.config.ci_draws, doc="Bootstrap draws of the intervals (0: none).")
    batch_size = property(lambda self: self.config.batch_size, doc="Images per model.sample call.")
    model_batch_size = property(lambda self: self.config.model_batch_size, doc="Real images per model call.")
    image_words = property(lambda self: self.config.image_words, doc="What the scored images are, for start lines.")

    # -- what is said while it runs ------------------------------------------------------------
    def note(self, text: str) -> None:
        """A line about the current protocol (a one-time computation, a phase)."""
        self.reporter.note(*self.at, text)

    def bar(self, desc: str, total: int):
        """A progress bar of the current protocol: context manager yielding ``advance(n)``."""
        return self.reporter.bar(f"{self.at[2]}: {desc}" if self.at[2] else desc, total)

    def fidelity_progress(self, role: str, total: int):
        """The ``progress`` of :func:`~exprbench.metrics.families.fidelity.fidelity_scores`: a bar per feature extraction."""
        return self.bar(f"features of {total:,} {role} images", total)

    def skip_reason(self, spec) -> str | None:
        """Why ``spec`` cannot run here (a capability the model lacks, a dataset it is not declared for, a
        network that cannot read the data), or None."""
        missing = sorted(spec.needs - set(self.model.capabilities))
        if missing:
            return f"model {self.model.name!r} lacks capability {', '.join(missing)}"
        return self.data_reason(spec)

    def data_reason(self, spec) -> str | None:
        """Why ``spec`` does not apply to this data (its ``datasets`` declaration, its networks' cards), or None."""
        if not spec.applies_to(self.data.label_set):
            return f"declared for the label sets {', '.join(spec.datasets)}, not {self.data.label_set!r}"
        for network in spec.uses:
            why = network_mismatch(network, self.data, self.evaluator)
            if why:
                return why
        return None

    # -- generation --------------------------------------------------------------------------
    def generate(self, n: int, seed: int, per_class: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 n x C x H x W generated images (the data's image shape) and their labels (None for
        unconditional models), in batches of ``batch_size``.

        ``per_class``: n // K images per class in class order; otherwise labels drawn from the train
        split's class distribution (the reference distribution) with ``seed``.

        Raises:
            UserError: the model's images do not have the data's shape.
        """
        key = (n, seed, per_class)
        if key in self._gen:
            return self._gen[key]
        stored = self.sample_store.load(n, seed, per_class) if self.sample_store is not None else None
        if stored is not None:
            self.note(f"{n:,} generated images read from {self.sample_store.folder.name}/ (drawn by an earlier evaluation)")
            self._gen[key] = stored
            return stored
        g = torch.Generator().manual_seed(seed)
        if per_class:
            labels = torch.arange(self.k).repeat_interleave(n // self.k)
        elif self.conditional:
            freq = torch.bincount(self.train.labels.cpu(), minlength=self.k).double()
            labels = torch.multinomial(freq / freq.sum(), n, replacement=True, generator=g)
        else:
            labels = None
        out = []
        bs = self.batch_size
        total = len(labels) if labels is not None else n
        with self.bar(f"generating {total:,} images", total) as advance:
            for i in range(0, total, bs):
                m = min(bs, total - i)
                lab = labels[i : i + m] if labels is not None else None
                x = self.model.sample(m, labels=lab, generator=g)
                out.append(to_uint8(x).cpu())
                advance(m)
        images = torch.cat(out)
        if tuple(images.shape[1:]) != self.image_shape:
            raise UserError(f"model generated images of shape {tuple(images.shape[1:])}, expected "
                            f"{' x '.join(map(str, self.image_shape))} (the data's)")
        self._gen[key] = (images, labels)
        if self.sample_store is not None:
            self.sample_store.save(n, seed, per_class, images, labels)
        return images, labels

    # -- real inputs of the protocols over real images ----------------------------------------
    def test_subset(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random subset of ``min(n, len(test))`` real test images (uint8 m x C x H x W) and
        their int64 labels, drawn with ``seed`` (natural class distribution, order of the permutation)."""
        key = ("test", n, seed)
        if key not in self._real:
            m = min(int(n), len(self.test))
            idx = torch.randperm(len(self.test), generator=torch.Generator().manual_seed(seed))[:m]
            self._real[key] = (self.test.images[idx], self.test.labels[idx])
        return self._real[key]

    def probe_train(self, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed class-balanced subset of the train split: ``min(per_class, n_k)`` images of each class
        k drawn with ``seed``; uint8 images and int64 labels, sorted by class."""
        key = ("balanced", per_class, seed)
        if key not in self._real:
            idx = balanced_subset(self.train.labels, self.k, per_class, seed)
            self._real[key] = (self.train.images[idx], self.train.labels[idx])
        return self._real[key]

    def translations(self, n: int, seed: int):
        """:class:`~exprbench.metrics.families.translation.Translations` of :meth:`test_subset` ``(n, seed)`` to all K
        classes (memoized: ``translate_acc`` and ``translate_fid`` of one count share them)."""
        key = ("translate", n, seed)
        if key not in self._real:
            imgs, labs = self.test_subset(n, seed)
            with torch.no_grad():
                self._real[key] = translate_all(self.model, imgs, labs, batch_size=self.model_batch_size)
        return self._real[key]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluator labels (hflip TTA, as acc_gen) of uint8 images, int64 indices into the data's classes."""
        return self.evaluator.predict(images, self.data.class_names)

    def test_predictions(self, lowpass: str | None = None) -> torch.Tensor:
        """The evaluator's labels (hflip TTA) of the real test split, int64 N: computed once per evaluator and
        decoded content, then read from a JSON cache (``$EXPRBENCH_CACHE/fidelity/predictions/``), so the
        references that are an evaluator accuracy on real test faces (acc_gen, translate_acc, edit_success,
        enc_acc) and processes sharing the cache classify the test faces once.

        Args:
            lowpass: a filter of :data:`~exprbench.metrics.families.lowpass.LOWPASS` applied to the faces first, or None.
        """
        memo = "test_pred" if lowpass is None else f"test_pred_{lowpass}"
        if memo not in self._real:
            from exprbench.core.io import cached_json, content_key

            from exprbench.metrics.families.lowpass import LOWPASS

            parts = {"data": self.data.content_sha256(), "preprocess": PREPROCESS_VERSION, "split": "test",
                     "label_set": self.data.label_set, "classes": list(self.data.class_names),
                     "evaluator": self.evaluator.sha256, "tta": "hflip"}
            images = self.test.images
            if lowpass is not None:
                parts["lowpass"] = lowpass
                images = LOWPASS[lowpass](images)
            path = fidelity_cache_root() / "predictions" / f"test-{content_key(parts)}.json"
            pred = cached_json(path, lambda: {**parts, "pred": self.classify(images).tolist()})["pred"]
            self._real[memo] = torch.tensor(pred, dtype=torch.int64)
        return self._real[memo]

    def memo(self, key: str, compute: Callable[[], object]):
        """``compute()`` once per evaluation under ``key`` (e.g. the train faces' power spectrum)."""
        if key not in self._real:
            self._real[key] = compute()
        return self._real[key]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluator penultimate features of uint8 images, float32 N x feat_dim."""
        return self.evaluator.features_and_logits(images)[0]

    # -- reference data ----------------------------------------------------------------------
    def ref_name(self, split: str, n: int, extractor: str, sha: str, selection: str = "all") -> str:
        """torch-fidelity cache name of real features of this data (see :func:`reference_cache_name`)."""
        return reference_cache_name(self.data.content_sha256(), split, self.data.label_set, extractor, sha, n, selection)

    def fidelity_kw(self, spec) -> dict:
        """The extractor keywords of :func:`~exprbench.metrics.families.fidelity.fidelity_scores` for ``spec``."""
        return dict(extractor=spec.extractor, evaluator_weights=self.evaluator_weights,
                    inception_weights=self.inception_weights, device=self.device, progress=self.fidelity_progress)

    def fidelity_feats(self, spec, images: torch.Tensor, cache_name: str | None, role: str) -> torch.Tensor:
        """torch-fidelity's features of ``images`` in ``spec``'s extractor (cached under ``cache_name``)."""
        return fidelity_features(images, cache_name, spec.extractor, self.evaluator_weights, self.inception_weights,
                                 self.device, progress=self.fidelity_progress, role=role)

    def train_ref_name(self, spec, sha: str) -> str:
        """Cache name of the full train split's features in ``spec``'s extractor, with a note when they are not
        cached yet (whoever reads them next extracts them, once per cache)."""
        name = self.ref_name("train", len(self.train), spec.extractor, sha)
        if not is_cached(name):
            self.note(f"train features, one-time, {len(self.train):,} images")
        return name

    def train_features(self, spec, sha: str) -> torch.Tensor:
        """Features of the full train split in ``spec``'s extractor, float32 N x D (extracted once per cache,
        read from it once per evaluation)."""
        name = self.train_ref_name(spec, sha)
        if ("train_feats", name) not in self._real:
            self._real[("train_feats", name)] = self.fidelity_feats(spec, self.train.images, name, "real")
        return self._real[("train_feats", name)]

    def train_subset_name(self, spec, sha: str, select: torch.Tensor, selection: str) -> str:
        """The cache name of the features of the train images ``select`` picks, made sure to be cached: their
        rows of :meth:`train_features`, so a subset reference (precision/recall's random 10k, an emotion's
        train faces) never extracts a train image twice.

        Args:
            select: bool mask over the train split or int64 indices into it; selection: how they were chosen
                (part of the cache name, e.g. ``random10000-seed0``, ``class=happy``).
        """
        n = int(select.sum()) if select.dtype == torch.bool else int(select.numel())
        name = self.ref_name("train", n, spec.extractor, sha, selection)
        if not is_cached(name):
            full = self.train_features(spec, sha)
            cache_features(full[select.cpu()], name, spec.extractor)
        return name

    def train_statistics(self, spec, ref_name: str) -> dict:
        """FID statistics (mu, sigma) of the full train split's features, as torch-fidelity computes them."""
        from torch_fidelity.metric_fid import fid_features_to_statistics

        if ref_name not in self._stats:
            self._stats[ref_name] = fid_features_to_statistics(self.fidelity_feats(spec, self.train.images, ref_name,
                                                                                   "real"))
        return self._stats[ref_name]

    def real_set(self, n: int, seed: int) -> RealSet:
        """The real images that stand in for ``n`` generated ones in a real-data reference: ``n`` random test
        (PrivateTest) faces; where the test split has fewer, PrivateTest + PublicTest (``val``), at most ``n``
        of them (all when they are fewer: the reference is then at a smaller count than the protocol's)."""
        key = ("real_set", n, seed)
        if key not in self._real:
            if n <= len(self.test) or self.val is None:
                split, imgs, labs = "test", self.test.images, self.test.labels
            else:
                split = "testval"
                imgs, labs = torch.cat([self.test.images, self.val.images]), torch.cat([self.test.labels, self.val.labels])
            self._real[key] = _draw(split, imgs, labs, n, seed)
        return self._real[key]

    def real_set_per_class(self, per: int, seed: int) -> RealSet:
        """Per class, the real images standing in for ``per`` generated ones of that class (intra-class FID's
        reference): ``per`` random test faces of the class; where it has fewer, its test + val faces, at most
        ``per``. Images in class order (labels int64)."""
        key = ("real_set_per_class", per, seed)
        if key not in self._real:
            parts = []
            for k in range(self.k):
                test_k = self.test.images[self.test.labels.cpu() == k]
                pool = test_k
                if per > len(test_k) and self.val is not None:
                    pool = torch.cat([test_k, self.val.images[self.val.labels.cpu() == k]])
                parts.append(_draw("", pool, torch.full((len(pool),), k, dtype=torch.int64), per, seed + k))
            imgs = torch.cat([p.images for p in parts])
            labs = torch.cat([p.labels for p in parts])
            counts = {name: int(len(p.images)) for name, p in zip(self.data.class_names, parts)}
            where = "test" if all(per <= int((self.test.labels == k).sum()) for k in range(self.k)) else "testval"
            self._real[key] = RealSet(where, imgs, labs, f"per-class{per}-seed{seed}", per * self.k, counts)
        return self._real[key]

    def test_duplicates(self) -> torch.Tensor:
        """bool mask of the test images that are exact pixel copies of a train image (memoized)."""
        if "test_dups" not in self._real:
            self._real["test_dups"] = duplicate_mask(self.test.images, self.train.images)
        return self._real["test_dups"]

    def pr_reference(self, n: int) -> tuple[torch.Tensor, str, torch.Tensor]:
        """A fixed random subset of ``min(n, len(train))`` train images (seed 0) for precision/recall: its
        uint8 images, selection label and int64 indices into the train split."""
        m = min(n, len(self.train))
        idx = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(0))[:m]
        return self.train.images[idx], f"random{m}-seed0", idx
