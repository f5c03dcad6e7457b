"""The fine-detail transplant check (``transplant``): does a model's fine detail alone carry its class?

For each class k, the high-frequency layer of the model's class-k samples (image minus its 3x3 blur,
:func:`~.lowpass.blur3`) is added to blurred real test faces, and the evaluator reads the share of those
composites as k. The same with real class-k train faces' own layer is the reference: a model whose class
evidence is expression moves blurred faces toward k about as much as real faces' detail does; one that writes
pixel marks C reads (Odena et al. 2016; the issue "Class evidence that survives a blur") moves them more.
Measured with the old evaluator: ``acgan-default-s2``'s "neutral" layer turned 54% of blurred real faces
"neutral" (16% without a layer, 33% with real neutral faces' layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from exprbench.metrics.families.lowpass import blur3

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext

BASE_SEED = 11  # the blurred real test faces the layers are added to (a fixed subset, natural class mix)


def high_frequency_layer(images: torch.Tensor) -> torch.Tensor:
    """``images - blur3(images)``: uint8 N x C x H x W (0..255) -> float32 N x C x H x W, values in [-255, 255]."""
    return images.float() - blur3(images).float()


def transplant_shares(layers: torch.Tensor, layer_labels: torch.Tensor, bases: torch.Tensor, classify, k: int) -> list[float]:
    """Per class j < ``k``: the share of composites ``clamp(base + layer)`` read as j, layers of class j paired in
    order with ``bases`` (cycled when there are fewer layers than bases).

    Args:
        layers: float32 M x C x H x W high-frequency layers; layer_labels: int64 M, their classes.
        bases: uint8 B x C x H x W blurred real faces; classify: uint8 images -> int64 class indices.
    Raises:
        ValueError: a class without layers.
    """
    shares = []
    for j in range(k):
        lj = layers[layer_labels.cpu() == j]
        if len(lj) == 0:
            raise ValueError(f"class {j} has no images to take a high-frequency layer from")
        idx = torch.arange(len(bases)) % len(lj)
        comp = (bases.float() + lj[idx]).round().clamp(0, 255).to(torch.uint8)
        shares.append(float((classify(comp) == j).float().mean()))
    return shares


def compute_transplant(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``transplant``: mean over classes of the share in [0, 1] of blurred real test faces read as k after adding the
    high-frequency layer of a class-k sample (``spec.n_samples`` samples, ``acc_gen``'s images when count and
    seed agree); bases: ``n_samples // K`` test faces (seed :data:`BASE_SEED`), blurred. Details: per-class
    shares, the share read as k with no layer, real faces' layer (:func:`reference_transplant`) and ``excess`` =
    value - reference."""
    n = max(1, spec.n_samples // ctx.k) * ctx.k

    def shares_of(bases: torch.Tensor) -> list[float]:  # drawn after the bases and the reference, as ever
        imgs, labs = ctx.generate(n, spec.seed, per_class=True)
        return transplant_shares(high_frequency_layer(imgs), labs, bases, ctx.classify, ctx.k)

    return _transplant(spec, ctx, shares_of, n)


def reference_transplant(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``transplant`` with real class-k train faces' layers (``n_samples // K`` a class) in place of samples'."""
    return _transplant(spec, ctx, None, max(1, spec.n_samples // ctx.k) * ctx.k)


def _transplant(spec: MetricSpec, ctx: EvalContext, shares_of: Callable[[torch.Tensor], list[float]] | None,
                n: int) -> Entry:
    """The entry of the shares ``shares_of(blurred bases)`` gives over ``n`` layers (None: real faces' layers, the
    reference itself)."""
    k, names = ctx.k, ctx.data.class_names
    per = max(1, spec.n_samples // k)
    bases_raw, _ = ctx.test_subset(per, BASE_SEED)
    bases = ctx.memo(("transplant_bases", per), lambda: blur3(bases_raw))
    none = ctx.memo(("transplant_none", per), lambda: torch.bincount(ctx.classify(bases), minlength=k).float() / len(bases))

    def real_shares() -> list[float]:
        imgs, labs = ctx.probe_train(per, spec.seed)
        return transplant_shares(high_frequency_layer(imgs), labs, bases, ctx.classify, k)

    ref = ctx.memo(("transplant_real", per, spec.seed), real_shares)
    shares = ref if shares_of is None else shares_of(bases)
    value, ref_value = sum(shares) / k, sum(ref) / k
    details = {"per_class": dict(zip(names, shares)), "no_layer": dict(zip(names, none.tolist())),
               "bases": len(bases), "tta": "hflip",
               "statistic": "share of blurred real test faces read as k after adding a class-k image's layer "
                            "(image minus its 3x3 Gaussian blur, sigma 0.8), mean over classes"}
    if shares_of is not None:
        details |= {"real_layer": dict(zip(names, ref)), "excess": value - ref_value}
    return {"value": value, "n_samples": n, "extractor_sha256": ctx.evaluator.sha256, "details": details}
