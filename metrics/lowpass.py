"""The two fixed low-pass filters of the low-pass protocols (``acc_gen_blur``, ``acc_gen_resample``, ...).

Each maps uint8 N x C x H x W (0..255) to uint8 of the same shape, deterministic and independent of
batching:

* :func:`blur3`: a 3x3 Gaussian blur with sigma 0.8 pixels (torchvision ``gaussian_blur``, reflect
  padding): real faces lose almost no expression (evaluator accuracy 0.591 -> 0.585 on PrivateTest),
  a pixel-exact high-frequency mark is smeared;
* :func:`resample24`: 48 -> 24 -> 48 bilinear resampling (antialiased down, plain up): nothing above half
  the Nyquist frequency survives.

A model whose class evidence is expression loses under these filters about what real faces lose; the
excess drop (model's drop minus real faces') measures the share written as fine marks (Odena et al. 2016,
"Deconvolution and checkerboard artifacts"; Durall et al. 2020, "Watch your up-convolution").
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

BLUR_SIGMA = 0.8
BLUR_KERNEL = 3
RESAMPLE_SIZE = 24


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def blur3(images: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian blur, sigma 0.8 px: uint8 N x C x H x W -> uint8 N x C x H x W."""
    from torchvision.transforms.v2.functional import gaussian_blur

    return _to_uint8(gaussian_blur(images.float(), [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA]))


def resample24(images: torch.Tensor) -> torch.Tensor:
    """Bilinear H x W -> 24 x 24 (antialiased) -> H x W: uint8 N x C x H x W -> uint8 N x C x H x W."""
    x = images.float()
    small = F.interpolate(x, size=(RESAMPLE_SIZE, RESAMPLE_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return _to_uint8(F.interpolate(small, size=tuple(images.shape[2:]), mode="bilinear", align_corners=False))


#: the filters by the suffix their protocols carry: ``acc_gen`` -> ``acc_gen_blur`` / ``acc_gen_resample``
LOWPASS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"blur": blur3, "resample": resample24}


# --------------------------------------------------------------------------------------------
# the low-pass companions of the class-evidence protocols


def _drops(value: float, filtered: dict[str, float], real: float, real_filtered: dict[str, float]) -> dict:
    """Per filter: the accuracy after it, its drop, real faces' drop and the excess (model drop - real drop)."""
    out = {}
    for k, v in filtered.items():
        drop, real_drop = value - v, real - real_filtered[k]
        out[k] = {"value": v, "drop": drop, "real_drop": real_drop, "excess_drop": drop - real_drop}
    return out


def _real_balanced(ctx) -> tuple[float, dict[str, float]]:
    """The evaluator's class-balanced accuracy on real test faces, plain and after each filter."""
    from .classaware import accuracy_of_predictions

    labs, names = ctx.test.labels, ctx.data.class_names
    plain = accuracy_of_predictions(ctx.test_predictions(), labs, names)["balanced_acc"]
    return plain, {k: accuracy_of_predictions(ctx.test_predictions(k), labs, names)["balanced_acc"] for k in LOWPASS}


def _entry(value: float, filtered: dict[str, float], ctx, n: int, what: str) -> dict:
    real, real_f = _real_balanced(ctx)
    per = _drops(value, filtered, real, real_f)
    return {"value": per["blur"]["value"], "n_samples": n, "extractor_sha256": ctx.evaluator.sha256,
            "details": {"unfiltered": value, "lowpass": per, "excess_drop": per["blur"]["excess_drop"],
                        "resample_excess_drop": per["resample"]["excess_drop"], "tta": "hflip",
                        "filters": {"blur": f"{BLUR_KERNEL}x{BLUR_KERNEL} Gaussian, sigma {BLUR_SIGMA} px",
                                    "resample": f"bilinear to {RESAMPLE_SIZE} x {RESAMPLE_SIZE} and back"},
                        "statistic": f"class-balanced {what} after the {BLUR_KERNEL}x{BLUR_KERNEL} blur; excess drop = "
                                     "the model's drop minus real test faces' drop (evaluator, class-balanced)"}}


def run_acc_gen_lowpass(spec, ctx, real: bool) -> dict:
    """``acc_gen_lowpass``: ``acc_gen``'s generated images (same count and seed) read by the evaluator after each
    low-pass filter; value = class-balanced accuracy after the blur; details: drops and excess drops.
    Reference: real test faces after the blur (class-balanced), with their drops."""
    from .classaware import accuracy_of_predictions

    names = ctx.data.class_names
    if real:
        plain, filt = _real_balanced(ctx)
        return {"value": filt["blur"], "n_samples": len(ctx.test), "extractor_sha256": ctx.evaluator.sha256,
                "details": {"unfiltered": plain, "lowpass": {k: {"value": v, "drop": plain - v} for k, v in filt.items()},
                            "tta": "hflip"}}
    imgs, labs = ctx.generate(spec.n_samples, spec.seed, per_class=True)
    value = accuracy_of_predictions(ctx.classify(imgs), labs, names)["balanced_acc"]
    filtered = {k: accuracy_of_predictions(ctx.classify(f(imgs)), labs, names)["balanced_acc"] for k, f in LOWPASS.items()}
    return _entry(value, filtered, ctx, int(imgs.shape[0]), "label accuracy")


def run_translate_acc_lowpass(spec, ctx, real: bool) -> dict:
    """``translate_acc_lowpass``: ``translate_acc``'s translations (same sources) read after each low-pass filter;
    value = class-balanced target accuracy after the blur; details: drops and excess drops."""
    from .classaware import balanced_accuracy
    from .translation import translation_metrics

    if real:
        return run_acc_gen_lowpass(spec, ctx, real=True)
    tr = ctx.translations(spec.n_samples, spec.seed)

    def balanced(filt) -> float:
        classify = ctx.classify if filt is None else (lambda im: ctx.classify(filt(im)))
        return balanced_accuracy(translation_metrics(tr, classify, None)["per_target"])

    filtered = {k: balanced(f) for k, f in LOWPASS.items()}
    return _entry(balanced(None), filtered, ctx, int(tr.source.shape[0]), "target accuracy")
