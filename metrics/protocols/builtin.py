"""The built-in metric protocols: one declaration each, with everything about it.

Each declaration names its family's module (``computed_in``): the module's ``compute_<family>(spec, ctx)``
gives the model's value and ``reference_<family>(spec, ctx)`` the real-data reference, both imported when
the protocol runs (listing protocols imports no torch): :mod:`.fidelity_metrics` (fid, kid, pr, dc, mem),
:mod:`.classaware` (ifid, acc_gen), :mod:`.cas`, :mod:`.encoding` (enc_acc, probe, recon), :mod:`.translation`,
:mod:`.editing`, :mod:`.likelihood`. How each is shown is its ``show=Presentation(...)``. The fidelity twins
of the realism and the evaluator feature spaces come from one loop (:data:`FEATURE_SPACES`). Adding a protocol
is one more declaration here or in a plugin module (entry-point group ``exprbench.metrics``), and one typed
function beside it.
"""

from __future__ import annotations

from dataclasses import replace

from exprbench.metrics.protocols.names import (BPD_IW_K, BPD_SEED, CAPABILITY_SEED, CAS_NAME, EDIT_SEED,
                                               EXTRACTOR_NAME, INCEPTION_NAME, MULTILAYER_NAME, PROBE_TRAIN_PER_CLASS)
from exprbench.metrics.protocols.presentation import Presentation
from exprbench.metrics.protocols.presentation import fmt
from exprbench.metrics.protocols.spec import register_metric

S, SC = frozenset({"sample"}), frozenset({"sample", "conditional"})

REAL_IN_PLACE = ("the same protocol with real faces in place of generated ones, at the protocol's count: random "
                 "PrivateTest faces, PrivateTest + PublicTest where PrivateTest has fewer; all of them where both have "
                 "fewer (count in n_samples; FID also read at the protocol's count from its 1/N fit)")
EVALUATOR_ON_TEST = "the evaluator's plain accuracy on the real test split"
EVALUATOR_BALANCED = ("the evaluator's class-balanced accuracy (mean per-class recall) on the real test split; plain "
                      "accuracy, chance and majority-class baselines in details")
TRAIN = "{what} of {n:,} {src} vs the train split ({extractor}, seed {seed})"
ABOVE_REAL = ("an accuracy above the evaluator's own class-balanced accuracy on real test faces (the reference row): "
              "class evidence read better than real expressions are, e.g. marks written for a classifier")
PR_REF = "{what} of {n:,} {src} vs {pr_ref} ({extractor}, seed {seed})"


# -- how details print (a function of the entry and of its reference entry) ---------------------
def fid_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    line = ""
    if d.get("fid_inf") is not None:
        at = ", ".join(f"{n}: {fmt(v, 4)}" for n, v in d["fid_at_n"].items())
        line = f"FID extrapolated to infinite N {fmt(d['fid_inf'], 4)} (at N: {at})"
    rd = ref.get("details") or {}
    if rd.get("at_protocol_n"):
        a = rd["at_protocol_n"]
        line += (f"{'; ' if line else ''}real data at N={ref.get('n_samples', 0):,} {fmt(ref.get('value'), 4)}, at the "
                 f"protocol's N={a['n']:,} (1/N fit) {fmt(a['value'], 4)}")
    return line


def ifid_details(e: dict, ref: dict) -> str:
    line = per_class_details(e, ref)
    counts = (ref.get("details") or {}).get("n_reference_per_class")
    if counts:
        per = (ref.get("details") or {}).get("protocol_n_per_class")
        line += (f"; real data per class ({ref['details'].get('reference_set')}, at most {per:,} each): "
                 + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
    return line


def pr_details(e: dict, ref: dict) -> str:
    d, rd = e.get("details", {}), ref.get("details", {})
    line = f"precision {d['precision']:.3f}  recall {d['recall']:.3f}  F {d['f_score']:.3f}"
    if "precision" in rd:
        line += f"   (real: precision {rd['precision']:.3f}  recall {rd['recall']:.3f})"
    return line


def dc_details(e: dict, ref: dict) -> str:
    d, rd = e.get("details", {}), ref.get("details", {})
    return (f"density {d['density']:.3f}  coverage {d['coverage']:.3f} (k={d['k']})"
            + (f"   (real: density {rd['density']:.3f}  coverage {rd['coverage']:.3f})" if "density" in rd else ""))


def mem_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    pairs = d.get("closest_pairs") or []
    return (f"threshold {fmt(d['threshold'], 3)} (5th percentile of test-to-train distances); closest pair "
            f"distance {fmt(pairs[0]['distance'], 3) if pairs else '-'}"
            + (f"; pairs in {d['pairs_files']['png']}" if d.get("pairs_files") else ""))


def reference_accuracy(ref: dict) -> str:
    """``; real data: balanced B (accuracy A; chance C; always 'happy' A_m)`` from a reference entry's details ("" if
    it has none)."""
    d = ref.get("details") or {}
    if "balanced_acc" not in d or "accuracy" not in d:
        return ""
    return (f"; real data: balanced {fmt(d['balanced_acc'], 3)} (accuracy {fmt(d['accuracy'], 3)}; chance "
            f"{fmt(d.get('chance'), 3)}; always {d.get('majority_class')!r}: accuracy {fmt(d.get('majority_acc'), 3)})")


def accuracy_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    if "majority_acc" not in d:
        return per_class_details(e, ref)
    plain = f"  accuracy {fmt(d['accuracy'], 3)}" if d.get("accuracy") is not None else ""
    return (f"balanced accuracy {fmt(d['balanced_acc'], 3)}{plain}  (chance {fmt(d['chance'], 3)}; always "
            f"{d['majority_class']!r}: accuracy {fmt(d['majority_acc'], 3)}, balanced {fmt(d['majority_balanced_acc'], 3)})"
            + (f"; ratio to the real-data baseline {fmt(d['ratio_to_real'], 3)}" if d.get("ratio_to_real") else "")
            + (f"; mean of {len(d['classifier_seeds'])} classifier seeds, sd {fmt(d['seed_sd'], 3)}"
               if len(d.get("classifier_seeds") or ()) > 1 else "")
            + reference_accuracy(ref)
            + ("; per class: " + "  ".join(f"{k} {fmt(v, 3)}" for k, v in d["per_class"].items())
               if d.get("per_class") else ""))


def per_class_details(e: dict, ref: dict) -> str:
    return "  ".join(f"{k} {fmt(v, 3)}" for k, v in (e.get("details", {}).get("per_class") or {}).items())


def recon_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    return f"SSIM {fmt(d['ssim'], 3)}  evaluator label agreement {fmt(d['label_agreement'], 3)}"


def translate_acc_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    plain = f"plain accuracy over pairs {fmt(d['accuracy'], 3)}; " if d.get("accuracy") is not None else ""
    return (f"{plain}identity L1 {fmt(d['identity_l1'], 3)}  SSIM {fmt(d['identity_ssim'], 3)}  feature distance "
            f"{fmt(d['feature_distance'], 3)}  own-emotion L1 {fmt(d['self_l1'], 3)}" + reference_accuracy(ref))


def per_target_details(e: dict, ref: dict) -> str:
    return "  ".join(f"{k} {fmt(v, 3)}" for k, v in (e.get("details", {}).get("per_target") or {}).items())


def edit_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    a = d["at_reference"]
    return (f"at strength {d['reference_strength']:g}: identity L1 {fmt(a['l1'], 3)}  SSIM {fmt(a['ssim'], 3)}  "
            f"feature distance {fmt(a['feat_dist'], 3)}  entanglement {fmt(a['entanglement'], 3)}"
            + reference_accuracy(ref))


def bpd_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    return f"{d['kind']}" + (f"; IWAE bound (K={d['iw_k']}) {fmt(d['iw_bpd'], 4)}" if d.get("iw_bpd") is not None else "")


# -- fidelity to the training faces, in two feature spaces (generated images against the train split) -------
#: the feature spaces of the twins, in registration order (extractor, name suffix): the realism space first
#: (pooled features of every evaluator stage, metrics/extractors/multilayer.py), then the evaluator's
FEATURE_SPACES = ((MULTILAYER_NAME, "_ml"), (EXTRACTOR_NAME, ""))
FIDELITY = "exprbench.metrics.families.fidelity_metrics"  # compute_<family> and reference_<family> of the twins
MEM_REFERENCE = "real test faces (not pixel copies of a train face) scored as samples: about 0.05 by construction"

#: per family, what both spaces declare (the name pattern without the space's suffix)
TWINS = {
    "fid": dict(direction="lower", reference=REAL_IN_PLACE, min_samples=2, name_pattern="fid{n}_train",
                show=Presentation(table="fidelity", details=fid_details, what=TRAIN.replace("{what}", "FID"),
                                  ranks_samples=True)),
    "kid": dict(direction="lower", reference=REAL_IN_PLACE, min_samples=2, name_pattern="kid{n}_train",
                show=Presentation(table="fidelity", details=fid_details, what=TRAIN.replace("{what}", "KID"))),
    "pr": dict(direction="higher", reference=REAL_IN_PLACE, min_samples=4, name_pattern="pr{n}_train",
               show=Presentation(table="fidelity", derived={"precision": "higher", "recall": "higher"},
                                 details=pr_details, display="F", what=PR_REF.replace("{what}", "precision/recall"),
                                 column_order=("precision", "recall", None))),
    "dc": dict(direction="higher", reference=REAL_IN_PLACE, min_samples=2, name_pattern="dc{n}_train",
               show=Presentation(table="coverage", derived={"density": "higher"}, details=dc_details, display="COVERAGE",
                                 what=PR_REF.replace("{what}", "density/coverage (k=5)"))),
    "mem": dict(direction="lower", reference=MEM_REFERENCE, min_samples=2, name_pattern="mem{n}_train",
                show=Presentation(table="coverage", details=mem_details, display="MEMORISED",
                                  what=TRAIN.replace("{what}", "memorisation (nearest train face)"))),
}
#: per space and family, the one line of ``exprbench metrics``
TWIN_SUMMARIES = {
    MULTILAYER_NAME: {
        "fid": "FID in the realism space (fer-multilayer: pooled features of every evaluator stage), 10k generated vs "
               "the full train split",
        "kid": "KID mean/std over 100 subsets (fer-multilayer), 10k generated vs train",
        "pr": "precision/recall (k=3, fer-multilayer), 10k generated vs 10k train; value = F-score",
        "dc": "density/coverage (Naeem et al. 2020, k=5, fer-multilayer); value = coverage",
        "mem": "memorisation in the realism space (fer-multilayer): fraction of generated closer to their nearest train "
               "face than the 5th percentile of test-to-train distances; real data ~ 0.05",
    },
    EXTRACTOR_NAME: {
        "fid": "FID (fer-evaluator features), 10k generated vs the full train split",
        "kid": "KID mean/std over 100 subsets (fer-evaluator), 10k generated vs train",
        "pr": "precision/recall (k=3, fer-evaluator), 10k generated vs 10k train; value = F-score",
        "dc": "density/coverage (Naeem et al. 2020, k=5 balls on 10k train features, fer-evaluator); value = coverage, "
              "density in details",
        "mem": "memorisation: fraction of generated closer to their nearest train face than the 5th percentile of "
               "test-to-train distances (fer-evaluator); real data ~ 0.05",
    },
}
#: the figure inputs, written by the evaluator space's protocols
TWIN_FIGURES = {EXTRACTOR_NAME: {"fid": "samples", "mem": "closest_pairs"}}


for _extractor, _suffix in FEATURE_SPACES:
    for _family, _decl in TWINS.items():
        _pattern = _decl["name_pattern"] + _suffix
        _show = replace(_decl["show"], figure=TWIN_FIGURES.get(_extractor, {}).get(_family))
        register_metric(**_decl | dict(name_pattern=_pattern, show=_show), name=_pattern.format(n="10k"),
                        family=_family, computed_in=FIDELITY, needs=S, n_samples=10000, seed=0, extractor=_extractor,
                        summary=TWIN_SUMMARIES[_extractor][_family])


# -- class-aware generation --------------------------------------------------------------------
register_metric(name="acc_gen", computed_in="exprbench.metrics.families.classaware",
                needs=SC, n_samples=3500, seed=2, compared_with="test", direction="higher",
                reference=EVALUATOR_BALANCED, per_class=True, family="acc_gen", name_pattern="acc_gen{n}",
                summary="label accuracy (GAN-test): n/K per emotion classified by the evaluator (hflip TTA)",
                show=Presentation(table="class_aware", details=accuracy_details, accuracy=True, confusion=True,
                                  what="evaluator label accuracy on {per:,} {src} per emotion (seed {seed})",
                                  flag_above={None: "reference"}, flag_note=ABOVE_REAL))


register_metric(name="cas", computed_in="exprbench.metrics.families.cas",
                needs=SC, n_samples=7000, seed=3, extractor=CAS_NAME, compared_with="test",
                direction="higher", uses=(CAS_NAME,),
                reference="the CAS recipe trained on as many real train images (class-balanced); its class-balanced "
                          "test accuracy", per_class=True, min_samples=20, name_pattern="cas{n}",
                show=Presentation(table="class_aware", details=accuracy_details, accuracy=True,
                                  what="CAS: fresh classifiers trained on {per_total:,} {src}, tested on real test "
                                       "images (seed {seed})"),
                summary="Classification Accuracy Score: fresh classifiers trained on n generated, tested on real test; "
                        "value = class-balanced accuracy (mean per-class recall), mean over 3 classifier seeds (1 "
                        "under 1,000 images); interval: test-face bootstrap widened by the seed spread; plain "
                        "accuracy in details")


register_metric(name="ifid_train", computed_in="exprbench.metrics.families.classaware",
                needs=SC, n_samples=10000, seed=1, direction="lower", reference=REAL_IN_PLACE,
                per_class=True, min_samples=2, name_pattern="ifid{n}_train",
                show=Presentation(table="class_aware", details=ifid_details,
                                  what="intra-class FID, {per:,} {src} per emotion vs that emotion's train images "
                                       "(seed {seed})"),
                summary="intra-class FID: per emotion, n/K generated vs that emotion's train images; mean")


# -- the same with Inception-V3 features (when its weights are present) --------------------------
register_metric(name="fid10k_train_inception", computed_in=FIDELITY,
                **TWINS["fid"] | dict(name_pattern="fid{n}_train_inception",
                                      show=replace(TWINS["fid"]["show"], ranks_samples=False)),
                needs=S, n_samples=10000, seed=0, extractor=INCEPTION_NAME, uses=(INCEPTION_NAME,),
                summary="FID with Inception-V3 (torch-fidelity inception-v3-compat) when its weights are present")


register_metric(name="kid10k_train_inception", computed_in=FIDELITY,
                **TWINS["kid"] | dict(name_pattern="kid{n}_train_inception"), needs=S, n_samples=10000, seed=0,
                extractor=INCEPTION_NAME, default=False, uses=(INCEPTION_NAME,),
                summary="KID with Inception-V3 when its weights are present")


# -- encoders (real test images through the model's encoder) -------------------------------------
_test = dict(n_samples=700, seed=CAPABILITY_SEED, compared_with="test")


register_metric(name="enc_acc_test", computed_in="exprbench.metrics.families.encoding",
                needs={"encode", "conditional"}, **_test, extractor="model-encoder", direction="higher",
                reference=EVALUATOR_ON_TEST, family="enc_acc", name_pattern="enc_acc{n}_test",
                show=Presentation(table="encoder", details=per_class_details, accuracy=True),
                summary="encoder label accuracy: argmax E_c(x) on n real test images (reference: the evaluator's "
                        "accuracy)")


register_metric(name="probe_test", computed_in="exprbench.metrics.families.encoding",
                needs={"encode"}, **_test, extractor="model-encoder", direction="higher",
                no_reference="the probe measures the model's own encoder features", uses=(), name_pattern="probe{n}_test",
                show=Presentation(table="encoder", details=per_class_details, accuracy=True),
                summary=f"linear probe: logistic regression on E(x) of <= {PROBE_TRAIN_PER_CLASS}/class train images, "
                        "accuracy on n test images")


register_metric(name="recon_test", computed_in="exprbench.metrics.families.encoding",
                needs={"encode"}, **_test, direction="lower",
                no_reference="reconstructing real x by itself would give L1 = 0", family="recon_l1",
                name_pattern="recon{n}_test",
                show=Presentation(table="encoder", derived={"ssim": "higher"}, details=recon_details, display="RECON_L1"),
                summary="reconstruction: mean L1 of x vs G(E(x)) on n test images ([0, 1] scale, lower is better); "
                        "SSIM, evaluator label agreement")


# -- translation of real test faces ---------------------------------------------------------------
register_metric(name="translate_acc_test", computed_in="exprbench.metrics.families.translation",
                needs={"translate"}, **_test, direction="higher", reference=EVALUATOR_BALANCED,
                per_class=True, family="translate_acc", name_pattern="translate_acc{n}_test",
                summary="translation target accuracy: n test faces to every other emotion, read by the evaluator; "
                        "pair matrix, identity L1/SSIM/feature distance",
                show=Presentation(table="translation", derived={"identity_l1": "lower", "identity_ssim": "higher"},
                                  details=translate_acc_details, accuracy=True, figure="translations",
                                  flag_above={None: "reference"}, flag_note=ABOVE_REAL))


register_metric(name="translate_fid_test", computed_in="exprbench.metrics.families.translation",
                needs={"translate"}, n_samples=700, seed=CAPABILITY_SEED, direction="lower",
                no_reference="real faces of the source emotion are not translations", per_class=True,
                family="translate_fid", name_pattern="translate_fid{n}_test",
                show=Presentation(table="translation", details=per_target_details),
                summary="translation FID: per target emotion, translations of n test faces vs that emotion's train "
                        "images (fer-evaluator); mean over targets")


# -- editing and likelihood -------------------------------------------------------------------------
register_metric(name="edit_success", computed_in="exprbench.metrics.families.editing",
                needs={"edit"}, n_samples=350, seed=EDIT_SEED, compared_with="generated", direction="higher",
                reference=EVALUATOR_BALANCED, family="edit", name_pattern="edit_success{n}",
                summary="editing: n sampled latents edited toward every emotion over the model's strength sweep; "
                        "evaluator success at the reference strength (mean over emotions), identity drift, entanglement",
                show=Presentation(table="editing", accuracy=True, details=edit_details, figure="edits", sweep=True,
                                  derived={"identity_l1": "lower", "identity_ssim": "higher", "feature_distance": "lower",
                                           "entanglement": "lower"},
                                  column_order=(None, "entanglement", "feature_distance", "identity_l1", "identity_ssim")))


register_metric(name="bpd_test", computed_in="exprbench.metrics.families.likelihood",
                needs={"likelihood"}, n_samples=3589, seed=BPD_SEED, extractor="model-likelihood",
                compared_with="test", direction="lower", uses=(),
                no_reference="bits/dim is the model's own density of real images", name_pattern="bpd{n}_test",
                summary=f"bits/dim of n real test images (exact for flows, ELBO bound for VAEs, plus the IWAE bound "
                        f"with K={BPD_IW_K}); lower is better",
                show=Presentation(table="likelihood", derived={"iw_bpd": "lower"}, details=bpd_details,
                                  kind_key=("exact", "bpd_kind", "bpd kind", "exact", "bound")))
