"""The low-pass companions of the class-evidence protocols (``acc_gen_lowpass``, ``translate_acc_lowpass``): the
same images read by the evaluator after each filter of :mod:`.lowpass`, with the drop and the excess drop over
real test faces' drop (the share of class evidence written as fine marks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from exprbench.metrics.families.lowpass import BLUR_KERNEL, BLUR_SIGMA, LOWPASS, RESAMPLE_SIZE

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


def _drops(value: float, filtered: dict[str, float], real: float, real_filtered: dict[str, float]) -> dict:
    """Per filter: the accuracy after it, its drop, real faces' drop and the excess (model drop - real drop)."""
    out = {}
    for k, v in filtered.items():
        drop, real_drop = value - v, real - real_filtered[k]
        out[k] = {"value": v, "drop": drop, "real_drop": real_drop, "excess_drop": drop - real_drop}
    return out


def _real_balanced(ctx: EvalContext) -> tuple[float, dict[str, float]]:
    """The evaluator's class-balanced accuracy on real test faces, plain and after each filter."""
    from exprbench.metrics.families.classaware import accuracy_of_predictions

    labs, names = ctx.test.labels, ctx.data.class_names
    plain = accuracy_of_predictions(ctx.test_predictions(), labs, names)["balanced_acc"]
    return plain, {k: accuracy_of_predictions(ctx.test_predictions(k), labs, names)["balanced_acc"] for k in LOWPASS}


def _entry(value: float, filtered: dict[str, float], ctx: EvalContext, n: int, what: str) -> Entry:
    real, real_f = _real_balanced(ctx)
    per = _drops(value, filtered, real, real_f)
    return {"value": per["blur"]["value"], "n_samples": n, "extractor_sha256": ctx.evaluator.sha256,
            "details": {"unfiltered": value, "lowpass": per, "excess_drop": per["blur"]["excess_drop"],
                        "resample_excess_drop": per["resample"]["excess_drop"], "tta": "hflip",
                        "filters": {"blur": f"{BLUR_KERNEL}x{BLUR_KERNEL} Gaussian, sigma {BLUR_SIGMA} px",
                                    "resample": f"bilinear to {RESAMPLE_SIZE} x {RESAMPLE_SIZE} and back"},
                        "statistic": f"class-balanced {what} after the {BLUR_KERNEL}x{BLUR_KERNEL} blur; excess drop = "
                                     "the model's drop minus real test faces' drop (evaluator, class-balanced)"}}


def compute_acc_gen_lowpass(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``acc_gen_lowpass``: ``acc_gen``'s generated images (same count and seed) read by the evaluator after each
    low-pass filter; value = class-balanced accuracy in [0, 1] after the blur; details: drops and excess drops."""
    from exprbench.metrics.families.classaware import accuracy_of_predictions

    names = ctx.data.class_names
    imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    value = accuracy_of_predictions(ctx.classify(imgs), labs, names)["balanced_acc"]
    filtered = {k: accuracy_of_predictions(ctx.classify(f(imgs)), labs, names)["balanced_acc"] for k, f in LOWPASS.items()}
    return _entry(value, filtered, ctx, int(imgs.shape[0]), "label accuracy")


def reference_acc_gen_lowpass(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """The reference of both low-pass protocols: the evaluator's class-balanced accuracy on real test faces after
    the blur, with their drops."""
    plain, filt = _real_balanced(ctx)
    return {"value": filt["blur"], "n_samples": len(ctx.test), "extractor_sha256": ctx.evaluator.sha256,
            "details": {"unfiltered": plain, "lowpass": {k: {"value": v, "drop": plain - v} for k, v in filt.items()},
                        "tta": "hflip"}}


def compute_translate_acc_lowpass(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``translate_acc_lowpass``: ``translate_acc``'s translations (same sources) read after each low-pass filter;
    value = class-balanced target accuracy in [0, 1] after the blur; details: drops and excess drops."""
    from exprbench.metrics.families.classaware import balanced_accuracy
    from exprbench.metrics.families.translation import translation_metrics

    tr = ctx.translations(spec.n_samples, spec.seed)

    def balanced(filt) -> float:
        classify = ctx.classify if filt is None else (lambda im: ctx.classify(filt(im)))
        return balanced_accuracy(translation_metrics(tr, classify, None)["per_target"])

    filtered = {k: balanced(f) for k, f in LOWPASS.items()}
    return _entry(balanced(None), filtered, ctx, int(tr.source.shape[0]), "target accuracy")


reference_translate_acc_lowpass = reference_acc_gen_lowpass  # the same real test faces after the same filters
