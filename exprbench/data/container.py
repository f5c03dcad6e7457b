"""The dataset container: :class:`FaceDataset` (decoded images, labels, splits) and :class:`DataSpec`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from exprbench.core.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataSpec:
    """What a model plugin needs to know about its data: image shape and classes.

    Attributes:
        channels, height, width: image shape (FER2013: 1 x 48 x 48; CelebA: 3 x 64 x 64).
        class_names: one name per label index, e.g. ``("angry", ..., "neutral")``, ``("not_smiling", "smiling")``.
        label_set: name of the label set (``fer7``, ``fer6``, ``celeba-<Attribute>``).
    """

    channels: int
    height: int
    width: int
    class_names: tuple[str, ...]
    label_set: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class FaceDataset:
    """Decoded images with labels and split ids, on one device.

    Attributes:
        images: uint8 tensor N x C x H x W, values 0..255 (FER2013: C=1, H=W=48; CelebA: C=3, H=W=64).
        labels: int64 tensor N, indices into ``class_names``.
        splits: int8 tensor N, 0 train / 1 val / 2 test.
        class_names: names of the label indices.
        label_set: ``fer7``, ``fer6`` or ``celeba-<Attribute>``.
        fingerprint: sha256 (hex) of the source file's content (or of a folder's files; CelebA: of
            its lists, images and preprocessing), so caches derived from this data can be keyed by it.
        source: the path the data was read from.

    :meth:`content_sha256` hashes the decoded content (pixels, labels, splits), whatever file it came from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    splits: torch.Tensor
    class_names: tuple[str, ...]
    label_set: str
    fingerprint: str
    source: str
    _content_sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    def content_sha256(self) -> str:
        """sha256 (hex) of the decoded content: image shape and bytes, labels, split ids, class names and
        label set, in row order; computed once per object (FER2013: 83 MB, a fraction of a second).

        Two files holding the same pixels (a zip and a CSV written from it) give the same hash; one changed
        pixel changes it. Caches of values computed from the images are keyed by it, not by the file.
        """
        if self._content_sha256 is None:
            h = hashlib.sha256(repr((tuple(self.images.shape), tuple(self.class_names), self.label_set)).encode())
            for t, dtype in ((self.images, torch.uint8), (self.labels, torch.int64), (self.splits, torch.int8)):
                h.update(t.detach().to("cpu", dtype).contiguous().numpy().data)
            self._content_sha256 = h.hexdigest()
        return self._content_sha256

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def spec(self) -> DataSpec:
        _, c, h, w = self.images.shape
        return DataSpec(c, h, w, tuple(self.class_names), self.label_set)

    def split(self, name: str) -> "FaceDataset":
        """Return the subset of split ``name`` (``train``, ``val``, ``test`` or ``all``).

        Raises:
            DataError: unknown split name, or the split holds no image.
        """
        if name == "all":
            return self
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (known: {', '.join(SPLITS)}, all)")
        mask = self.splits == SPLITS.index(name)
        if not bool(mask.any()):
            raise DataError(f"split {name!r} of {self.source} is empty")
        return FaceDataset(
            self.images[mask], self.labels[mask], self.splits[mask], self.class_names,
            self.label_set, self.fingerprint, self.source,
        )

    def to(self, device: torch.device | str) -> "FaceDataset":
        """Move the tensors to ``device`` (the whole FER2013 is 83 MB as uint8, CelebA at 64x64 2.5 GB)."""
        return FaceDataset(
            self.images.to(device), self.labels.to(device), self.splits.to(device),
            self.class_names, self.label_set, self.fingerprint, self.source,
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Image counts as ``{split: {class_name: n}}`` over the splits present."""
        out: dict[str, dict[str, int]] = {}
        for i, s in enumerate(SPLITS):
            mask = self.splits == i
            per = torch.bincount(self.labels[mask].cpu(), minlength=len(self.class_names))
            out[s] = {n: int(k) for n, k in zip(self.class_names, per.tolist())}
        return out
