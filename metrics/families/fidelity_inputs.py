"""Inputs and caches of the torch-fidelity adapter: image checks, the Dataset it reads, feature-extractor
weights (the shipped evaluator, Inception-V3 when present: no download is ever tried) and the cache names
(reference names carry a content hash; generated-set names are dropped after an evaluation)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch.utils.data import Dataset

from exprbench.data import cache_dir
from exprbench.core.errors import UserError
from exprbench.core.io import content_key

from exprbench.metrics.protocols.names import EXTRACTOR_NAME
from exprbench.metrics.extractors.evaluator_net import FEATURE_PENULTIMATE
from exprbench.core.io import file_sha256
from exprbench.metrics.extractors.evaluator import resolve_weights
from exprbench.metrics.protocols.names import INCEPTION_NAME, MULTILAYER_NAME

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
EXTRACTORS = (EXTRACTOR_NAME, MULTILAYER_NAME, INCEPTION_NAME)
FER_EXTRACTORS = (EXTRACTOR_NAME, MULTILAYER_NAME)  # read 48 x 48 faces with the evaluator's weights
FEATURE_LAYER = {EXTRACTOR_NAME: FEATURE_PENULTIMATE, MULTILAYER_NAME: "multilayer", INCEPTION_NAME: "2048"}
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
PRC_NEIGHBORHOOD = 3
CACHE_VERSION = 2  # 2: keyed by the decoded content (FaceDataset.content_sha256), no longer the data file
PREPROCESS_VERSION = 1  # how the metrics feed images to a network: uint8 at native size, gray repeated for RGB


class MetricInputError(UserError):
    """Images a metric cannot take: wrong type, dtype, shape or value range, or an empty set."""


class ExtractorUnavailable(Exception):
    """A feature extractor whose weights are not present (the metric is reported as unavailable)."""


# --------------------------------------------------------------------------------------------
# inputs


def check_images(images, what: str = "images", size: tuple[int, int] | None = (48, 48)) -> torch.Tensor:
    """Validate a set of images for the metrics and return it (on the CPU).

    Args:
        images: uint8 tensor N x C x H x W with C in {1, 3}, values 0..255 (generated images go through
            :func:`exprbench.data.to_uint8` first, exactly like the real ones).
        what: a name for messages ("generated images", ...).
        size: required (H, W), or None for any size.

    Raises:
        MetricInputError: not a tensor; float images (with a hint whether they are in [-1, 1]);
            integers of another dtype or outside 0..255; not 4-D; C not 1 or 3; wrong size; empty.
    """
    if not torch.is_tensor(images):
        raise MetricInputError(f"{what}: expected a uint8 torch.Tensor N x C x H x W, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        if images.is_floating_point():
            if images.numel() and (float(images.min()) < -1.0 or float(images.max()) > 1.0):
                lo, hi = float(images.min()), float(images.max())
                raise MetricInputError(
                    f"{what}: float images with values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]; the metrics "
                    "take uint8 images in 0..255 (float images in [-1, 1] go through exprbench.data.to_uint8)")
            raise MetricInputError(f"{what}: got dtype {images.dtype}; the metrics take uint8 images in 0..255: "
                                   "convert float images in [-1, 1] with exprbench.data.to_uint8")
        if images.numel() and (int(images.min()) < 0 or int(images.max()) > 255):
            raise MetricInputError(f"{what}: dtype {images.dtype} with values outside 0..255; expected uint8 images")
        raise MetricInputError(f"{what}: got dtype {images.dtype}; expected uint8 (cast with .to(torch.uint8))")
    if images.dim() != 4:
        raise MetricInputError(f"{what}: expected a 4-D tensor N x C x H x W, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise MetricInputError(f"{what}: empty set (0 images)")
    if images.shape[1] not in (1, 3):
        raise MetricInputError(f"{what}: expected 1 (gray) or 3 channels, got shape {tuple(images.shape)}")
    if size is not None and tuple(images.shape[2:]) != tuple(size):
        raise MetricInputError(f"{what}: expected {size[0]}x{size[1]} images, got shape {tuple(images.shape)} "
                               "(never resize before evaluation)")
    return images.cpu()


class ImageDataset(Dataset):
    """A torch Dataset over a uint8 tensor N x C x H x W, for torch-fidelity's ``input1`` / ``input2``.

    Args:
        images: uint8 N x {1,3} x H x W (checked with :func:`check_images`).
        rgb: return 3-channel items (gray repeated) for extractors that need RGB (Inception).
        on_item: called once per item fetched (progress display; torch-fidelity fetches items only
            when it extracts features, never when they are cached).

    Items are uint8 C x H x W tensors.
    """

    def __init__(self, images: torch.Tensor, rgb: bool = False, what: str = "images",
                 on_item: Callable[[], None] | None = None) -> None:
        self.images = check_images(images, what, size=None).contiguous()
        self.rgb = rgb
        self.on_item = on_item

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.on_item is not None:
            self.on_item()
        x = self.images[i]
        if self.rgb and x.shape[0] == 1:
            x = x.expand(3, -1, -1).contiguous()
        return x


def tensor_sha256(images: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and bytes (content hash for cache names)."""
    t = images.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}|".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# extractors


def inception_weights_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """Where Inception-V3 weights are, without ever downloading: ``explicit``, else torch's hub cache.

    Returns None when no weights file is present.

    Raises:
        MetricInputError: an explicit path that does not exist.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise MetricInputError(f"--inception-weights {p}: no such file (get it from {INCEPTION_URL})")
        return p
    p = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return p if p.is_file() else None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_file_sha(p: Path) -> str:
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(p)
    return _SHA_CACHE[key]


def extractor_info(extractor: str, evaluator_weights=None, inception_weights=None) -> tuple[Path, str]:
    """``(weights path, weights sha256)`` of a feature extractor.

    Raises:
        ExtractorUnavailable: Inception weights are absent (the reason is the message).
        MetricInputError: unknown extractor name, or an explicit weights path that does not exist.
        EvaluatorError: the evaluator weights are missing.
    """
    if extractor == EXTRACTOR_NAME:
        p = resolve_weights(evaluator_weights)
        return p, _cached_file_sha(p)
    if extractor == MULTILAYER_NAME:  # the evaluator's weights and the card's stage scales
        from exprbench.metrics.extractors.multilayer import multilayer_card_path, read_multilayer_card

        p = resolve_weights(evaluator_weights)
        card_file = multilayer_card_path(p)
        if not card_file.is_file():
            raise ExtractorUnavailable(f"no {MULTILAYER_NAME} card {card_file} for evaluator {p} "
                                       f"(make it: exprbench evaluator multilayer --weights {p})")
        sha = _cached_file_sha(p)
        card = read_multilayer_card(card_file, sha)
        return p, hashlib.sha256(f"{sha}|{card['card_sha256']}".encode()).hexdigest()
    if extractor == INCEPTION_NAME:
        p = inception_weights_path(inception_weights)
        if p is None:
            raise ExtractorUnavailable(
                f"Inception-V3 weights not found (looked in {Path(torch.hub.get_dir()) / 'checkpoints' / INCEPTION_FILE}); "
                f"offline: pass --inception-weights PATH to a copy of {INCEPTION_URL}")
        return p, _cached_file_sha(p)
    raise MetricInputError(f"unknown feature extractor {extractor!r} (known: {', '.join(EXTRACTORS)})")


# --------------------------------------------------------------------------------------------
# cache names


def fidelity_cache_root() -> Path:
    """torch-fidelity's cache root for exprbench: ``$EXPRBENCH_CACHE/fidelity``."""
    return cache_dir() / "fidelity"


def reference_cache_name(data_sha256: str, split: str, label_set: str, extractor: str,
                         weights_sha256: str, n_samples: int, selection: str = "all") -> str:
    """A torch-fidelity cache name for real reference features, keyed by their content.

    torch-fidelity keys its cache by the name alone, so the name carries a hash of everything the
    features depend on: the decoded data's content hash (:meth:`~exprbench.data.FaceDataset.content_sha256`:
    pixels, labels and split ids, whichever file they came from), the preprocessing version
    (:data:`PREPROCESS_VERSION`), split, label set, extractor name, extractor weights sha256, the number of
    images and how they were selected (e.g. ``class=happy``, ``seed=1``).
    """
    parts = {"v": CACHE_VERSION, "data": data_sha256, "preprocess": PREPROCESS_VERSION, "split": split,
             "label_set": label_set, "extractor": extractor, "weights": weights_sha256, "n": int(n_samples),
             "selection": selection}
    h = content_key(parts)
    return f"exprbench-real-{split}-{label_set}-n{int(n_samples)}-{h}"


FAKE_PREFIX = "exprbench-gen-"


def generated_cache_name(images: torch.Tensor, extractor: str, weights_sha256: str) -> str:
    """Cache name of a generated set (content hash), so several metrics on one set extract it once.

    Entries under this prefix are temporary: :func:`drop_generated_cache` removes them.
    """
    h = hashlib.sha256(f"{tensor_sha256(images)}|{extractor}|{weights_sha256}".encode()).hexdigest()[:24]
    return f"{FAKE_PREFIX}{h}"


def drop_generated_cache(names: Iterable[str], cache_root: Path | None = None) -> None:
    """Delete torch-fidelity cache files of the given generated-set names."""
    root = Path(cache_root or fidelity_cache_root())
    for name in set(names):
        for f in root.glob(f"{name}-*.pt"):
            f.unlink(missing_ok=True)



def is_cached(name: str | None) -> bool:
    """Whether torch-fidelity's cache holds features or statistics under ``name``."""
    return name is not None and any(fidelity_cache_root().glob(f"{name}-*.pt"))
