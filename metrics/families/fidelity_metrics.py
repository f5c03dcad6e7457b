"""The feature-space protocols over generated images: FID, KID, precision/recall (torch-fidelity, see
:mod:`.fidelity`), density/coverage (:mod:`.coverage`) and memorisation (:mod:`.memorisation`).

Each family is two functions, ``compute_<family>(spec, ctx)`` (the model's value) and
``reference_<family>(spec, ctx)`` (the real-data reference), over one helper that scores a *source* of
images (:func:`generated_images` or :func:`real_images`, StyleGAN3's generator and dataset sources) against
the train reference in the protocol's feature space; with ``ctx.ci_draws`` bootstrap intervals come from the
features torch-fidelity cached (:mod:`.bootstrap`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from exprbench.core.io import atomic_open

from exprbench.metrics.families.bootstrap import CI_SEED, fid_ci, fid_infinity, kid_ci
from exprbench.metrics.families.coverage import DC_NEIGHBORHOOD, density_coverage, precision_recall_ci
from exprbench.metrics.families.fidelity import fidelity_scores
from exprbench.metrics.families.fidelity_inputs import extractor_info, generated_cache_name, is_cached
from exprbench.metrics.families.memorisation import MEM_QUANTILE, N_PAIRS, duplicate_mask, memorisation, pairs_grid
from exprbench.metrics.protocols.names import PR_REFERENCE_SIZE

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext, RealSet

_TF_METRIC = {"fid": "fid", "kid": "kid", "pr": "prc"}


@dataclass(frozen=True)
class Scored:
    """The images a feature-space protocol scores, in torch-fidelity's generated role.

    Attributes:
        images: uint8 N x C x H x W; cache_name: their features' torch-fidelity cache name; real: the
        :class:`~exprbench.metrics.run.context.RealSet` they were drawn from (the real-data reference), or None
        (the model's generated images).
    """

    images: torch.Tensor
    cache_name: str
    real: RealSet | None = None


#: a source of scored images: ``source(spec, ctx, extractor_sha256) -> Scored``
Source = Callable[["MetricSpec", "EvalContext", str], Scored]


def generated_images(spec: MetricSpec, ctx: EvalContext, sha: str) -> Scored:
    """The protocol's generated set (count and seed of ``spec``, shared by fid/kid/pr/dc/mem); its features'
    cache name is noted for dropping after the evaluation."""
    images, _ = ctx.generate(spec.n_samples, spec.seed, per_class=False)
    name = generated_cache_name(images, spec.extractor, sha)
    ctx.gen_cache_names.add(name)
    return Scored(images, name)


def real_images(spec: MetricSpec, ctx: EvalContext, sha: str) -> Scored:
    """Real faces in place of the generated ones (:meth:`EvalContext.real_set` at the protocol's count), their
    features cached like a reference."""
    rs = ctx.real_set(spec.n_samples, spec.seed)
    name = ctx.ref_name(rs.split, len(rs.images), spec.extractor, sha, rs.selection)
    if not is_cached(name):
        ctx.note(f"real features for the real-data value ({rs.where}), one-time, {len(rs.images):,} images")
    return Scored(rs.images, name, rs)


def compute_fid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """FID of the generated images against the full train split (squared feature units, >= 0); with
    ``ctx.ci_draws`` a bootstrap ci95 and FID extrapolated to infinite N in details."""
    return _fid_kid_pr(spec, ctx, generated_images, "fid")


def reference_fid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """FID of real faces in place of generated ones; where they are fewer than the protocol's count, also the
    FID at that count from the 1/N fit (details ``at_protocol_n``)."""
    return _fid_kid_pr(spec, ctx, real_images, "fid")


def compute_kid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """KID (mean and std over 100 subsets, unscaled) of the generated images against the full train split."""
    return _fid_kid_pr(spec, ctx, generated_images, "kid")


def reference_kid(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """KID of real faces in place of generated ones."""
    return _fid_kid_pr(spec, ctx, real_images, "kid")


def compute_pr(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Precision/recall (k=3) of the generated images against a fixed random 10k of train (seed 0); value =
    F-score in [0, 1], precision and recall in details."""
    return _fid_kid_pr(spec, ctx, generated_images, "pr")


def reference_pr(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Precision/recall of real faces in place of generated ones."""
    return _fid_kid_pr(spec, ctx, real_images, "pr")


def _fid_kid_pr(spec: MetricSpec, ctx: EvalContext, source: Source, kind: str) -> Entry:
    """FID / KID / precision-recall (``kind``) of the ``source`` images against the train reference
    (precision/recall: a fixed random 10k of train, seed 0, so both sets have the same size)."""
    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    kw = ctx.fidelity_kw(spec)
    scored = source(spec, ctx, sha)
    n_c = scored.images.shape[0]
    ref, ref_name = _train_reference(spec, ctx, kind, sha)
    res = fidelity_scores(scored.images, ref, (_TF_METRIC[kind],), real_cache_name=ref_name,
                          generated_cache=scored.cache_name, seed=2020, **kw)
    out = _fidelity_entry(kind, res, n_c, sha, spec.n_samples if scored.real is not None else None)
    if scored.real is not None:
        out["details"].update(reference_set(scored.real))
    short = scored.real is not None and n_c < spec.n_samples and kind == "fid"
    if ctx.ci_draws or short:  # intervals (and FID at infinite N) from the features torch-fidelity cached
        gen_feats = ctx.fidelity_feats(spec, scored.images, scored.cache_name, "generated")
    if short:  # fewer real images than the protocol's count: the FID at that count from the 1/N fit
        out["details"]["at_protocol_n"] = _fid_at_protocol_n(spec, ctx, gen_feats, ref_name, n_c)
    if ctx.ci_draws:
        _add_intervals(out, spec, ctx, kind, res, gen_feats, ref, ref_name)
    return out


def _train_reference(spec, ctx, kind: str, sha: str) -> tuple:
    """``(images, cache name)`` of the train reference: the random 10k for precision/recall (its features
    rows of the full train split's), else the whole train split."""
    if kind == "pr":
        ref, sel, idx = ctx.pr_reference(PR_REFERENCE_SIZE)
        return ref, ctx.train_subset_name(spec, sha, idx, sel)
    return ctx.train.images, ctx.train_ref_name(spec, sha)  # torch-fidelity reads (or extracts) them itself


def _fidelity_entry(kind: str, res: dict, n_c: int, sha: str, n_protocol: int | None) -> dict:
    """The entry of a FID, KID or precision/recall value (``n_protocol``: the real-data value's protocol count)."""
    out = {"n_samples": n_c, "extractor_sha256": sha}
    if n_protocol is not None:
        out["n_protocol"] = n_protocol
    if kind == "fid":
        out.update(value=res["fid"], details={"n_real": res["n_real"]})
    elif kind == "kid":
        out.update(value=res["kid_mean"], std=res["kid_std"],
                   details={"n_real": res["n_real"], "kid_subset_size": res["kid_subset_size"], "kid_subsets": 100})
    else:
        out.update(value=res["f_score"], details={"precision": res["precision"], "recall": res["recall"],
                                                  "f_score": res["f_score"], "k": 3, "n_real": res["n_real"]})
    return out


def _fid_at_protocol_n(spec, ctx, gen_feats: torch.Tensor, ref_name: str, n_c: int) -> dict:
    """The FID at the protocol's count read from the 1/N fit, for a real set of fewer images than that."""
    fit = fid_infinity(gen_feats, ctx.train_statistics(spec, ref_name))
    return {"n": spec.n_samples, "value": fit["fid_inf"] + fit["fid_inf_slope"] / spec.n_samples,
            "method": f"FID at N = {n_c:,}, {n_c // 2:,}, {n_c // 4:,} fitted linearly in 1/N (Chong & Forsyth 2020), "
                      f"read at N = {spec.n_samples:,}"}


def _add_intervals(out: dict, spec, ctx, kind: str, res: dict, gen_feats: torch.Tensor, ref, ref_name: str) -> None:
    """Add the bootstrap ci95 of the value (and of FID at infinite N, or of precision and recall) to ``out``."""
    if kind == "fid":
        stats = ctx.train_statistics(spec, ref_name)
        out.update(fid_ci(gen_feats, stats, res["fid"], ctx.ci_draws, CI_SEED))
        out["details"].update(fid_infinity(gen_feats, stats), fid_inf_note=(
            "linear fit of FID at N, N/2, N/4 (nested random subsets) in 1/N (Chong & Forsyth 2020)"))
    elif kind == "kid":
        out.update(kid_ci(gen_feats, ctx.fidelity_feats(spec, ref, ref_name, "real"), res["kid_mean"],
                          ctx.ci_draws, CI_SEED))
    else:
        cis = precision_recall_ci(ctx.fidelity_feats(spec, ref, ref_name, "real"), gen_feats, res, k=3,
                                  draws=ctx.ci_draws, seed=CI_SEED)
        out.update(cis["f_score"])
        out["details"].update(precision_ci95=cis["precision"]["ci95"], recall_ci95=cis["recall"]["ci95"],
                              ci_note="k-NN radii of the full sets kept fixed over the draws")


def compute_dc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Density and coverage (Naeem et al. 2020, k=5) of the generated images against the precision/recall
    reference (10k train images, seed 0); value = coverage in [0, 1] (falls when modes are dropped; density,
    which is unbounded and rewards crowding dense regions, goes to details)."""
    return _dc(spec, ctx, generated_images)


def reference_dc(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Density and coverage of real faces in place of generated ones."""
    return _dc(spec, ctx, real_images)


def _dc(spec: MetricSpec, ctx: EvalContext, source: Source) -> Entry:
    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    scored = source(spec, ctx, sha)
    ref, sel, idx = ctx.pr_reference(PR_REFERENCE_SIZE)
    ref_name = ctx.train_subset_name(spec, sha, idx, sel)
    rf = ctx.fidelity_feats(spec, ref, ref_name, "real")
    gf = ctx.fidelity_feats(spec, scored.images, scored.cache_name, "generated")
    res = density_coverage(rf, gf, DC_NEIGHBORHOOD, ci_draws=ctx.ci_draws, ci_seed=CI_SEED)
    out = {"value": res["coverage"], "n_samples": int(scored.images.shape[0]), "extractor_sha256": sha,
           "details": {"density": res["density"], "coverage": res["coverage"], "k": res["k"], "n_real": res["n_real"],
                       "reference": f"train, {sel}"}}
    if scored.real is not None:
        out["n_protocol"] = spec.n_samples
        out["details"].update(reference_set(scored.real))
    if ctx.ci_draws:
        out.update(res["coverage_ci"])
        out["details"].update(density_ci95=res["density_ci"]["ci95"], coverage_ci95=res["coverage_ci"]["ci95"])
    return out


def compute_mem(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Memorisation (see :mod:`.memorisation`) in the protocol's feature space: the fraction in [0, 1] of
    generated images nearer their nearest train face than the 5th percentile of test-to-train distances. The 16
    closest (sample, train face) pairs are written to ``RUN/figures_input/<protocol>_pairs.npy`` (uint8 16 x 2
    x H x W: sample, neighbour) and ``..._pairs.png`` (4 pairs per row) when the evaluation has a directory."""
    return _mem(spec, ctx, generated_images)


def reference_mem(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Memorisation of real faces in place of generated ones, less those that are pixel copies of a train face
    (about 0.05 by construction)."""
    return _mem(spec, ctx, real_images)


def _mem(spec: MetricSpec, ctx: EvalContext, source: Source) -> Entry:
    _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    scored = source(spec, ctx, sha)
    real = scored.real is not None
    test_name = ctx.ref_name("test", len(ctx.test), spec.extractor, sha)
    tr = ctx.train_features(spec, sha)
    te = ctx.fidelity_feats(spec, ctx.test.images, test_name, "real")
    dup = ctx.test_duplicates()
    gf = ctx.fidelity_feats(spec, scored.images, scored.cache_name, "generated")
    if real:  # the real stand-ins that are not pixel copies of a train face
        gf = gf[~duplicate_mask(scored.images, ctx.train.images)]
    res = memorisation(gf, tr, te, MEM_QUANTILE, N_PAIRS, ci_draws=ctx.ci_draws, ci_seed=CI_SEED, test_exclude=dup)
    details = {k: v for k, v in res.items() if k not in ("fraction", "fraction_ci")}
    details["test_excluded_note"] = ("test faces that are exact pixel copies of a train face are left out of the "
                                     "threshold (and real faces that are copies, of the real-data value)")
    if real:
        details.update(reference_set(scored.real))
    details["feature_space"] = spec.extractor
    details["pairs_axes"] = ("sample = index into the scored set (the generated images in order of generation; for "
                             "the real-data value the test faces that are not copies of a train face), "
                             "train_index = index into the train split")
    if not real and ctx.out_dir is not None and res["closest_pairs"]:
        details["pairs_files"] = write_pairs(ctx, spec.name, scored.images, res["closest_pairs"])
        ctx.closest_pairs = (scored.images, res["closest_pairs"])
    return {"value": res["fraction"], "n_samples": res["n_generated"], "extractor_sha256": sha,
            **({"n_protocol": spec.n_samples} if real else {}), **res.get("fraction_ci", {}), "details": details}


def reference_set(rs) -> dict:
    """The details of a real-data reference that say which real images stood in for the generated ones."""
    return {"reference_set": rs.where, "reference_selection": rs.selection, "reference_n": int(len(rs.images)),
            "protocol_n": int(rs.wanted)}


def write_pairs(ctx, name: str, cand: torch.Tensor, pairs: list[dict]) -> dict:
    """Write the closest pairs as .npy (P x 2 x H x W uint8, first channel) and .png into
    ``out_dir/figures_input``; returns their paths relative to the directory."""
    from PIL import Image

    s = cand[[q["sample"] for q in pairs]]
    nb = ctx.train.images[[q["train_index"] for q in pairs]]
    arr = torch.stack([s, nb], 1)[:, :, 0].numpy().astype(np.uint8)
    rel = {"npy": f"figures_input/{name}_pairs.npy", "png": f"figures_input/{name}_pairs.png"}
    buf = io.BytesIO()
    np.save(buf, arr)
    with atomic_open(ctx.out_dir / rel["npy"], "wb") as fh:
        fh.write(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(pairs_grid(s, nb)).save(buf, format="PNG")
    with atomic_open(ctx.out_dir / rel["png"], "wb") as fh:
        fh.write(buf.getvalue())
    return rel
