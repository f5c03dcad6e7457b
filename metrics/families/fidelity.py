"""Fidelity metrics through torch-fidelity 0.4.0: FID, KID, precision/recall, intra-class FID.

Nothing here computes a Fréchet distance itself: every number comes from
``torch_fidelity.calculate_metrics`` on Datasets of pre-generated uint8 images, in one of two feature
spaces:

* ``fer-evaluator`` (always available): the penultimate features of the shipped FER2013 evaluator
  (:mod:`exprbench.metrics.extractors.evaluator`), on 1 x 48 x 48 gray images at their native size.
* ``inception-v3-compat`` (the standard one, Heusel et al. 2017): 2048-d pool features of
  torch-fidelity's Inception-V3 port, on gray images repeated to 3 channels (it resizes to 299 itself).
  Only when its weights file is present (``--inception-weights PATH`` or torch's hub cache); otherwise
  the result is ``{"value": None, "status": "unavailable", "reason": ...}``. No download is ever tried.

The torch-fidelity 0.4.0 traps are handled here: inputs are Datasets (its generator wrapper draws
labels with ``np.int``, gone since NumPy 1.24); ``feature_extractor`` and the feature layers are always
set explicitly (with FID + precision/recall and no extractor it would run two extractors with one
weights path); its cache key is only the name given, so reference names carry a content hash
(:func:`reference_cache_name`); ``save_cpu_ram=True`` keeps it from starting DataLoader worker
processes; ``kid_subset_size`` is adapted to the smaller set (it asserts otherwise).

Definitions: FID (Heusel et al. 2017, eq. 6) ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` on the
features; KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel, mean and std
over random subsets; precision / recall (Kynkäänniemi et al. 2019) with k-NN (k=3) manifolds, F-score
their harmonic mean. Convention (torch-fidelity's): input1 = generated, input2 = real.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch

from exprbench.metrics.families.fidelity_inputs import (FER_EXTRACTORS, FEATURE_LAYER, INCEPTION_NAME,
    KID_SUBSET_SIZE, KID_SUBSETS, PRC_NEIGHBORHOOD, EXTRACTOR_NAME, ImageDataset, MetricInputError, check_images,
    extractor_info, fidelity_cache_root, generated_cache_name)
from exprbench.metrics.extractors.tf_extractor import register_with_fidelity


# --------------------------------------------------------------------------------------------
# the metrics


def adapted_kid_subset_size(n1: int, n2: int, preferred: int = KID_SUBSET_SIZE) -> int:
    """KID subset size: ``preferred`` (1000, Binkowski et al.), shrunk to the smaller set.

    Raises:
        MetricInputError: a set with fewer than 2 images (the unbiased MMD needs 2).
    """
    m = min(int(preferred), int(n1), int(n2))
    if m < 2:
        raise MetricInputError(f"KID needs at least 2 images per set, got {n1} and {n2}")
    return m


class _LazyProgress:
    """Per-item callback that opens a progress display on the first item (i.e. only when torch-fidelity
    really extracts features) inside ``stack``, and advances it by one per item."""

    def __init__(self, stack: contextlib.ExitStack, progress, role: str, total: int) -> None:
        self.stack, self.progress, self.role, self.total = stack, progress, role, int(total)
        self.advance = None

    @classmethod
    def hook(cls, stack, progress, role: str, total: int) -> Callable[[], None] | None:
        return None if progress is None else cls(stack, progress, role, total)

    def __call__(self) -> None:
        if self.advance is None:
            self.advance = self.stack.enter_context(self.progress(self.role, self.total))
        self.advance(1)


def fidelity_scores(
    generated: torch.Tensor,
    real: torch.Tensor,
    metrics: Sequence[str] = ("fid", "kid", "prc"),
    extractor: str = EXTRACTOR_NAME,
    evaluator_weights=None,
    inception_weights=None,
    real_cache_name: str | None = None,
    generated_cache: bool | str = False,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    prc_neighborhood: int = PRC_NEIGHBORHOOD,
    seed: int = 2020,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    cache_root: Path | None = None,
    progress: Callable[[str, int], ContextManager[Callable[[int], None]]] | None = None,
) -> dict:
    """FID, KID and precision/recall of ``generated`` against ``real`` via ``torch_fidelity.calculate_metrics``.

    Args:
        generated: uint8 N1 x {1,3} x 48 x 48 (input1).
        real: uint8 N2 x {1,3} x 48 x 48 (input2).
        metrics: any of ``fid``, ``kid``, ``prc``.
        extractor: ``fer-evaluator`` or ``inception-v3-compat``.
        evaluator_weights / inception_weights: weights paths (default: shipped evaluator / hub cache).
        real_cache_name: torch-fidelity cache name for ``real``'s features (use
            :func:`reference_cache_name`); None: not cached.
        generated_cache: True: cache ``generated``'s features under a content-hash name (temporary,
            see :func:`drop_generated_cache`); a string: cache them under that name (e.g. real test
            images used in the generated role for a real-data reference); False: no caching.
        kid_subsets, kid_subset_size: KID subsets and preferred subset size (shrunk to the smaller set).
        prc_neighborhood: k of the k-NN manifolds of precision/recall.
        seed: torch-fidelity's ``rng_seed`` (KID subsets).
        progress: optional progress display, ``progress(role, total)`` -> a context manager yielding
            ``advance(n)``; entered lazily when features of an input are actually extracted (role
            ``generated`` or ``real``), never for cached features. Does not change any number.

    Returns:
        ``{"fid": float, "kid_mean": float, "kid_std": float, "kid_subset_size": int,
        "precision": float, "recall": float, "f_score": float, "extractor": str,
        "extractor_sha256": str, "n_generated": int, "n_real": int}`` (keys of the metrics asked).
        FID and KID are in squared feature units (KID unscaled, not x1000).

    Raises:
        MetricInputError: bad images (see :func:`check_images`) or an unknown metric/extractor.
        ExtractorUnavailable: Inception weights not present.
    """
    import torch_fidelity

    register_with_fidelity()
    _check_metric_names(metrics)
    wpath, wsha = extractor_info(extractor, evaluator_weights, inception_weights)
    generated, real = _checked_sets(generated, real, extractor)
    dev = torch.device(device)
    out: dict = {"extractor": extractor, "extractor_sha256": wsha,
                 "n_generated": int(generated.shape[0]), "n_real": int(real.shape[0])}
    stack = contextlib.ExitStack()
    kwargs = dict(
        **_input_kwargs(generated, real, extractor == INCEPTION_NAME, stack, progress),
        fid="fid" in metrics, kid="kid" in metrics, prc="prc" in metrics,
        **_extractor_kwargs(extractor, wpath, dev, batch_size, cache_root),
        input1_cache_name=_generated_cache_name(generated_cache, generated, extractor, wsha),
        input2_cache_name=real_cache_name,
        rng_seed=int(seed), prc_neighborhood=int(prc_neighborhood), prc_batch_size=4096,
    )
    if "kid" in metrics:
        out["kid_subset_size"] = _set_kid_subsets(kwargs, generated, real, kid_subsets, kid_subset_size)
    if "prc" in metrics:
        _check_prc_counts(generated, real, prc_neighborhood)
    with _extraction_lock(real_cache_name, cache_root), stack, contextlib.redirect_stdout(io.StringIO()):
        res = torch_fidelity.calculate_metrics(**kwargs)
    out.update(_read_scores(res, metrics))
    return out


def _check_metric_names(metrics: Sequence[str]) -> None:
    """Refuse an empty list or a name other than ``fid``, ``kid``, ``prc`` (MetricInputError)."""
    bad = [m for m in metrics if m not in ("fid", "kid", "prc")]
    if bad or not metrics:
        raise MetricInputError(f"unknown fidelity metric(s) {bad or metrics} (known: fid, kid, prc)")


def _checked_sets(generated: torch.Tensor, real: torch.Tensor, extractor: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets checked (:func:`check_images`; 48 x 48 in the FER spaces), at least 2 images each (MetricInputError)."""
    size = (48, 48) if extractor in FER_EXTRACTORS else None
    generated = check_images(generated, "generated images", size)
    real = check_images(real, "real images", size)
    if generated.shape[0] < 2 or real.shape[0] < 2:
        raise MetricInputError(f"fidelity metrics need at least 2 images per set, got {generated.shape[0]} "
                               f"generated and {real.shape[0]} real")
    return generated, real


def _input_kwargs(generated: torch.Tensor, real: torch.Tensor, rgb: bool, stack: contextlib.ExitStack,
                  progress) -> dict:
    """torch-fidelity's ``input1`` (generated) and ``input2`` (real) Datasets, with their lazy progress displays."""
    return dict(
        input1=ImageDataset(generated, rgb, "generated images", _LazyProgress.hook(stack, progress, "generated", generated.shape[0])),
        input2=ImageDataset(real, rgb, "real images", _LazyProgress.hook(stack, progress, "real", real.shape[0])),
    )


def _extractor_kwargs(extractor: str, wpath, dev: torch.device, batch_size: int, cache_root: Path | None) -> dict:
    """torch-fidelity's extractor settings: the extractor, its feature layer for every metric, its weights, the
    device, batching, no worker processes, and the cache directory."""
    layer = FEATURE_LAYER[extractor]
    return dict(
        feature_extractor=extractor,
        feature_layer_fid=layer, feature_layer_kid=layer, feature_layer_prc=layer,
        feature_extractor_weights_path=str(wpath),
        cuda=dev.type == "cuda", batch_size=batch_size, verbose=False, save_cpu_ram=True,
        cache=True, cache_root=str(cache_root or fidelity_cache_root()),
    )


def _generated_cache_name(generated_cache: bool | str, generated: torch.Tensor, extractor: str, wsha: str) -> str | None:
    """The cache name of the generated features: the one given, a content-hash name (True) or None (False)."""
    if isinstance(generated_cache, str):
        return generated_cache
    return generated_cache_name(generated, extractor, wsha) if generated_cache else None


def _set_kid_subsets(kwargs: dict, generated: torch.Tensor, real: torch.Tensor, kid_subsets: int,
                     kid_subset_size: int) -> int:
    """Put KID's subset count and size (shrunk to the smaller set) into ``kwargs``; returns the size."""
    sub = adapted_kid_subset_size(generated.shape[0], real.shape[0], kid_subset_size)
    kwargs.update(kid_subsets=int(kid_subsets), kid_subset_size=sub)
    return sub


def _check_prc_counts(generated: torch.Tensor, real: torch.Tensor, prc_neighborhood: int) -> None:
    """Refuse precision/recall on a set of no more than ``prc_neighborhood`` (k) images (MetricInputError)."""
    if min(generated.shape[0], real.shape[0]) <= prc_neighborhood:
        raise MetricInputError(f"precision/recall with k={prc_neighborhood} needs more than {prc_neighborhood} "
                               f"images per set, got {generated.shape[0]} and {real.shape[0]}")


def _read_scores(res: dict, metrics: Sequence[str]) -> dict:
    """The values of the asked metrics from torch-fidelity's result, as floats under this module's keys."""
    import torch_fidelity

    out = {}
    if "fid" in metrics:
        out["fid"] = float(res[torch_fidelity.KEY_METRIC_FID])
    if "kid" in metrics:
        out["kid_mean"] = float(res[torch_fidelity.KEY_METRIC_KID_MEAN])
        out["kid_std"] = float(res[torch_fidelity.KEY_METRIC_KID_STD])
    if "prc" in metrics:
        out["precision"] = float(res[torch_fidelity.KEY_METRIC_PRECISION])
        out["recall"] = float(res[torch_fidelity.KEY_METRIC_RECALL])
        out["f_score"] = float(res[torch_fidelity.KEY_METRIC_F_SCORE])
    return out


def intra_class_fid(
    generated: torch.Tensor,
    generated_labels: torch.Tensor,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    class_names: Sequence[str],
    real_cache_names: Sequence[str | None] | None = None,
    **kw,
) -> dict:
    """Intra-class FID: FID per emotion of the generated images of that emotion against the real ones.

    (Miyato & Koyama 2018; Zhang et al. 2019 "intra-FID".) Every class needs at least 2 images on
    both sides.

    Args:
        generated, real: uint8 N x 1 x 48 x 48; generated_labels / real_labels: int64 N in 0..K-1.
        class_names: the K class names (keys of the result).
        real_cache_names: per-class torch-fidelity cache names of the real features (or None).
        **kw: passed to :func:`fidelity_scores` (extractor, weights, device, ...).

    Returns:
        ``{"mean": float, "per_class": {name: float}, "n_generated": {name: int}, "n_real": {name: int}}``.

    Raises:
        MetricInputError: bad images, label/image count mismatch, or a class with fewer than 2 images.
    """
    generated = check_images(generated, "generated images", None)
    real = check_images(real, "real images", None)
    for imgs, labs, what in ((generated, generated_labels, "generated"), (real, real_labels, "real")):
        if not torch.is_tensor(labs) or labs.dim() != 1 or labs.shape[0] != imgs.shape[0]:
            raise MetricInputError(f"{what} labels: expected an int64 tensor of {imgs.shape[0]} labels")
    per, ng, nr = {}, {}, {}
    for k, name in enumerate(class_names):
        g, r = generated[generated_labels.cpu() == k], real[real_labels.cpu() == k]
        if g.shape[0] < 2 or r.shape[0] < 2:
            raise MetricInputError(f"intra-class FID: class {name!r} has {g.shape[0]} generated and {r.shape[0]} "
                                   "real images (need at least 2 each)")
        cname = real_cache_names[k] if real_cache_names is not None else None
        per[name] = fidelity_scores(g, r, ("fid",), real_cache_name=cname, **kw)["fid"]
        ng[name], nr[name] = int(g.shape[0]), int(r.shape[0])
    return {"mean": float(np.mean(list(per.values()))), "per_class": per, "n_generated": ng, "n_real": nr}


def fidelity_features(
    images: torch.Tensor,
    cache_name: str | None,
    extractor: str = EXTRACTOR_NAME,
    evaluator_weights=None,
    inception_weights=None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    cache_root: Path | None = None,
    progress: Callable[[str, int], ContextManager[Callable[[int], None]]] | None = None,
    role: str = "generated",
) -> torch.Tensor:
    """The features torch-fidelity computes for ``images`` (the very tensor FID/KID/PR use), read from
    its cache when ``cache_name`` is there, else extracted through torch-fidelity and cached under it.

    Uses torch-fidelity's own ``extract_featuresdict_from_input_id_cached`` with the same extractor,
    layer and cache file names as :func:`fidelity_scores`, so a FID recomputed from these features with
    torch-fidelity's ``fid_features_to_statistics`` equals the one it reported.

    Args:
        images: uint8 N x {1,3} x 48 x 48.
        cache_name: torch-fidelity cache name (e.g. :func:`reference_cache_name`,
            :func:`generated_cache_name`); None: extract without caching.
        extractor, evaluator_weights, inception_weights, device, batch_size, cache_root: as
            :func:`fidelity_scores`.
        progress, role: progress display entered only when features are really extracted.

    Returns:
        float32 N x D features on the CPU (D: the extractor's feature layer width).

    Raises:
        MetricInputError: bad images or extractor; ExtractorUnavailable: Inception weights absent.
    """
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id_cached

    register_with_fidelity()
    wpath, _ = extractor_info(extractor, evaluator_weights, inception_weights)
    images = check_images(images, f"{role} images", (48, 48) if extractor in FER_EXTRACTORS else None)
    layer = FEATURE_LAYER[extractor]
    dev = torch.device(device)
    stack = contextlib.ExitStack()
    kwargs = dict(
        input1=ImageDataset(images, extractor == INCEPTION_NAME, f"{role} images",
                            _LazyProgress.hook(stack, progress, role, images.shape[0])),
        input1_cache_name=cache_name, feature_extractor=extractor, feature_extractor_weights_path=str(wpath),
        cuda=dev.type == "cuda", batch_size=batch_size, verbose=False, save_cpu_ram=True,
        cache=cache_name is not None, cache_root=str(cache_root or fidelity_cache_root()),
    )
    fe = create_feature_extractor(extractor, [layer], **kwargs)
    with _extraction_lock(cache_name, cache_root), stack, contextlib.redirect_stdout(io.StringIO()):
        feats = extract_featuresdict_from_input_id_cached(1, fe, **kwargs)[layer]
    return feats.float().cpu()


def cache_features(features: torch.Tensor, cache_name: str, extractor: str = EXTRACTOR_NAME,
                   cache_root: Path | None = None) -> None:
    """Store ``features`` in torch-fidelity's cache under ``cache_name``, where :func:`fidelity_features` and
    :func:`fidelity_scores` then read them instead of extracting: for a subset of images whose features are
    already there (a row selection of a cached set), so they are not extracted twice.

    Written with torch-fidelity's own cache function and file names; an existing entry is kept.

    Args:
        features: float32 N x D, rows as :func:`fidelity_features` returns them for the subset's images.
        cache_name: the subset's cache name (e.g. :func:`reference_cache_name` with its selection).
        extractor: the extractor the features come from (part of the file name).
    """
    from torch_fidelity.utils import cache_lookup_group_recompute_all_on_any_miss

    layer = FEATURE_LAYER[extractor]
    root = str(cache_root or fidelity_cache_root())
    with _extraction_lock(cache_name, cache_root):
        cache_lookup_group_recompute_all_on_any_miss(
            f"{cache_name}-{extractor}-features-", [layer], lambda: {layer: features.float().cpu().contiguous()},
            cache=True, cache_root=root, verbose=False)


def _extraction_lock(cache_name: str | None, cache_root: Path | None):
    """A filelock on ``<cache root>/<cache_name>.lock`` while features under that name are looked up or
    extracted, so processes sharing a cache (the smoke gate's two runners, two ``bench`` processes) extract
    a reference once: the second waits, then reads the first's cache. No lock without a name."""
    if cache_name is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    root = Path(cache_root or fidelity_cache_root())
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / f"{cache_name}.lock"))


def fid_from_features(generated: torch.Tensor, real_statistics: dict) -> float:
    """FID of generated features against real statistics with torch-fidelity's own functions.

    Args:
        generated: float32 N x D features; real_statistics: ``{"mu": D, "sigma": D x D}`` (float64,
            from ``torch_fidelity.metric_fid.fid_features_to_statistics``).
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats = fid_features_to_statistics(generated)
    return float(fid_statistics_to_metric(stats, real_statistics, False)[KEY_METRIC_FID])

