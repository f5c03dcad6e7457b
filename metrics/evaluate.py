"""``evaluate_run``: run the metric protocols on a trained run and write ``eval.json``.

For each protocol (see :mod:`exprbench.metrics.registry`) it generates the protocol's images with
the protocol's seed (quantized with :func:`exprbench.data.to_uint8`, exactly like the real data),
computes the metric, and records it with the protocol: sample count, seed, feature extractor and its
weights sha256, wall time. Every protocol also gets a real-data *floor* computed the same way with
real images in place of generated ones (FID/KID/PR/intra-FID of the test split against the train
reference, the evaluator's accuracy on real test images, CAS's real-data baseline), so every number
has a scale.

Capability protocols (``enc_acc``, ``probe``, ``recon_l1``, ``translate_acc``, ``translate_fid``; see
:mod:`exprbench.metrics.capability`) feed a fixed random subset of real test images to the model's
encoder or translator instead of generating. Their floors: ``enc_acc`` and ``translate_acc`` get the
evaluator's accuracy on real test images (as ``acc_gen``); ``probe``, ``recon_l1`` and ``translate_fid``
have no meaningful real-data counterpart and record an ``unavailable`` floor with the reason.

Generated sets are shared between protocols with the same (seed, count, label draw): fid10k_train,
kid10k_train and pr10k_train use one set and extract its features once.

``eval.json`` is merged, never replaced (:func:`merge_eval`): a re-run protocol replaces its entry and
keeps the earlier value in the entry's ``history``; other entries stay. ``--checkpoint`` picks the
step (:func:`select_checkpoint`). A protocol skipped for the model computes nothing (no reference,
no floor). :func:`evaluate_images` scores images from any source (a folder, an .npz) with the
protocols that apply and writes the same eval.json plus ``source.json`` into a directory of its own.
Progress goes through an :class:`~exprbench.metrics.progress.EvalReporter` (silent by default).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from exprbench.data import FaceDataset, load_fer2013, to_uint8
from exprbench.errors import DataError, UserError

from .capability import (encoder_label_accuracy, linear_probe_accuracy, reconstruction_metrics, translate_all,
                         translation_fid_inputs, translation_metrics)
from .bootstrap import CI_DRAWS, CI_SEED, fid_ci, fid_infinity, kid_ci, mean_ci, stratified_fid_ci
from .classaware import (CASProtocol, accuracy_baselines, balanced_accuracy, cas_real_baseline,
                         classifier_accuracy_on_real, label_accuracy)
from .coverage import DC_NEIGHBORHOOD, density_coverage, precision_recall_ci
from .editing import balanced_subset, edit_metrics, fit_edit_directions, likelihood_metrics, strength_index
from .evaluator import load_evaluator
from .fidelity import (EXTRACTORS, ExtractorUnavailable, fidelity_cache_root, drop_generated_cache, extractor_info, fidelity_features,
                       fidelity_scores, generated_cache_name, intra_class_fid, reference_cache_name)
from .memorisation import MEM_QUANTILE, N_PAIRS, duplicate_mask, memorisation, pairs_grid
from .progress import EvalReporter
from .registry import BPD_IW_K, EDIT_FIT_PER_CLASS, PROBE_TRAIN_PER_CLASS, PROTOCOL_VERSION, Protocol, default_protocols, resolve_protocol

PR_REFERENCE_SIZE = 10000  # precision/recall compare equal-sized sets (Kynkäänniemi et al. 2019)
CAS = CASProtocol()


def resolve_eval_data_path(data, cfg_path) -> str:
    """Dataset path for an evaluation: ``data``, else the run's ``data.path``, else ``$EXPRBENCH_DATA``.

    Raises:
        DataError: an explicit path that does not exist, or none of the candidates exists.
    """
    if data is not None:
        if not Path(data).expanduser().exists():
            raise DataError(f"dataset not found: {data}")
        return str(data)
    tried = []
    for cand in (cfg_path, os.environ.get("EXPRBENCH_DATA") or None):
        if cand:
            tried.append(str(cand))
            if Path(cand).expanduser().exists():
                return str(cand)
    raise DataError("no dataset for the evaluation: pass --data PATH or set EXPRBENCH_DATA"
                    + (f" (not found: {', '.join(tried)})" if tried else ""))


class _Context:
    """Everything the protocols of one evaluation share: model, data, evaluator, generated sets."""

    def __init__(self, model, data: FaceDataset, device: torch.device, evaluator_weights, inception_weights,
                 reporter: EvalReporter | None = None) -> None:
        self.model, self.data, self.device = model, data, device
        self.evaluator_weights, self.inception_weights = evaluator_weights, inception_weights
        self.evaluator = load_evaluator(evaluator_weights, device)
        self.train, self.test = data.split("train"), data.split("test")
        self.k = len(data.class_names)
        self.conditional = "conditional" in model.capabilities
        self._gen: dict = {}
        self._real: dict = {}
        self.gen_cache_names: set[str] = set()
        self.reporter = reporter or EvalReporter()
        self.image_words = "generated images"  # what the protocols' images are, for the start lines
        self.at = (0, 0, "")  # (index, total, protocol name) of the protocol running, for the reporter
        self.out_dir: Path | None = None  # where figure inputs go (RUN/figures_input/); None: not written
        self.ci_draws = CI_DRAWS  # bootstrap draws of the intervals; 0: no intervals (training curves)
        self._stats: dict = {}

    # -- what is said while it runs ------------------------------------------------------------
    def note(self, text: str) -> None:
        """A line about the current protocol (a one-time computation, a phase)."""
        self.reporter.note(*self.at, text)

    def bar(self, desc: str, total: int):
        """A progress bar of the current protocol: context manager yielding ``advance(n)``."""
        return self.reporter.bar(f"{self.at[2]}: {desc}" if self.at[2] else desc, total)

    def fidelity_progress(self, role: str, total: int):
        """The ``progress`` of :func:`~exprbench.metrics.fidelity.fidelity_scores`: a bar per feature extraction."""
        return self.bar(f"features of {total:,} {role} images", total)

    def skip_reason(self, p: Protocol) -> str | None:
        """Why ``p`` cannot run here (a capability the model lacks), or None."""
        missing = sorted(p.needs - set(self.model.capabilities))
        if missing:
            return f"model {self.model.name!r} lacks capability {', '.join(missing)}"
        return None

    # -- generation --------------------------------------------------------------------------
    def generate(self, n: int, seed: int, per_class: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 n x 1 x 48 x 48 generated images and their labels (None for unconditional models).

        ``per_class``: n // K images per class in class order; otherwise labels drawn from the train
        split's class distribution (the reference distribution) with ``seed``.
        """
        key = (n, seed, per_class)
        if key in self._gen:
            return self._gen[key]
        g = torch.Generator().manual_seed(seed)
        if per_class:
            labels = torch.arange(self.k).repeat_interleave(n // self.k)
        elif self.conditional:
            freq = torch.bincount(self.train.labels.cpu(), minlength=self.k).double()
            labels = torch.multinomial(freq / freq.sum(), n, replacement=True, generator=g)
        else:
            labels = None
        out = []
        bs = 500
        total = len(labels) if labels is not None else n
        with self.bar(f"generating {total:,} images", total) as advance:
            for i in range(0, total, bs):
                m = min(bs, total - i)
                lab = labels[i : i + m] if labels is not None else None
                x = self.model.sample(m, labels=lab, generator=g)
                out.append(to_uint8(x).cpu())
                advance(m)
        images = torch.cat(out)
        if images.shape[1:] != (1, 48, 48):
            raise UserError(f"model generated images of shape {tuple(images.shape[1:])}, expected 1 x 48 x 48")
        self._gen[key] = (images, labels)
        return images, labels

    # -- real inputs of the capability protocols ---------------------------------------------
    def test_subset(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random subset of ``min(n, len(test))`` real test images (uint8 m x 1 x 48 x 48) and
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
        key = ("probe", per_class, seed)
        if key not in self._real:
            idx = balanced_subset(self.train.labels, self.k, per_class, seed)
            self._real[key] = (self.train.images[idx], self.train.labels[idx])
        return self._real[key]

    def translations(self, n: int, seed: int):
        """:class:`~exprbench.metrics.capability.Translations` of :meth:`test_subset` ``(n, seed)`` to all K
        classes (memoized: ``translate_acc`` and ``translate_fid`` of one count share them)."""
        key = ("translate", n, seed)
        if key not in self._real:
            imgs, labs = self.test_subset(n, seed)
            with torch.no_grad():
                self._real[key] = translate_all(self.model, imgs, labs)
        return self._real[key]

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluator labels (hflip TTA, as acc_gen) of uint8 images, int64 indices into the data's classes."""
        return self.evaluator.predict(images, self.data.class_names)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluator penultimate features of uint8 images, float32 N x feat_dim."""
        return self.evaluator.features_and_logits(images)[0]

    # -- reference data ----------------------------------------------------------------------
    def ref_name(self, split: str, n: int, extractor: str, sha: str, selection: str = "all") -> str:
        return reference_cache_name(self.data.fingerprint, split, self.data.label_set, extractor, sha, n, selection)

    def fidelity_feats(self, p: Protocol, images: torch.Tensor, cache_name: str | None, role: str) -> torch.Tensor:
        """torch-fidelity's features of ``images`` in ``p``'s extractor (cached under ``cache_name``)."""
        return fidelity_features(images, cache_name, p.extractor, self.evaluator_weights, self.inception_weights,
                                 self.device, progress=self.fidelity_progress, role=role)

    def train_statistics(self, p: Protocol, ref_name: str) -> dict:
        """FID statistics (mu, sigma) of the full train split's features, as torch-fidelity computes them."""
        from torch_fidelity.metric_fid import fid_features_to_statistics

        if ref_name not in self._stats:
            self._stats[ref_name] = fid_features_to_statistics(self.fidelity_feats(p, self.train.images, ref_name, "real"))
        return self._stats[ref_name]

    def test_duplicates(self) -> torch.Tensor:
        """bool mask of the test images that are exact pixel copies of a train image (memoized)."""
        if "test_dups" not in self._real:
            self._real["test_dups"] = duplicate_mask(self.test.images, self.train.images)
        return self._real["test_dups"]

    def pr_reference(self, n: int) -> tuple[torch.Tensor, str]:
        """A fixed random subset of ``min(n, len(train))`` train images (seed 0) for precision/recall."""
        m = min(n, len(self.train))
        idx = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(0))[:m]
        return self.train.images[idx], f"random{m}-seed0"


def _entry(p: Protocol, status: str, value=None, **extra) -> dict:
    e = {"value": value, "status": status, "n_samples": p.n_samples, "seed": p.seed, "extractor": p.extractor,
         "extractor_sha256": None, "wall_s": 0.0}
    e.update(extra)
    return e


def _fidelity_kw(ctx: _Context, p: Protocol) -> dict:
    return dict(extractor=p.extractor, evaluator_weights=ctx.evaluator_weights,
                inception_weights=ctx.inception_weights, device=ctx.device, progress=ctx.fidelity_progress)


def _cached(name: str | None) -> bool:
    """Whether torch-fidelity's cache holds features or statistics under ``name``."""
    return name is not None and any(fidelity_cache_root().glob(f"{name}-*.pt"))


def _run_fidelity(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """FID / KID / PR of generated (or, for the floor, real test) images against the train reference."""
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    kw = _fidelity_kw(ctx, p)
    if real_role:
        cand, n_c = ctx.test.images, len(ctx.test)
        test_name = ctx.ref_name("test", n_c, p.extractor, sha)
        if not _cached(test_name):
            ctx.note(f"real test features for the real-data value, one-time, {n_c:,} images")
    else:
        cand, _ = ctx.generate(p.n_samples, p.seed, per_class=False)
        n_c = cand.shape[0]
        ctx.gen_cache_names.add(generated_cache_name(cand, p.extractor, sha))
        test_name = None
    if p.family == "pr":
        ref, sel = ctx.pr_reference(PR_REFERENCE_SIZE)
        ref_name = ctx.ref_name("train", ref.shape[0], p.extractor, sha, sel)
        metrics = ("prc",)
        if not _cached(ref_name):
            ctx.note(f"train reference features (random {ref.shape[0]:,} of train, seed 0), one-time, "
                     f"{ref.shape[0]:,} images")
    else:
        ref, ref_name = ctx.train.images, ctx.ref_name("train", len(ctx.train), p.extractor, sha)
        metrics = ("fid",) if p.family == "fid" else ("kid",)
        if not _cached(ref_name):
            ctx.note(f"train reference {'statistics' if p.family == 'fid' else 'features'}, one-time, "
                     f"{ref.shape[0]:,} images")
    gen_cache = test_name if real_role else True  # real test features are cached like a reference
    res = fidelity_scores(cand, ref, metrics, real_cache_name=ref_name, generated_cache=gen_cache, seed=2020, **kw)
    out = {"n_samples": n_c, "extractor_sha256": sha}
    if p.family == "fid":
        out.update(value=res["fid"], details={"n_real": res["n_real"]})
    elif p.family == "kid":
        out.update(value=res["kid_mean"], std=res["kid_std"],
                   details={"n_real": res["n_real"], "kid_subset_size": res["kid_subset_size"], "kid_subsets": 100})
    else:
        out.update(value=res["f_score"], details={"precision": res["precision"], "recall": res["recall"],
                                                  "f_score": res["f_score"], "k": 3, "n_real": res["n_real"]})
    if ctx.ci_draws:  # intervals (and FID at infinite N) from the features torch-fidelity cached
        gen_feats = ctx.fidelity_feats(p, cand, test_name if real_role else generated_cache_name(cand, p.extractor, sha),
                                       "generated")
        if p.family == "fid":
            stats = ctx.train_statistics(p, ref_name)
            out.update(fid_ci(gen_feats, stats, res["fid"], ctx.ci_draws, CI_SEED))
            out["details"].update(fid_infinity(gen_feats, stats), fid_inf_note=(
                "linear fit of FID at N, N/2, N/4 (nested random subsets) in 1/N (Chong & Forsyth 2020)"))
        elif p.family == "kid":
            out.update(kid_ci(gen_feats, ctx.fidelity_feats(p, ref, ref_name, "real"), res["kid_mean"],
                              ctx.ci_draws, CI_SEED))
        else:
            cis = precision_recall_ci(ctx.fidelity_feats(p, ref, ref_name, "real"), gen_feats, res, k=3,
                                      draws=ctx.ci_draws, seed=CI_SEED)
            out.update(cis["f_score"])
            out["details"].update(precision_ci95=cis["precision"]["ci95"], recall_ci95=cis["recall"]["ci95"],
                                  ci_note="k-NN radii of the full sets kept fixed over the draws")
    return out


def _scored_set(p: Protocol, ctx: _Context, real_role: bool, sha: str) -> tuple[torch.Tensor, str]:
    """The images a feature-space protocol scores and their features' cache name: the generated set of
    ``(n, seed)`` (shared with fid/kid/pr, dropped after the evaluation), or the real test split for the
    real-data value (cached like a reference)."""
    if real_role:
        return ctx.test.images, ctx.ref_name("test", len(ctx.test), p.extractor, sha)
    cand, _ = ctx.generate(p.n_samples, p.seed, per_class=False)
    name = generated_cache_name(cand, p.extractor, sha)
    ctx.gen_cache_names.add(name)
    return cand, name


def _run_dc(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Density and coverage (Naeem et al. 2020, k=5) against the precision/recall reference (10k train
    images, seed 0); value = coverage (bounded in [0, 1], falls when modes are dropped; density, which is
    unbounded and rewards crowding dense regions, goes to details)."""
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    cand, cand_name = _scored_set(p, ctx, real_role, sha)
    ref, sel = ctx.pr_reference(PR_REFERENCE_SIZE)
    ref_name = ctx.ref_name("train", ref.shape[0], p.extractor, sha, sel)
    if not _cached(ref_name):
        ctx.note(f"train reference features (random {ref.shape[0]:,} of train, seed 0), one-time")
    rf = ctx.fidelity_feats(p, ref, ref_name, "real")
    gf = ctx.fidelity_feats(p, cand, cand_name, "generated")
    res = density_coverage(rf, gf, DC_NEIGHBORHOOD, ci_draws=ctx.ci_draws, ci_seed=CI_SEED)
    out = {"value": res["coverage"], "n_samples": int(cand.shape[0]), "extractor_sha256": sha,
           "details": {"density": res["density"], "coverage": res["coverage"], "k": res["k"], "n_real": res["n_real"],
                       "reference": f"train, {sel}"}}
    if ctx.ci_draws:
        out.update(res["coverage_ci"])
        out["details"].update(density_ci95=res["density_ci"]["ci95"], coverage_ci95=res["coverage_ci"]["ci95"])
    return out


def _run_mem(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Memorisation (see :mod:`exprbench.metrics.memorisation`) in ``p``'s feature space: the fraction of
    scored images nearer their nearest train face than the 5th percentile of test-to-train distances.
    For generated images, the 16 closest (sample, train face) pairs are written to
    ``RUN/figures_input/<protocol>_pairs.npy`` (uint8 16 x 2 x 48 x 48: sample, neighbour) and
    ``..._pairs.png`` (4 pairs per row) when the evaluation has a directory."""
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    cand, cand_name = _scored_set(p, ctx, real_role, sha)
    train_name = ctx.ref_name("train", len(ctx.train), p.extractor, sha)
    test_name = ctx.ref_name("test", len(ctx.test), p.extractor, sha)
    if not _cached(train_name):
        ctx.note(f"train features, one-time, {len(ctx.train):,} images")
    tr = ctx.fidelity_feats(p, ctx.train.images, train_name, "real")
    te = ctx.fidelity_feats(p, ctx.test.images, test_name, "real")
    dup = ctx.test_duplicates()
    gf = te[~dup] if real_role else ctx.fidelity_feats(p, cand, cand_name, "generated")
    res = memorisation(gf, tr, te, MEM_QUANTILE, N_PAIRS, ci_draws=ctx.ci_draws, ci_seed=CI_SEED, test_exclude=dup)
    details = {k: v for k, v in res.items() if k not in ("fraction", "fraction_ci")}
    details["test_excluded_note"] = ("test faces that are exact pixel copies of a train face are left out of the "
                                     "threshold (and of the real-data value)")
    details["feature_space"] = p.extractor
    details["pairs_axes"] = ("sample = index into the scored set (the generated images in order of generation; for "
                             "the real-data value the test faces that are not copies of a train face), "
                             "train_index = index into the train split")
    if not real_role and ctx.out_dir is not None and res["closest_pairs"]:
        details["pairs_files"] = _write_pairs(ctx, p, cand, res["closest_pairs"])
    return {"value": res["fraction"], "n_samples": res["n_generated"], "extractor_sha256": sha,
            **res.get("fraction_ci", {}), "details": details}


def _write_pairs(ctx: _Context, p: Protocol, cand: torch.Tensor, pairs: list[dict]) -> dict:
    """Write the closest pairs as .npy (P x 2 x 48 x 48 uint8) and .png into ``out_dir/figures_input``;
    returns their paths relative to the directory."""
    import io as _io

    import numpy as np
    from PIL import Image

    from exprbench.io import atomic_open

    s = cand[[q["sample"] for q in pairs]]
    nb = ctx.train.images[[q["train_index"] for q in pairs]]
    arr = torch.stack([s, nb], 1)[:, :, 0].numpy().astype(np.uint8)
    rel = {"npy": f"figures_input/{p.name}_pairs.npy", "png": f"figures_input/{p.name}_pairs.png"}
    buf = _io.BytesIO()
    np.save(buf, arr)
    with atomic_open(ctx.out_dir / rel["npy"], "wb") as fh:
        fh.write(buf.getvalue())
    buf = _io.BytesIO()
    Image.fromarray(pairs_grid(s, nb)).save(buf, format="PNG")
    with atomic_open(ctx.out_dir / rel["png"], "wb") as fh:
        fh.write(buf.getvalue())
    return rel


def _run_ifid(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    names = ctx.data.class_names
    counts = [int((ctx.train.labels == k).sum()) for k in range(len(names))]
    ref_names = [ctx.ref_name("train", c, p.extractor, sha, f"class={n}") for c, n in zip(counts, names)]
    missing = [c for c, r in zip(counts, ref_names) if not _cached(r)]
    if missing:
        ctx.note(f"per-emotion train reference statistics, one-time, {len(missing)} emotions, {sum(missing):,} images")
    if real_role:
        imgs, labs = ctx.test.images, ctx.test.labels
    else:
        imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = intra_class_fid(imgs, labs, ctx.train.images, ctx.train.labels, names, real_cache_names=ref_names,
                          **_fidelity_kw(ctx, p))
    from torch_fidelity.metric_fid import fid_features_to_statistics

    if real_role:
        feat_name = ctx.ref_name("test", len(ctx.test), p.extractor, sha)
    else:
        feat_name = generated_cache_name(imgs, p.extractor, sha)
        ctx.gen_cache_names.add(feat_name)
    ci = {}
    if ctx.ci_draws:
        feats = ctx.fidelity_feats(p, imgs, feat_name, "generated")
        gl, tl = labs.cpu(), ctx.train.labels.cpu()
        ci = stratified_fid_ci([feats[gl == k] for k in range(len(names))],
                               [fid_features_to_statistics(ctx.fidelity_feats(p, ctx.train.images[tl == k], ref_names[k],
                                                                              "real")) for k in range(len(names))],
                               res["mean"], ctx.ci_draws, CI_SEED)
    return {"value": res["mean"], "n_samples": int(imgs.shape[0]), "extractor_sha256": sha, **ci,
            "details": {"per_class": res["per_class"], "n_generated_per_class" if not real_role else "n_test_per_class":
                        res["n_generated"], "n_real_per_class": res["n_real"]}}


def _run_acc(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    if real_role:
        imgs, labs = ctx.test.images, ctx.test.labels
    else:
        imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = label_accuracy(ctx.evaluator, imgs, labs, ctx.data.class_names)
    base = accuracy_baselines(ctx.train.labels, labs, ctx.data.class_names)
    return {"value": res["value"], "n_samples": res["n"], "extractor_sha256": ctx.evaluator.sha256,
            **(mean_ci(res["correct"], ctx.ci_draws, CI_SEED, "test images" if real_role else "generated samples")
               if ctx.ci_draws else {}),
            "details": {"per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        "class_names": list(ctx.data.class_names), "tta": "hflip",
                        "balanced_acc": res["balanced_acc"], **base}}


def _cas_sha() -> str:
    import hashlib

    return hashlib.sha256(json.dumps(asdict(CAS), sort_keys=True).encode()).hexdigest()


def _run_cas(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    per_class = max(p.n_samples // ctx.k, 1)
    if not real_role:
        ctx.note(f"training a fresh classifier on {per_class * ctx.k:,} images ({CAS.epochs} epochs); its real-data "
                 "baseline (the recipe on as many real train images) is trained once, then cached")
    base = cas_real_baseline(ctx.data, per_class, CAS, ctx.device)
    common = {"extractor_sha256": _cas_sha()}
    trivial = accuracy_baselines(ctx.train.labels, ctx.test.labels, ctx.data.class_names)
    over = "test images (the classifier is fixed; resampling its training set would retrain it)"
    if real_role:
        ci = mean_ci(base["correct"], ctx.ci_draws, CI_SEED, over) if base.get("correct") and ctx.ci_draws else {}
        return {"value": base["value"], "n_samples": base["n_train"], **common, **ci,
                "details": {"per_class": base["per_class"], "confusion_matrix": base["confusion_matrix"],
                            "protocol": asdict(CAS), "train": "real train images, class-balanced",
                            "balanced_acc": balanced_accuracy(base["per_class"]), **trivial}}
    imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = classifier_accuracy_on_real(imgs, labs, ctx.test, CAS, ctx.device)
    ratio = res["value"] / base["value"] if base["value"] > 0 else None
    ci = mean_ci(res["correct"], ctx.ci_draws, CI_SEED, over) if ctx.ci_draws else {}
    return {"value": res["value"], "n_samples": res["n_train"], **common, **ci,
            "details": {"ratio_to_real": ratio, "real_baseline": base["value"], "per_class": res["per_class"],
                        "confusion_matrix": res["confusion_matrix"], "protocol": asdict(CAS),
                        "n_test": res["n_test"], "train_seconds": res["train_seconds"],
                        "balanced_acc": res["balanced_acc"],
                        "real_baseline_balanced_acc": balanced_accuracy(base["per_class"]), **trivial}}


# -- capability protocols (real test images through the model's encoder / translator) ----------
NO_FLOOR = {
    "probe": "no real-data floor: the probe measures the model's own encoder features",
    "recon_l1": "no real-data floor: reconstructing real x by itself would give L1 = 0",
    "translate_fid": "no meaningful real-data floor: real faces of the source emotion are not translations",
    "bpd": "no real-data floor: bits/dim is the model's own density of real images",
}


def _evaluator_floor(p: Protocol, ctx: _Context) -> dict:
    """The evaluator's accuracy on all real test images (the acc_gen floor), recorded with its extractor."""
    out = _run_acc(p, ctx, real_role=True)
    out["extractor"] = "fer-evaluator"
    return out


def _run_enc_acc(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Encoder label accuracy: argmax E_c(x) vs the true label on ``min(n, len(test))`` real test images."""
    if real_role:
        return _evaluator_floor(p, ctx)
    imgs, labs = ctx.test_subset(p.n_samples, p.seed)
    with torch.no_grad():
        res = encoder_label_accuracy(ctx.model, imgs, labs)
    return {"value": res["value"], "n_samples": res["n"],
            "details": {"per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        "class_names": list(ctx.data.class_names), "split": "test (PrivateTest)"}}


def _run_probe(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Linear probe on E(x): logistic regression fit on the fixed class-balanced train subset, test accuracy."""
    tr_imgs, tr_labs = ctx.probe_train(PROBE_TRAIN_PER_CLASS, p.seed)
    te_imgs, te_labs = ctx.test_subset(p.n_samples, p.seed)
    with torch.no_grad():
        res = linear_probe_accuracy(ctx.model, tr_imgs, tr_labs, te_imgs, te_labs)
    return {"value": res["value"], "n_samples": res["n_test"],
            "details": {"train_accuracy": res["train_accuracy"], "per_class": res["per_class"],
                        "n_train": res["n_train"], "train_per_class": PROBE_TRAIN_PER_CLASS, "z_dim": res["z_dim"],
                        "classifier": "sklearn LogisticRegression(C=1, lbfgs, max_iter=2000) on standardized z"}}


def _run_recon(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Mean L1 ([0, 1] scale) and SSIM of x vs G(E(x)) (the model's own c for conditional models)."""
    imgs, _ = ctx.test_subset(p.n_samples, p.seed)
    with torch.no_grad():
        res = reconstruction_metrics(ctx.model, imgs, labels=None, classifier=ctx.classify)
    return {"value": res["l1"], "n_samples": res["n"], "extractor_sha256": ctx.evaluator.sha256,
            "details": {"l1": res["l1"], "ssim": res["ssim"], "label_agreement": res["label_agreement"],
                        "c": "the encoder's own prediction (conditional models)", "scale": "[0, 1] pixels"}}


def _run_translate_acc(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Evaluator target accuracy of test faces translated to every other emotion, pair matrix, identity."""
    if real_role:
        return _evaluator_floor(p, ctx)
    tr = ctx.translations(p.n_samples, p.seed)
    res = translation_metrics(tr, ctx.classify, ctx.features)
    details = {k: v for k, v in res.items() if k != "target_accuracy"}
    details.update(class_names=list(ctx.data.class_names), n_sources=int(tr.source.shape[0]), tta="hflip",
                   pair_matrix_axes="rows = source class, columns = target class (None: target == source)")
    return {"value": res["target_accuracy"], "n_samples": int(tr.source.shape[0]),
            "extractor_sha256": ctx.evaluator.sha256, "details": details}


def _run_translate_fid(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Per target emotion k: FID of the translations to k (sources of other classes) vs the train images of
    k (fer-evaluator features, per-class references cached as ifid's); value = mean over targets with
    at least 2 images on both sides (the others are listed in ``details.targets_left_out``)."""
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    tr = ctx.translations(p.n_samples, p.seed)
    sets = translation_fid_inputs(tr, ctx.train.images, ctx.train.labels)
    per, n_tr, n_real, left = {}, {}, {}, []
    todo = [real.shape[0] for name, (gen, real) in sets["per_target"].items() if gen.shape[0] >= 2 and real.shape[0] >= 2
            and not _cached(ctx.ref_name("train", real.shape[0], p.extractor, sha, f"class={name}"))]
    if todo:
        ctx.note(f"per-emotion train reference statistics, one-time, {len(todo)} emotions, {sum(todo):,} images")
    for k, name in enumerate(ctx.data.class_names):
        gen, real = sets["per_target"][name]
        if gen.shape[0] < 2 or real.shape[0] < 2:
            left.append(name)
            continue
        ref = ctx.ref_name("train", real.shape[0], p.extractor, sha, f"class={name}")
        per[name] = fidelity_scores(gen, real, ("fid",), real_cache_name=ref, **_fidelity_kw(ctx, p))["fid"]
        n_tr[name], n_real[name] = int(gen.shape[0]), int(real.shape[0])
    if not per:
        return {"value": None, "status": "unavailable", "n_samples": int(tr.source.shape[0]), "extractor_sha256": sha,
                "reason": "no target emotion has 2 translations and 2 train images"}
    return {"value": sum(per.values()) / len(per), "n_samples": int(tr.source.shape[0]), "extractor_sha256": sha,
            "details": {"per_target": per, "n_translated_per_target": n_tr, "n_real_per_target": n_real,
                        "targets_left_out": left, "aggregate": "mean over target emotions of per-target FID",
                        "reference": "train images of the target emotion"}}


def _run_edit(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Edit n sampled latents toward every emotion over the model's strength sweep (see
    :mod:`exprbench.metrics.editing`); value = success at the reference strength, mean over emotions.
    Attribute-vector models first fit their vectors on a fixed class-balanced train subset."""
    if real_role:
        return _evaluator_floor(p, ctx)
    model = ctx.model
    g = torch.Generator().manual_seed(p.seed)
    fit_edit_directions(model, ctx.train.images, ctx.train.labels, seed=p.seed)
    with torch.no_grad():
        z = model.edit_start(p.n_samples, generator=g)
        res = edit_metrics(model, z, lambda im: ctx.evaluator.probs(im, ctx.data.class_names), ctx.features)
    ref = float(model.edit_reference_strength)
    i = strength_index(res["strengths"], ref)
    summary = {key: res[f"{key}_mean"][i] for key in ("success", "l1", "ssim", "feat_dist", "entanglement")}
    per_target = {name: vals[i] for name, vals in res["success"].items()}
    return {"value": summary["success"], "n_samples": p.n_samples, "extractor_sha256": ctx.evaluator.sha256,
            "details": {"reference_strength": ref, "edit_mode": model.edit_mode, "at_reference": summary,
                        "identity_l1": summary["l1"], "identity_ssim": summary["ssim"],
                        "feature_distance": summary["feat_dist"], "entanglement": summary["entanglement"],
                        "per_target": per_target, "sweep": res,
                        "start": "model.edit_start (sampled latents)", "tta": "hflip",
                        "fit": f"edit_fit on <= {EDIT_FIT_PER_CLASS}/class train images (attribute-vector models)"}}


def _run_bpd(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """Mean bits/dim of real test images (exact for flows, ELBO for VAEs) plus the IWAE bound where available."""
    imgs, labs = ctx.test_subset(p.n_samples, p.seed)
    res = likelihood_metrics(ctx.model, imgs, labs, iw_k=BPD_IW_K, seed=p.seed)
    kind = "exact" if res["exact"] else "bound (negative ELBO)"
    return {"value": res["bpd"], "n_samples": res["n"],
            "details": {"kind": kind, "exact": res["exact"], "bpd_std_over_images": res["bpd_std"],
                        "iw_bpd": res["iw_bpd"], "iw_k": res["iw_k"], "split": "test (PrivateTest)",
                        "units": "bits per dimension (C x H x W), 8-bit discrete pixel values"}}


_FAMILY = {"fid": _run_fidelity, "kid": _run_fidelity, "pr": _run_fidelity, "dc": _run_dc, "mem": _run_mem,
           "ifid": _run_ifid,
           "acc_gen": _run_acc, "cas": _run_cas, "enc_acc": _run_enc_acc, "probe": _run_probe,
           "recon_l1": _run_recon, "translate_acc": _run_translate_acc, "translate_fid": _run_translate_fid, "edit": _run_edit, "bpd": _run_bpd}


def _run_protocol(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    t0 = time.perf_counter()
    reason = None if real_role else ctx.skip_reason(p)
    if reason:
        return _entry(p, "skipped", reason=reason)
    if real_role and p.family in NO_FLOOR:
        return _entry(p, "unavailable", reason=NO_FLOOR[p.family])
    try:
        res = _FAMILY[p.family](p, ctx, real_role)
    except ExtractorUnavailable as e:
        return _entry(p, "unavailable", reason=str(e))
    e = _entry(p, res.pop("status", "ok"))
    e.update(res)
    e["wall_s"] = round(time.perf_counter() - t0, 3)
    return e


FLOOR_SCHEMA = 2  # 2: floors carry ci95, balanced accuracy and the trivial baselines (issue 12)


def _floor_key(p: Protocol, ctx: _Context) -> str:
    """Content hash of everything a real-data floor depends on (never the model)."""
    import hashlib

    if p.family == "cas":
        sha = _cas_sha()
    elif p.extractor in EXTRACTORS:
        _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    else:  # e.g. model-encoder: the floor is the evaluator's
        sha = ctx.evaluator.sha256
    parts = {"protocol_version": PROTOCOL_VERSION, "floor_schema": FLOOR_SCHEMA, "protocol": asdict(p), "data": ctx.data.fingerprint,
             "label_set": ctx.data.label_set, "evaluator": ctx.evaluator.sha256, "extractor_sha256": sha}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=sorted).encode()).hexdigest()[:24]


def _floor(p: Protocol, ctx: _Context) -> dict:
    """The real-data floor of ``p``, computed once per content hash and cached as JSON.

    Floors do not depend on the model, so every run of a suite shares them; the cache file's name is
    a hash of the protocol definition, data fingerprint, label set, evaluator and extractor weights.
    """
    from exprbench.io import write_json

    if p.family in NO_FLOOR:  # nothing to compute, nothing to cache
        return _run_protocol(p, ctx, real_role=True)
    try:
        path = fidelity_cache_root() / "floors" / f"{p.name}-{_floor_key(p, ctx)}.json"
    except ExtractorUnavailable:  # e.g. no Inception weights: the protocol reports itself unavailable
        return _run_protocol(p, ctx, real_role=True)
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            path.unlink(missing_ok=True)
    ctx.note("real-data value (real FER2013 images in place of generated), one-time, then cached")
    entry = _run_protocol(p, ctx, real_role=True)
    if entry["status"] == "ok":
        write_json(path, entry)
    return entry


# -- what each protocol computes, in words (the start line) ------------------------------------
_WORDS = {"fid": "FID", "kid": "KID", "pr": "precision/recall", "dc": "density/coverage (k=5)",
          "mem": "memorisation (nearest train face)"}
PER_CLASS_FAMILIES = ("ifid", "acc_gen", "cas")
SAMPLE_FAMILIES = ("fid", "kid", "pr", "dc", "mem") + PER_CLASS_FAMILIES


def _what(p: Protocol, ctx: _Context) -> str:
    """One phrase for the start line of ``p``: what it computes on how many images."""
    src = ctx.image_words
    per = p.n_samples // ctx.k
    if p.family in _WORDS:
        ref = (f"{min(PR_REFERENCE_SIZE, len(ctx.train)):,} train images" if p.family in ("pr", "dc")
               else "the train split")
        return f"{_WORDS[p.family]} of {p.n_samples:,} {src} vs {ref} ({p.extractor}, seed {p.seed})"
    if p.family == "ifid":
        return f"intra-class FID, {per:,} {src} per emotion vs that emotion's train images (seed {p.seed})"
    if p.family == "acc_gen":
        return f"evaluator label accuracy on {per:,} {src} per emotion (seed {p.seed})"
    if p.family == "cas":
        return f"CAS: a fresh classifier trained on {per * ctx.k:,} {src}, tested on real test images (seed {p.seed})"
    head = p.summary.split(":")[0] if p.summary else p.family
    return f"{head} ({p.n_samples:,} images, seed {p.seed})"


def _floor_not_run(p: Protocol) -> dict:
    """The floor entry of a skipped protocol: nothing is computed for it."""
    if p.family in NO_FLOOR:
        return _entry(p, "unavailable", reason=NO_FLOOR[p.family])
    return _entry(p, "skipped", reason="not computed: the protocol is skipped here")


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_all(protos: Sequence[Protocol], ctx: _Context, stamp: dict) -> tuple[dict, dict]:
    """Run ``protos`` (model value, then real-data floor) with the reporter's lines; entries get ``stamp``.

    A protocol that is skipped here computes nothing: neither its references nor its floor.
    """
    rep = ctx.reporter
    results, floors = {}, {}
    total = len(protos)
    torch.manual_seed(0)
    try:
        for i, p in enumerate(protos, 1):
            ctx.at = (i, total, p.name)
            t0 = time.perf_counter()
            if ctx.skip_reason(p) is None:
                rep.protocol_start(i, total, p.name, _what(p, ctx))
            entry = _run_protocol(p, ctx, real_role=False)
            floor = _floor_not_run(p) if entry["status"] == "skipped" else _floor(p, ctx)
            entry.update(stamp)
            results[p.name], floors[p.name] = entry, floor
            rep.protocol_end(i, total, p.name, entry, floor, time.perf_counter() - t0)
    finally:
        ctx.at = (0, 0, "")
        drop_generated_cache(ctx.gen_cache_names)
    return results, floors


# -- which checkpoint ---------------------------------------------------------------------------
def checkpoint_steps(run_dir: str | os.PathLike) -> dict[int, Path]:
    """``{step: path}`` of a run's checkpoints (``checkpoints/step_XXXXXX.pt``), oldest first."""
    from exprbench.harness import list_checkpoints

    out = {}
    for path in list_checkpoints(Path(run_dir)):
        try:
            out[int(path.stem.split("_", 1)[1])] = path
        except (IndexError, ValueError):
            continue
    return dict(sorted(out.items()))


def select_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int | None = "latest") -> Path:
    """The checkpoint file of ``run_dir`` to evaluate.

    Args:
        run_dir: a run directory.
        checkpoint: a step number (``4``, ``"4"``, ``"step_000004"``) or ``"latest"`` / None (the newest).

    Raises:
        UserError: no checkpoint at all; a value that is neither a step nor ``latest``; a step the run
            has no checkpoint of (the message lists the available steps).
    """
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise UserError(f"{run_dir} has no checkpoint yet (checkpoints/step_*.pt)")
    text = "latest" if checkpoint is None else str(checkpoint).strip()
    if text.lower() == "latest":
        return steps[max(steps)]
    digits = text[5:] if text.lower().startswith("step_") else text
    if not digits.isdigit():
        raise UserError(f"--checkpoint {text!r}: expected a step number or 'latest'")
    step = int(digits)
    if step not in steps:
        raise UserError(f"--checkpoint {step}: {run_dir} has no checkpoint at step {step} "
                        f"(available steps: {', '.join(map(str, steps))})")
    return steps[step]


def load_for_eval(run_dir: str | os.PathLike, checkpoint: str | int | None, device: torch.device):
    """Load a run's config and the chosen checkpoint into its plugin (eval mode), as ``load_trained`` does
    (a run with no checkpoints but published weights, ``weights.safetensors``, loads those).

    Returns:
        ``(cfg, model, spec, step, path)``.

    Raises:
        UserError: see :func:`select_checkpoint`; CheckpointError: a corrupt checkpoint.
    """
    from exprbench.data import DataSpec
    from exprbench.harness import build_model, list_checkpoints, load_checkpoint, load_run_config, load_trained
    from exprbench.weights import FILENAME

    run_dir = Path(run_dir)
    if not list_checkpoints(run_dir) and (run_dir / FILENAME).exists() and checkpoint in (None, "latest"):
        cfg, model, spec, step = load_trained(run_dir, device)  # a committed run: its published weights
        return cfg, model, spec, step, run_dir / FILENAME
    cfg = load_run_config(run_dir)
    path = select_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path, map_location=device)
    spec = DataSpec(**{**state["spec"], "class_names": tuple(state["spec"]["class_names"])})
    model = build_model(cfg, spec, device)
    model.load_state_dict(state["model"])
    model.train(False)
    return cfg, model, spec, int(state["step"]), path


# -- eval.json: merged, never replaced -----------------------------------------------------------
HISTORY_KEYS = ("value", "std", "ci95", "status", "reason", "n_samples", "seed", "extractor_sha256", "wall_s",
                "evaluated_at", "step", "commit")


def read_eval(path: str | os.PathLike) -> dict | None:
    """The eval.json at ``path``, or None when there is none.

    Raises:
        UserError: the file exists but is not valid JSON or not an eval.json (nothing is overwritten).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); move it away to evaluate again "
                        "(it is never overwritten)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; move it away to evaluate again") from None
    if not isinstance(old, dict) or not isinstance(old.get("metrics", {}), dict):
        raise UserError(f"{path}: not an eval.json (no 'metrics' object); move it away to evaluate again")
    return old


def _snapshot(entry: dict, old: dict) -> dict:
    """An earlier entry as kept in ``history``: its value and where it came from (step, commit, time)."""
    snap = {k: entry[k] for k in HISTORY_KEYS if k in entry}
    snap.setdefault("evaluated_at", old.get("evaluated_at"))
    snap.setdefault("step", (old.get("run") or {}).get("step"))
    snap.setdefault("commit", (old.get("versions") or {}).get("git_commit"))
    return snap


def merge_eval(old: dict | None, new: dict) -> dict:
    """Merge the content of a new evaluation into an existing eval.json.

    Each protocol of ``new`` replaces the entry of the same name and keeps the replaced one (value,
    status, step, commit, time) at the end of its ``history`` list when it had a value (status
    ``ok``); a new ``skipped`` entry does not replace an earlier ``ok`` one (nothing was measured).
    Entries of other protocols are kept as they were; floors are updated by name; ``evaluations`` lists every evaluation (time, step, protocols).
    The top-level fields (run, versions, device, wall_s) are those of ``new``.
    """
    if not old:
        return new
    metrics = dict(old.get("metrics") or {})
    floors = dict(old.get("floors") or {})
    kept = []
    for name, e in new["metrics"].items():
        prev = metrics.get(name)
        if prev is not None and e.get("status") == "skipped" and prev.get("status") == "ok":
            kept.append(name)
            continue
        if prev is not None:
            hist = list(prev.get("history") or [])
            if prev.get("status") == "ok":  # a value to keep (skipped / unavailable entries had none)
                hist.append(_snapshot(prev, old))
            e = {**e, "history": hist} if hist else e
        metrics[name] = e
        floors[name] = new["floors"][name]
    evaluations = list(old.get("evaluations") or [])
    if not evaluations and old.get("metrics"):  # an eval.json of before this field: describe it
        evaluations.append({"evaluated_at": old.get("evaluated_at"), "step": (old.get("run") or {}).get("step"),
                            "commit": (old.get("versions") or {}).get("git_commit"),
                            "protocols": list(old["metrics"]), "wall_s": old.get("wall_s")})
    last = dict(new["evaluations"][-1])
    if kept:
        last["kept_earlier_ok"] = kept
    return {**new, "metrics": metrics, "floors": floors, "evaluations": evaluations + [last]}


def write_eval(out_dir: Path, new: dict, extra_files: dict | None = None) -> dict:
    """Merge ``new`` into ``out_dir/eval.json`` under a file lock and write it atomically.

    ``extra_files``: ``{name: json object}`` written beside it under the same lock (``source.json``).
    Returns the merged content.
    """
    from filelock import FileLock

    from exprbench.io import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir / ".eval.json.lock")):
        merged = merge_eval(read_eval(out_dir / "eval.json"), new)
        for name, obj in (extra_files or {}).items():
            write_json(out_dir / name, obj)
        write_json(out_dir / "eval.json", merged)
    return merged


def _resolve_protocols(metrics: Sequence[str] | None, n_samples: int | None) -> list[Protocol]:
    if n_samples is not None and int(n_samples) < 1:
        raise UserError(f"--n-samples must be positive, got {n_samples}")
    protos = [resolve_protocol(m) for m in (metrics or default_protocols())]
    if n_samples is not None:
        protos = [p.with_n(int(n_samples)) for p in protos]
    seen: dict = {}
    for p in protos:
        seen.setdefault(p.name, p)
    return list(seen.values())


def _check_per_class_counts(protos: Sequence[Protocol], k: int) -> None:
    for p in protos:
        if p.family in ("ifid", "acc_gen", "cas", "translate_acc", "translate_fid") and p.n_samples < k:
            raise UserError(f"{p.name}: needs at least one sample per class ({k}), got {p.n_samples}")


def _common_fields(dev: torch.device, ctx: _Context) -> dict:
    from exprbench.harness import device_name, library_versions

    return {
        "floors_note": "real data in place of generated: FID/KID/PR/DC/intra-FID of FER2013 test (PrivateTest) vs "
                       "the same train reference; mem: test faces scored as samples (about 0.05 by construction); acc_gen, enc_acc, translate_acc: evaluator accuracy on real test; "
                       "cas: the CAS recipe trained on real train images; edit: evaluator accuracy on real test; "
                       "probe, recon_l1, translate_fid, bpd: none (unavailable); protocols skipped here: not computed",
        "protocol_version": PROTOCOL_VERSION,
        "versions": {**library_versions(), "torch_fidelity": _tf_version()},
        "device": device_name(dev),
        "evaluator": {"sha256": ctx.evaluator.sha256, "test_accuracy": ctx.evaluator.card.get("test_accuracy")},
    }


def run_train_fingerprint(run_dir: Path) -> str | None:
    """The data fingerprint a run was trained on: ``status.json``'s ``data_fingerprint``, else the one in
    ``config.json`` (``data.fingerprint``), else None."""
    for name, get in (("status.json", lambda d: d.get("data_fingerprint")),
                      ("config.json", lambda d: (d.get("data") or {}).get("fingerprint"))):
        f = Path(run_dir) / name
        if f.exists():
            try:
                fp = get(json.loads(f.read_text()))
            except (json.JSONDecodeError, AttributeError):
                fp = None
            if fp:
                return str(fp)
    return None


def fingerprint_warnings(train_fp: str | None, eval_fp: str, path) -> list[str]:
    """One warning line when the run's training data fingerprint differs from the evaluation data's."""
    if train_fp is None or train_fp == eval_fp:
        return []
    return [f"warning: the run was trained on data with fingerprint {train_fp[:12]}, the evaluation data {path} has "
            f"{eval_fp[:12]}: its numbers compare the model with other data than it learned from"]


def evaluate_run(
    run_dir: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    evaluator_weights: str | os.PathLike | None = None,
    checkpoint: str | int | None = "latest",
    reporter: EvalReporter | None = None,
) -> dict:
    """Evaluate a checkpoint of a run and merge the results into ``run_dir/eval.json`` (atomically).

    Args:
        run_dir: a run directory (config.json + checkpoints/).
        metrics: protocol names (default: the default set, see ``exprbench metrics``); names with
            another count (``fid1k_train``) are accepted.
        n_samples: override every protocol's sample count; the recorded names carry it.
        device: ``auto``, ``cpu`` or ``cuda``.
        data: dataset path (default: the run's ``data.path``, else ``$EXPRBENCH_DATA``).
        inception_weights: torch-fidelity Inception-V3 weights (default: torch hub cache, if present).
        evaluator_weights: evaluator weights (default: the shipped ``metrics/weights/fer_evaluator.pt``).
        checkpoint: the step to evaluate, or ``latest`` (default); recorded as ``run.step`` and in each entry.
        reporter: progress hooks (:class:`~exprbench.metrics.progress.EvalReporter`; default: silent).

    Returns:
        The merged eval.json content: ``{"metrics": {name: entry}, "floors": {name: entry},
        "evaluations": [{evaluated_at, step, commit, protocols, ...}], "protocol_version", "versions",
        "device", "run": {model, config, seed, step, checkpoint}, "source": {"kind": "run", ...},
        "data": {...}, "evaluator": {...}, "wall_s"}``; an entry is ``{"value": float | None, "std"?:
        float, "status": "ok" | "skipped" | "unavailable", "reason"?: str, "n_samples": int, "seed":
        int, "extractor": str, "extractor_sha256": str | None, "wall_s": float, "evaluated_at": ISO
        time, "step": int, "commit": str, "details"?: dict, "history"?: [earlier values]}``. Entries
        of protocols not evaluated this time are kept (see :func:`merge_eval`). FID/KID in squared
        feature units, accuracies and precision/recall as fractions in [0, 1].

    Raises:
        UserError (exit code 2 in the CLI): not a run directory, no checkpoint or no checkpoint at the
        asked step, unknown protocol, bad sample count, dataset not found or of another label set,
        missing evaluator weights, an explicit Inception weights path that does not exist, an
        existing eval.json that is not valid JSON.
    """
    from exprbench.harness import library_versions, resolve_device

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    protos = _resolve_protocols(metrics, n_samples)
    read_eval(run_dir / "eval.json")  # a corrupt eval.json is reported before any work
    select_checkpoint(run_dir, checkpoint)  # a bad --checkpoint too
    dev = resolve_device(device)
    if inception_weights is not None:
        from .fidelity import inception_weights_path

        inception_weights_path(inception_weights)  # explicit path must exist (bad input otherwise)
    cfg, model, spec, step, ckpt_path = load_for_eval(run_dir, checkpoint, dev)
    path = resolve_eval_data_path(data, cfg.data.path)
    ds = load_fer2013(path, cfg.data.label_set)
    if tuple(ds.class_names) != tuple(spec.class_names):
        raise UserError(f"the run was trained on classes {spec.class_names}, the data has {ds.class_names}")
    _check_per_class_counts(protos, len(ds.class_names))
    reporter = reporter or EvalReporter()
    ctx = _Context(model, ds, dev, evaluator_weights, inception_weights, reporter=reporter)
    ctx.image_words = "generated images"
    ctx.out_dir = run_dir
    commit = library_versions()["git_commit"]
    stamp = {"evaluated_at": _now(), "step": step, "commit": commit}
    reporter.begin([p.name for p in protos], f"{run_dir} (checkpoint step {step})")
    train_fp = run_train_fingerprint(run_dir)
    warnings = fingerprint_warnings(train_fp, ds.fingerprint, path)
    for w in warnings:
        reporter.note(0, len(protos), "data", w)
    results, floors = _run_all(protos, ctx, stamp)
    rel_ckpt = str(ckpt_path.relative_to(run_dir)) if ckpt_path.is_relative_to(run_dir) else str(ckpt_path)
    wall = round(time.perf_counter() - t0, 2)
    new = {
        "metrics": results,
        "floors": floors,
        **_common_fields(dev, ctx),
        "run": {"model": cfg.model, "config": cfg.config_name, "seed": cfg.train.seed, "step": step,
                "label_set": cfg.data.label_set, "checkpoint": rel_ckpt},
        "source": {"kind": "run", "checkpoint": rel_ckpt, "step": step},
        "data": {"path": str(path), "fingerprint": ds.fingerprint, "train_fingerprint": train_fp,
                 "fingerprint_match": None if train_fp is None else train_fp == ds.fingerprint},
        "warnings": warnings,
        "evaluated_at": stamp["evaluated_at"],
        "evaluations": [{**stamp, "checkpoint": rel_ckpt, "protocols": list(results), "device": None, "wall_s": wall}],
        "wall_s": wall,
    }
    new["evaluations"][0]["device"] = new["device"]
    merged = write_eval(run_dir, new)
    reporter.end(merged)
    return merged


# -- scoring images from any source ---------------------------------------------------------------
class _ImageSource:
    """Stands in for a model when scoring given images: a name and the capabilities images have."""

    def __init__(self, name: str, labeled: bool) -> None:
        self.name = name
        self.capabilities = frozenset({"sample", "conditional"} if labeled else {"sample"})


class _ImagesContext(_Context):
    """The protocols' context over given images: "generating" n images picks n of them."""

    def __init__(self, images_set, name: str, data: FaceDataset, device, evaluator_weights, inception_weights,
                 reporter=None) -> None:
        super().__init__(_ImageSource(name, images_set.labels is not None), data, device, evaluator_weights,
                         inception_weights, reporter=reporter)
        self.source = images_set
        self.image_words = "given images"
        self.n_given = int(images_set.images.shape[0])
        labs = images_set.labels
        self.per_class_given = (torch.bincount(labs, minlength=self.k).tolist() if labs is not None else None)
        self.subsets: dict[str, str] = {}  # protocol name -> which of the given images it used
        self._how: dict = {}

    def skip_reason(self, p: Protocol) -> str | None:
        missing = sorted(p.needs - set(self.model.capabilities))
        where = self.source.info["path"]
        if missing == ["conditional"]:
            return "needs labels: pass --labels FILE (a class index or emotion name per image)"
        if missing:
            return f"needs a model ({', '.join(missing)}), not images (scoring {where})"
        if p.family not in SAMPLE_FAMILIES:
            return f"needs a model, not images (scoring {where})"
        if p.family in PER_CLASS_FAMILIES:
            need = p.n_samples // self.k
            if p.family == "ifid" and need < 2:
                return f"intra-class FID needs at least 2 images per emotion, {p.name} asks for {need}"
            short = [(self.data.class_names[k], c) for k, c in enumerate(self.per_class_given) if c < need]
            if short:
                name, c = short[0]
                return (f"needs {need:,} image{'s' if need != 1 else ''} per emotion, {name!r} has {c:,} "
                        f"({', '.join(f'{n} {c}' for n, c in zip(self.data.class_names, self.per_class_given))})")
            return None
        least = 4 if p.family == "pr" else 2
        if p.n_samples > self.n_given:
            alt = p.with_n(self.n_given).name if self.n_given >= least else None
            return (f"needs {p.n_samples:,} images, {self.n_given:,} given"
                    + (f" (ask for {alt} or --n-samples {self.n_given})" if alt else ""))
        if p.n_samples < least:
            return f"needs at least {least} images, {p.name} asks for {p.n_samples}"
        return None

    def generate(self, n: int, seed: int, per_class: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` of the given images: all of them in order when there are exactly ``n`` (per class: n // K
        of each class), else a random subset drawn with ``seed``; with their labels (None if unlabeled)."""
        key = (n, seed, per_class)
        if key in self._gen:
            self.subsets[self.at[2]] = self._how[key]
            return self._gen[key]
        images, labels = self.source.images, self.source.labels
        g = torch.Generator().manual_seed(seed)
        if per_class:
            per = n // self.k
            idx = []
            for k in range(self.k):
                pool = torch.nonzero(labels == k).flatten()
                idx.append(pool if len(pool) == per else pool[torch.randperm(len(pool), generator=g)[:per]])
            idx = torch.cat(idx)
            how = (f"{per:,} per emotion: all" if all(c == per for c in self.per_class_given)
                   else f"{per:,} per emotion, random (seed {seed}) among {self.per_class_given}")
        elif n == self.n_given:
            idx, how = torch.arange(n), f"all {n:,} images"
        else:
            idx, how = torch.randperm(self.n_given, generator=g)[:n], f"random {n:,} of {self.n_given:,} (seed {seed})"
        self.subsets[self.at[2]] = self._how[key] = how
        out = (images[idx], torch.arange(self.k).repeat_interleave(n // self.k) if per_class else
               (labels[idx] if labels is not None else None))
        self._gen[key] = out
        return out


def default_image_protocols(image_set, k: int) -> list[Protocol]:
    """The default protocols for given images: the default set, with the sample-based ones renamed to
    the count available when fewer images are given than they take (60 images: ``fid60_train``;
    labeled, at least 8 per emotion: ``acc_gen56``). Protocols that need a model stay (and are skipped)."""
    n = int(image_set.images.shape[0])
    per = min(torch.bincount(image_set.labels, minlength=k).tolist()) if image_set.labels is not None else 0
    out = []
    for p in (resolve_protocol(m) for m in default_protocols()):
        if p.family in ("fid", "kid", "pr", "dc", "mem") and n < p.n_samples and n >= (4 if p.family == "pr" else 2):
            p = p.with_n(n)
        elif p.family in PER_CLASS_FAMILIES and image_set.labels is not None and per * k < p.n_samples \
                and per >= (2 if p.family == "ifid" else 1):
            p = p.with_n(per * k)
        out.append(p)
    return out


def images_out_dir(images: str | os.PathLike, out: str | os.PathLike | None, name: str | None = None) -> Path:
    """``out``, else ``results/runs/<name>``, else ``results/runs/images-<folder or file stem>`` (under
    ``results/runs``, where ``exprbench report`` looks)."""
    if out is not None:
        return Path(out)
    if name:
        if Path(name).name != name or name in (".", ".."):
            raise UserError(f"--name {name!r}: a name, not a path (use --out for a directory)")
        return Path("results") / "runs" / name
    return Path("results") / "runs" / f"images-{Path(images).expanduser().resolve().stem}"


def _check_out_dir(out: Path, source: dict) -> dict | None:
    """Refuse an ``--out`` that is a training run or holds scores of other images; returns its source.json."""
    from exprbench.io import read_json

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if (out / "config.json").exists() or (out / "checkpoints").exists():
        raise UserError(f"--out {out}: a training run directory; scores of images go to a directory of their own")
    old = read_json(out / "source.json") if (out / "source.json").exists() else None
    if (out / "source.json").exists() and not isinstance(old, dict):
        raise UserError(f"{out / 'source.json'}: not valid JSON; move it away or use another --out")
    if old:
        if (old.get("images") or {}).get("sha256") != source["images"]["sha256"]:
            raise UserError(f"--out {out}: holds scores of other images ({(old.get('images') or {}).get('path')}); "
                            "use another --out")
        ol, nl = old.get("labels"), source.get("labels")
        if ol and nl and ol.get("sha256") != nl.get("sha256"):
            raise UserError(f"--out {out}: holds scores of these images with other labels ({ol.get('path')}); "
                            "use another --out")
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {base} is not a writable directory")
    return old


def evaluate_images(
    images: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    name: str | None = None,
    metrics: Sequence[str] | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    evaluator_weights: str | os.PathLike | None = None,
    label_set: str = "fer7",
    reporter: EvalReporter | None = None,
    command: str | None = None,
) -> dict:
    """Score generated images from any source with the protocols that apply; write ``out/eval.json``.

    The images (see :mod:`exprbench.metrics.images_source`: a folder of PNGs, an .npz/.npy) take the
    place of a model's samples: fidelity protocols (fid/kid/pr) always, class-aware ones (ifid,
    acc_gen, cas) when labels are given; protocols that need a model (encoders, translation,
    editing, likelihood) or more images than given are skipped with the reason. Without ``metrics``
    and ``n_samples`` the sample-based protocols are renamed to the count given when fewer images
    than they take are given (see :func:`default_image_protocols`). ``out`` becomes a run directory
    of its own: ``eval.json`` (as :func:`evaluate_run`'s, merged the same way, ``source.kind =
    "images"``) and ``source.json`` (where the images came from); no config.json, no checkpoints.

    Args:
        images: a folder or an .npz / .npy file of uint8 48 x 48 images.
        labels: a labels file (.npy/.txt/.csv) overriding the source's own labels.
        out: output directory (default ``results/runs/<name>``, else ``results/runs/images-<stem>``).
        name: the name shown for these images in tables (default: the folder or file stem).
        metrics, n_samples, device, data, inception_weights, evaluator_weights: as :func:`evaluate_run`.
        label_set: the label set the labels index (``fer7`` or ``fer6``).
        reporter: progress hooks (default: silent).
        command: the command line, recorded in source.json.

    Returns:
        The merged eval.json content.

    Raises:
        UserError (exit code 2 in the CLI): bad images or labels (file and value named), an ``out``
            that is a training run or holds other images, and the errors of :func:`evaluate_run`.
    """
    from exprbench import __version__
    from exprbench.data import LABEL_SETS
    from exprbench.harness import library_versions, resolve_device

    from .images_source import load_image_set

    t0 = time.perf_counter()
    if label_set not in LABEL_SETS:
        raise UserError(f"unknown label set {label_set!r} (known: {', '.join(LABEL_SETS)})")
    explicit = metrics is not None and len(metrics) > 0
    if explicit or n_samples is not None:
        protos = _resolve_protocols(metrics, n_samples)
    out_dir = images_out_dir(images, out, name)
    read_eval(out_dir / "eval.json")
    reporter = reporter or EvalReporter()
    iset = load_image_set(images, LABEL_SETS[label_set], labels, progress=reporter.bar)
    source = {"kind": "images", "name": name, "images": iset.info, "labels": iset.labels_info}
    old_source = _check_out_dir(out_dir, source)
    name = source["name"] = name or (old_source or {}).get("name") or f"images-{Path(iset.info['path']).stem}"
    if not (explicit or n_samples is not None):
        protos = default_image_protocols(iset, len(LABEL_SETS[label_set]))
    _check_per_class_counts(protos, len(LABEL_SETS[label_set]))
    dev = resolve_device(device)
    if inception_weights is not None:
        from .fidelity import inception_weights_path

        inception_weights_path(inception_weights)
    path = resolve_eval_data_path(data, None)
    ds = load_fer2013(path, label_set)
    ctx = _ImagesContext(iset, name, ds, dev, evaluator_weights, inception_weights, reporter=reporter)
    ctx.out_dir = out_dir
    commit = library_versions()["git_commit"]
    stamp = {"evaluated_at": _now(), "step": None, "commit": commit}
    n_lab = f", {iset.labels_info['n']:,} labels" if iset.labels_info else ", no labels"
    if iset.info.get("lossy_files"):
        n_lab += f" ({iset.info['lossy_files']:,} lossy-compressed files: this may affect the metrics)"
    reporter.begin([p.name for p in protos], f"{iset.info['n']:,} images from {iset.info['path']}{n_lab}")
    results, floors = _run_all(protos, ctx, stamp)
    for pname, how in ctx.subsets.items():
        if pname in results:
            results[pname]["images_used"] = how
    wall = round(time.perf_counter() - t0, 2)
    new = {
        "metrics": results,
        "floors": floors,
        **_common_fields(dev, ctx),
        "run": {"model": name, "config": "images", "seed": None, "step": None, "label_set": label_set},
        "source": source,
        "data": {"path": str(path), "fingerprint": ds.fingerprint, "train_fingerprint": None},
        "evaluated_at": stamp["evaluated_at"],
        "evaluations": [{**stamp, "protocols": list(results), "wall_s": wall}],
        "wall_s": wall,
    }
    new["evaluations"][0]["device"] = new["device"]
    if old_source and old_source.get("labels") and not source["labels"]:
        source["labels"] = old_source["labels"]  # scored with labels before: those entries stay
    source_file = {**source, "created_at": (old_source or {}).get("created_at") or stamp["evaluated_at"],
                   "updated_at": stamp["evaluated_at"], "exprbench_version": __version__,
                   "command": command, "note": "scores of images from outside exprbench: no config.json, no checkpoints"}
    merged = write_eval(out_dir, new, {"source.json": source_file})
    reporter.end(merged)
    return merged


def _tf_version() -> str:
    import torch_fidelity

    return getattr(torch_fidelity, "__version__", "unknown")


def _fmt(v, digits=4) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}" if abs(v) >= 1 or abs(v) < 1e-2 else f"{v:.{digits}f}"


def _details_line(e: dict, fl: dict) -> str:
    d = e.get("details", {})
    if "density" in d:
        return (f"density {d['density']:.3f}  coverage {d['coverage']:.3f} (k={d['k']})"
                + (f"   (real: density {fl['details']['density']:.3f}  coverage {fl['details']['coverage']:.3f})"
                   if "density" in fl.get("details", {}) else ""))
    if "closest_pairs" in d:
        pairs = d["closest_pairs"]
        return (f"threshold {_fmt(d['threshold'], 3)} (5th percentile of test-to-train distances); closest pair "
                f"distance {_fmt(pairs[0]['distance'], 3) if pairs else '-'}"
                + (f"; pairs in {d['pairs_files']['png']}" if d.get("pairs_files") else ""))
    if "balanced_acc" in d and "majority_acc" in d:
        return (f"balanced accuracy {_fmt(d['balanced_acc'], 3)}  (chance {_fmt(d['chance'], 3)}; always "
                f"{d['majority_class']!r}: accuracy {_fmt(d['majority_acc'], 3)}, balanced {_fmt(d['majority_balanced_acc'], 3)})"
                + (f"; ratio to the real-data baseline {_fmt(d['ratio_to_real'], 3)}" if d.get("ratio_to_real") else "")
                + ("; per class: " + "  ".join(f"{k} {_fmt(v, 3)}" for k, v in d["per_class"].items())
                   if d.get("per_class") else ""))
    if "fid_inf" in d and d.get("fid_inf") is not None:
        return f"FID extrapolated to infinite N {_fmt(d['fid_inf'], 4)} (at N: {', '.join(f'{n}: {_fmt(v, 4)}' for n, v in d['fid_at_n'].items())})"
    if "precision" in d:
        line = f"precision {d['precision']:.3f}  recall {d['recall']:.3f}  F {d['f_score']:.3f}"
        fd = fl.get("details", {})
        if "precision" in fd:
            line += f"   (real: precision {fd['precision']:.3f}  recall {fd['recall']:.3f})"
        return line
    if "ratio_to_real" in d:
        return f"ratio to the real-data baseline {_fmt(d['ratio_to_real'], 3)} (baseline {_fmt(d['real_baseline'], 3)})"
    if "ssim" in d and "label_agreement" in d:
        return f"SSIM {_fmt(d['ssim'], 3)}  evaluator label agreement {_fmt(d['label_agreement'], 3)}"
    if "at_reference" in d:
        a = d["at_reference"]
        return (f"at strength {d['reference_strength']:g}: identity L1 {_fmt(a['l1'], 3)}  SSIM {_fmt(a['ssim'], 3)}  "
                f"feature distance {_fmt(a['feat_dist'], 3)}  entanglement {_fmt(a['entanglement'], 3)}")
    if "identity_l1" in d:
        return (f"identity L1 {_fmt(d['identity_l1'], 3)}  SSIM {_fmt(d['identity_ssim'], 3)}  feature distance "
                f"{_fmt(d['feature_distance'], 3)}  own-emotion L1 {_fmt(d['self_l1'], 3)}")
    if "iw_bpd" in d:
        return f"{d['kind']}" + (f"; IWAE bound (K={d['iw_k']}) {_fmt(d['iw_bpd'], 4)}" if d.get("iw_bpd") is not None else "")
    if "per_target" in d:
        return "  ".join(f"{k} {_fmt(v, 3)}" for k, v in d["per_target"].items())
    if "per_class" in d:
        return "  ".join(f"{k} {_fmt(v, 3)}" for k, v in d["per_class"].items())
    return ""


def print_eval(result: dict, console=None, only: Sequence[str] | None = None) -> None:
    """Print eval.json content: a table of value (± std), real-data value, n, seed and time, then details.

    Args:
        result: eval.json content.
        console: a rich Console (default: stdout).
        only: print these protocols only (e.g. those of the last evaluation); a line counts the others.
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    r = result["run"]
    src = result.get("source") or {}
    if src.get("kind") == "images":
        title = f"{r['model']}: {src['images']['n']:,} images from {src['images']['path']} ({result['device']})"
    else:
        title = f"{r['model']}/{r['config']} seed {r['seed']} step {r['step']} ({result['device']})"
    t = Table("protocol", "value", "real data", "n", "seed", "s", title=title)
    notes = []
    shown = [n for n in result["metrics"] if only is None or n in only]
    others = [n for n in result["metrics"] if n not in shown]
    for name in shown:
        e = result["metrics"][name]
        fl = result["floors"].get(name, {})
        floor = _fmt(fl.get("value")) if fl.get("status") == "ok" else "-"
        if e["status"] != "ok":
            t.add_row(name, e["status"], floor, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
            notes.append(f"{name}: {e['status']}: {e.get('reason', '')}")
            continue
        val = _fmt(e["value"]) + (f" ± {_fmt(e['std'], 2)}" if e.get("std") is not None else "")
        if e.get("ci95"):
            val += f" [{_fmt(e['ci95'][0], 3)}, {_fmt(e['ci95'][1], 3)}]"
        t.add_row(name, val, floor, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
        line = _details_line(e, fl)
        if line:
            notes.append(f"{name}: {line}")
    console.print(t)
    for w in result.get("warnings") or []:
        console.print(w, highlight=False, soft_wrap=True)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    if others:
        console.print(f"eval.json also keeps {len(others)} earlier result{'s' if len(others) != 1 else ''}: "
                      f"{', '.join(others)}", highlight=False, soft_wrap=True)
    steps = sorted({e.get("step") for e in result["metrics"].values() if e.get("step") is not None})
    if len(steps) > 1:
        console.print(f"note: the entries come from checkpoints at steps {', '.join(map(str, steps))} "
                      "(each entry records its step)", highlight=False, soft_wrap=True)
    ev = result.get("evaluator", {})
    console.print(f"features: fer-evaluator sha256 {str(ev.get('sha256'))[:12]} (test accuracy "
                  f"{_fmt(ev.get('test_accuracy'))}); real data = real FER2013 test data in place of generated; "
                  f"protocol {result['protocol_version']}", highlight=False, soft_wrap=True)


def evaluate_model(model, data: FaceDataset, metrics: Sequence[str], device: str | torch.device = "cpu",
                   evaluator_weights=None, inception_weights=None) -> dict[str, dict]:
    """Evaluate an in-memory plugin on protocols, without a run directory and without floors.

    Used during training for curves of a metric over steps (``exprbench bench``'s ``curve_metric``).

    Args:
        model: a model plugin (sampling in eval mode; its training state is left as it was).
        data: the dataset the references come from (its ``train`` split; ``test`` for CAS/acc).
        metrics: protocol names, e.g. ``["fid2k_train"]``.
        device: torch device of the evaluator.

    Returns:
        ``{name: entry}`` with entries as in ``eval.json`` (see :func:`evaluate_run`).

    Raises:
        UserError: unknown protocol or missing evaluator weights.
    """
    dev = device if isinstance(device, torch.device) else torch.device(device)
    protos = [resolve_protocol(m) for m in metrics]
    ctx = _Context(model, data, dev, evaluator_weights, inception_weights)
    ctx.ci_draws = 0  # curves need the values only: no bootstrap intervals, no FID extrapolation
    try:
        return {p.name: _run_protocol(p, ctx, real_role=False) for p in protos}
    finally:
        drop_generated_cache(ctx.gen_cache_names)
