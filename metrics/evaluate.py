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
from .classaware import CASProtocol, cas_real_baseline, classifier_accuracy_on_real, label_accuracy
from .editing import balanced_subset, edit_metrics, fit_edit_directions, likelihood_metrics, strength_index
from .evaluator import load_evaluator
from .fidelity import (EXTRACTORS, ExtractorUnavailable, fidelity_cache_root, drop_generated_cache, extractor_info, fidelity_scores,
                       generated_cache_name, intra_class_fid, reference_cache_name)
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

    def __init__(self, model, data: FaceDataset, device: torch.device, evaluator_weights, inception_weights) -> None:
        self.model, self.data, self.device = model, data, device
        self.evaluator_weights, self.inception_weights = evaluator_weights, inception_weights
        self.evaluator = load_evaluator(evaluator_weights, device)
        self.train, self.test = data.split("train"), data.split("test")
        self.k = len(data.class_names)
        self.conditional = "conditional" in model.capabilities
        self._gen: dict = {}
        self._real: dict = {}
        self.gen_cache_names: set[str] = set()

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
        for i in range(0, len(labels) if labels is not None else n, bs):
            m = min(bs, (len(labels) if labels is not None else n) - i)
            lab = labels[i : i + m] if labels is not None else None
            x = self.model.sample(m, labels=lab, generator=g)
            out.append(to_uint8(x).cpu())
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
                inception_weights=ctx.inception_weights, device=ctx.device)


def _run_fidelity(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    """FID / KID / PR of generated (or, for the floor, real test) images against the train reference."""
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    kw = _fidelity_kw(ctx, p)
    if real_role:
        cand, n_c = ctx.test.images, len(ctx.test)
        test_name = ctx.ref_name("test", n_c, p.extractor, sha)
    else:
        cand, _ = ctx.generate(p.n_samples, p.seed, per_class=False)
        n_c = cand.shape[0]
        ctx.gen_cache_names.add(generated_cache_name(cand, p.extractor, sha))
        test_name = None
    if p.family == "pr":
        ref, sel = ctx.pr_reference(PR_REFERENCE_SIZE)
        ref_name = ctx.ref_name("train", ref.shape[0], p.extractor, sha, sel)
        metrics = ("prc",)
    else:
        ref, ref_name = ctx.train.images, ctx.ref_name("train", len(ctx.train), p.extractor, sha)
        metrics = ("fid",) if p.family == "fid" else ("kid",)
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
    return out


def _run_ifid(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    names = ctx.data.class_names
    ref_names = [ctx.ref_name("train", int((ctx.train.labels == k).sum()), p.extractor, sha, f"class={n}")
                 for k, n in enumerate(names)]
    if real_role:
        imgs, labs = ctx.test.images, ctx.test.labels
    else:
        imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = intra_class_fid(imgs, labs, ctx.train.images, ctx.train.labels, names, real_cache_names=ref_names,
                          **_fidelity_kw(ctx, p))
    return {"value": res["mean"], "n_samples": int(imgs.shape[0]), "extractor_sha256": sha,
            "details": {"per_class": res["per_class"], "n_generated_per_class" if not real_role else "n_test_per_class":
                        res["n_generated"], "n_real_per_class": res["n_real"]}}


def _run_acc(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    if real_role:
        imgs, labs = ctx.test.images, ctx.test.labels
    else:
        imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = label_accuracy(ctx.evaluator, imgs, labs, ctx.data.class_names)
    return {"value": res["value"], "n_samples": res["n"], "extractor_sha256": ctx.evaluator.sha256,
            "details": {"per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                        "class_names": list(ctx.data.class_names), "tta": "hflip"}}


def _cas_sha() -> str:
    import hashlib

    return hashlib.sha256(json.dumps(asdict(CAS), sort_keys=True).encode()).hexdigest()


def _run_cas(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    per_class = max(p.n_samples // ctx.k, 1)
    base = cas_real_baseline(ctx.data, per_class, CAS, ctx.device)
    common = {"extractor_sha256": _cas_sha()}
    if real_role:
        return {"value": base["value"], "n_samples": base["n_train"], **common,
                "details": {"per_class": base["per_class"], "confusion_matrix": base["confusion_matrix"],
                            "protocol": asdict(CAS), "train": "real train images, class-balanced"}}
    imgs, labs = ctx.generate(p.n_samples, p.seed, per_class=True)
    res = classifier_accuracy_on_real(imgs, labs, ctx.test, CAS, ctx.device)
    ratio = res["value"] / base["value"] if base["value"] > 0 else None
    return {"value": res["value"], "n_samples": res["n_train"], **common,
            "details": {"ratio_to_real": ratio, "real_baseline": base["value"], "per_class": res["per_class"],
                        "confusion_matrix": res["confusion_matrix"], "protocol": asdict(CAS),
                        "n_test": res["n_test"], "train_seconds": res["train_seconds"]}}


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


_FAMILY = {"fid": _run_fidelity, "kid": _run_fidelity, "pr": _run_fidelity, "ifid": _run_ifid,
           "acc_gen": _run_acc, "cas": _run_cas, "enc_acc": _run_enc_acc, "probe": _run_probe,
           "recon_l1": _run_recon, "translate_acc": _run_translate_acc, "translate_fid": _run_translate_fid, "edit": _run_edit, "bpd": _run_bpd}


def _run_protocol(p: Protocol, ctx: _Context, real_role: bool) -> dict:
    t0 = time.perf_counter()
    missing = sorted(p.needs - set(ctx.model.capabilities))
    if missing and not real_role:
        return _entry(p, "skipped", reason=f"model {ctx.model.name!r} lacks capability {', '.join(missing)}")
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


def _floor_key(p: Protocol, ctx: _Context) -> str:
    """Content hash of everything a real-data floor depends on (never the model)."""
    import hashlib

    if p.family == "cas":
        sha = _cas_sha()
    elif p.extractor in EXTRACTORS:
        _, sha = extractor_info(p.extractor, ctx.evaluator_weights, ctx.inception_weights)
    else:  # e.g. model-encoder: the floor is the evaluator's
        sha = ctx.evaluator.sha256
    parts = {"protocol_version": PROTOCOL_VERSION, "protocol": asdict(p), "data": ctx.data.fingerprint,
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
    entry = _run_protocol(p, ctx, real_role=True)
    if entry["status"] == "ok":
        write_json(path, entry)
    return entry


def evaluate_run(
    run_dir: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    evaluator_weights: str | os.PathLike | None = None,
) -> dict:
    """Evaluate a run's newest checkpoint and write ``run_dir/eval.json`` atomically.

    Args:
        run_dir: a run directory (config.json + checkpoints/).
        metrics: protocol names (default: the default set, see ``exprbench metrics``); names with
            another count (``fid1k_train``) are accepted.
        n_samples: override every protocol's sample count; the recorded names carry it.
        device: ``auto``, ``cpu`` or ``cuda``.
        data: dataset path (default: the run's ``data.path``, else ``$EXPRBENCH_DATA``).
        inception_weights: torch-fidelity Inception-V3 weights (default: torch hub cache, if present).
        evaluator_weights: evaluator weights (default: the shipped ``metrics/weights/fer_evaluator.pt``).

    Returns:
        The eval.json content: ``{"metrics": {name: entry}, "floors": {name: entry}, "protocol_version",
        "versions", "device", "run": {model, config, seed, step}, "data": {...}, "evaluator": {...},
        "wall_s"}``; an entry is ``{"value": float | None, "std"?: float, "status": "ok" | "skipped" |
        "unavailable", "reason"?: str, "n_samples": int, "seed": int, "extractor": str,
        "extractor_sha256": str | None, "wall_s": float, "details"?: dict}``. FID/KID in squared
        feature units, accuracies and precision/recall as fractions in [0, 1].

    Raises:
        UserError (exit code 2 in the CLI): not a run directory, no checkpoint, unknown protocol,
        bad sample count, dataset not found or of another label set, missing evaluator weights,
        an explicit Inception weights path that does not exist.
    """
    from exprbench.harness import device_name, library_versions, load_trained, resolve_device, write_json

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    if n_samples is not None and int(n_samples) < 1:
        raise UserError(f"--n-samples must be positive, got {n_samples}")
    protos = [resolve_protocol(m) for m in (metrics or default_protocols())]
    if n_samples is not None:
        protos = [p.with_n(int(n_samples)) for p in protos]
    dev = resolve_device(device)
    if inception_weights is not None:
        from .fidelity import inception_weights_path

        inception_weights_path(inception_weights)  # explicit path must exist (bad input otherwise)
    cfg, model, spec, step = load_trained(run_dir, dev)
    path = resolve_eval_data_path(data, cfg.data.path)
    ds = load_fer2013(path, cfg.data.label_set)
    if tuple(ds.class_names) != tuple(spec.class_names):
        raise UserError(f"the run was trained on classes {spec.class_names}, the data has {ds.class_names}")
    for p in protos:
        if p.family in ("ifid", "acc_gen", "cas", "translate_acc", "translate_fid") and p.n_samples < len(ds.class_names):
            raise UserError(f"{p.name}: needs at least one sample per class ({len(ds.class_names)}), got {p.n_samples}")
    ctx = _Context(model, ds, dev, evaluator_weights, inception_weights)
    results, floors = {}, {}
    torch.manual_seed(0)
    try:
        for p in protos:
            results[p.name] = _run_protocol(p, ctx, real_role=False)
            floors[p.name] = _floor(p, ctx)
    finally:
        drop_generated_cache(ctx.gen_cache_names)
    train_fp = None
    status_path = run_dir / "status.json"
    if status_path.exists():
        try:
            train_fp = json.loads(status_path.read_text()).get("data_fingerprint")
        except json.JSONDecodeError:
            pass
    out = {
        "metrics": results,
        "floors": floors,
        "floors_note": "real data in place of generated: FID/KID/PR/intra-FID of FER2013 test (PrivateTest) vs "
                       "the same train reference; acc_gen, enc_acc, translate_acc: evaluator accuracy on real test; "
                       "cas: the CAS recipe trained on real train images; edit: evaluator accuracy on real test; "
                       "probe, recon_l1, translate_fid, bpd: none "
                       "(unavailable)",
        "protocol_version": PROTOCOL_VERSION,
        "versions": {**library_versions(), "torch_fidelity": _tf_version()},
        "device": device_name(dev),
        "run": {"model": cfg.model, "config": cfg.config_name, "seed": cfg.train.seed, "step": step,
                "label_set": cfg.data.label_set},
        "data": {"path": str(path), "fingerprint": ds.fingerprint, "train_fingerprint": train_fp},
        "evaluator": {"sha256": ctx.evaluator.sha256, "test_accuracy": ctx.evaluator.card.get("test_accuracy")},
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    write_json(run_dir / "eval.json", out)
    return out


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


def print_eval(result: dict, console=None) -> None:
    """Print eval.json content: a table of value (± std), real-data floor, n, seed and time, then details."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    r = result["run"]
    t = Table("protocol", "value", "real floor", "n", "seed", "s",
              title=f"{r['model']}/{r['config']} seed {r['seed']} step {r['step']} ({result['device']})")
    notes = []
    for name, e in result["metrics"].items():
        fl = result["floors"].get(name, {})
        floor = _fmt(fl.get("value")) if fl.get("status") == "ok" else "-"
        if e["status"] != "ok":
            t.add_row(name, e["status"], floor, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
            notes.append(f"{name}: {e['status']}: {e.get('reason', '')}")
            continue
        val = _fmt(e["value"]) + (f" ± {_fmt(e['std'], 2)}" if e.get("std") is not None else "")
        t.add_row(name, val, floor, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
        line = _details_line(e, fl)
        if line:
            notes.append(f"{name}: {line}")
    console.print(t)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    ev = result.get("evaluator", {})
    console.print(f"features: fer-evaluator sha256 {str(ev.get('sha256'))[:12]} (test accuracy "
                  f"{_fmt(ev.get('test_accuracy'))}); floors = real FER2013 test data in place of generated; "
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
    try:
        return {p.name: _run_protocol(p, ctx, real_role=False) for p in protos}
    finally:
        drop_generated_cache(ctx.gen_cache_names)
