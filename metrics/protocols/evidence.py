"""Built-in protocols that show how a model earns its class evidence: the spectral footprint of its samples,
the low-pass companions of the class-evidence protocols (``acc_gen``, ``translate_acc``) and the response of
its samples to c. Declared like :mod:`.builtin` (one declaration each; the computation in :mod:`.spectral`,
:mod:`.class_evidence`, :mod:`.conditioning` and :mod:`.transplant`)."""

from __future__ import annotations

from exprbench.metrics.protocols.names import CAPABILITY_SEED
from exprbench.metrics.protocols.presentation import Presentation
from exprbench.metrics.protocols.presentation import fmt
from exprbench.metrics.protocols.spec import register_metric

S, SC = frozenset({"sample"}), frozenset({"sample", "conditional"})


# -- how class evidence is earned: the spectral footprint and the low-pass companions -------------
def spectral_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    return (f"ratios to train faces: checker {fmt(d['checker_ratio'], 3)}  period-2 rows/columns {fmt(d['rowcol_ratio'], 3)}  "
            f"above 2/3 Nyquist {fmt(d['high_ratio'], 3)}; radial spectrum distance {fmt(d['radial_db'], 3)} dB")


def lowpass_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    parts = [f"{k}: {fmt(v['value'], 3)} (drop {fmt(v['drop'], 3)}, real faces {fmt(v['real_drop'], 3)}, excess "
             f"{fmt(v['excess_drop'], 3)})" for k, v in (d.get("lowpass") or {}).items() if "excess_drop" in v]
    return f"unfiltered {fmt(d.get('unfiltered'), 3)}; " + "; ".join(parts) if parts else ""


_LOWPASS_SHOW = dict(derived={"excess_drop": "lower", "resample_excess_drop": "lower"},
                     flag_above={"excess_drop": 0.05, "resample_excess_drop": 0.05},
                     flag_note="an excess drop above 0.05: the class evidence does not survive a low-pass filter that "
                               "real faces' expressions survive")
_LOWPASS_NOTE = ("after a 3x3 Gaussian blur (sigma 0.8) and after 48 -> 24 -> 48 resampling; excess drop = the drop "
                 "minus real test faces' drop")


register_metric(name="spectral", computed_in="exprbench.metrics.families.spectral",
                needs=S, n_samples=10000, seed=0, direction="lower", extractor="pixel-fft", uses=(),
                reference="the real test faces' spectrum against the train faces': ratios about 1", min_samples=2,
                family="spectral", name_pattern="spectral{n}",
                show=Presentation(table="fidelity", derived={"radial_db": "lower"},
                                  display="CHECKER",  # the other ratios (ideal 1) stay in details
                                  details=spectral_details,
                                  what="spectral footprint of {n:,} {src} vs the train split's mean power spectrum "
                                       "(seed {seed})"),
                summary="spectral footprint (Durall et al. 2020): power share at the period-2 checkerboard frequency as "
                        "a ratio to train faces' (value), period-2 rows/columns and above-2/3-Nyquist ratios, radial "
                        "log-spectrum distance in dB")


register_metric(name="acc_gen_lowpass", computed_in="exprbench.metrics.families.class_evidence",
                needs=SC, n_samples=3500, seed=2, compared_with="test", direction="higher",
                reference="the evaluator's class-balanced accuracy on blurred real test faces", per_class=True,
                family="acc_gen_lowpass", name_pattern="acc_gen{n}_lowpass",
                show=Presentation(table="class_aware", accuracy=True, details=lowpass_details, **_LOWPASS_SHOW,
                                  what="acc_gen's {per:,} {src} per emotion (seed {seed}) read " + _LOWPASS_NOTE),
                summary="low-pass acc_gen: acc_gen's images after a 3x3 blur (value) and 48->24->48 resampling; "
                        "excess drop over real faces' drop (class evidence written as fine marks)")


register_metric(name="translate_acc_lowpass_test", computed_in="exprbench.metrics.families.class_evidence",
                needs={"translate"}, n_samples=700, seed=CAPABILITY_SEED, compared_with="test", direction="higher",
                reference="the evaluator's class-balanced accuracy on blurred real test faces",
                per_class=True, family="translate_acc_lowpass", name_pattern="translate_acc{n}_lowpass_test",
                show=Presentation(table="translation", accuracy=True, details=lowpass_details, **_LOWPASS_SHOW),
                summary="low-pass translate_acc: its translations after a 3x3 blur (value) and 48->24->48 resampling; "
                        "excess drop over real faces' drop")


register_metric(name="c_response", computed_in="exprbench.metrics.families.conditioning",
                needs=SC, n_samples=700, seed=5, direction="higher", extractor="pixels", uses=(),
                no_reference="real faces have no latent to hold fixed", family="c_response", name_pattern="c_response{n}",
                default=False, reads_latents=True,
                show=Presentation(table="class_aware", display="C_RESPONSE",
                                  what="L1 response of {n:,} samples to c (same z) relative to z (same c), seed {seed}"),
                summary="conditioning strength: mean L1 change of a sample when only c changes, divided by the change "
                        "when only z changes (0 = c ignored; the cGAN about 0.27)")


def transplant_details(e: dict, ref: dict) -> str:
    d = e.get("details", {})
    per = "  ".join(f"{k} {fmt(v, 2)}" for k, v in (d.get("per_class") or {}).items())
    excess = f"; excess over real faces' layer {fmt(d['excess'], 3)}" if "excess" in d else ""
    return f"per class: {per}{excess}" if per else ""


register_metric(name="transplant", computed_in="exprbench.metrics.families.transplant",
                needs=SC, n_samples=3500, seed=2, compared_with="test", direction="lower",
                reference="real class-k train faces' own high-frequency layer on the same blurred test faces",
                family="transplant", name_pattern="transplant{n}", per_class=True, min_samples=2,
                show=Presentation(table="class_aware", details=transplant_details, derived={"excess": "lower"},
                                  flag_above={"excess": 0.05},
                                  flag_note="a model's fine detail alone moves blurred real faces to its class more "
                                            "than real faces' detail does (excess above 0.05): class evidence "
                                            "written as marks",
                                  what="share of {per:,} blurred real test faces read as k after adding the "
                                       "high-frequency layer of a class-k sample (acc_gen's images, seed {seed}), "
                                       "mean over emotions"),
                summary="fine-detail transplant: class-k samples' high-frequency layer (image minus 3x3 blur) added to "
                        "blurred real faces, share read as k (value), excess over real class-k faces' layer")
