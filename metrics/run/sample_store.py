"""Generated image sets of one checkpoint kept on disk (``RUN_DIR/.generated/``), so that an evaluation that
was stopped, or a re-evaluation of the same checkpoint (another evaluator, new protocols), reads the images
instead of drawing them again. For a diffusion model that matters: its 30,500 images of the default set
take about 2.3 hours on one CPU thread (35 network evaluations each), a GAN's a few seconds.

A set is stored under the sha256 of everything that decides its pixels: the checkpoint file's sha256, the
model's name and sampling settings (sampler steps, guidance weight), the count, seed and label draw, and the
generation batch size (the random stream is consumed per batch). A file is a ``torch.save`` dict
``{"images": uint8 N x C x H x W, "labels": int64 N or None, "key": {...}}`` read back with
``weights_only=True``; one that does not match its key is ignored and drawn again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from exprbench.core.io import atomic_open

FOLDER = ".generated"


class SampleStore:
    """The generated sets of one checkpoint in one folder.

    Args:
        folder: where the sets go (``RUN_DIR/.generated``; created on the first save).
        identity: what fixes the model's samples besides the set: ``{"checkpoint_sha256", "model", "sampling",
            "batch"}`` (JSON-serialisable).
        keep: leave the files after the evaluation (:meth:`finish`); otherwise they go once eval.json is written.
    """

    def __init__(self, folder: str | Path, identity: dict, keep: bool = False) -> None:
        self.folder, self.identity, self.keep = Path(folder), dict(identity), keep
        self.written: list[Path] = []

    def _key(self, n: int, seed: int, per_class: bool) -> dict:
        return {**self.identity, "n": int(n), "seed": int(seed), "per_class": bool(per_class)}

    def _path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return self.folder / f"{key['n']}-s{key['seed']}-{'pc' if key['per_class'] else 'dist'}-{digest}.pt"

    def load(self, n: int, seed: int, per_class: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """``(images, labels)`` of the set, or None when it is not stored (or the file does not match its key)."""
        key = self._key(n, seed, per_class)
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a truncated or foreign file: draw the set again (and overwrite it)
            return None
        if not isinstance(obj, dict) or obj.get("key") != json.loads(json.dumps(key, default=str)):
            return None
        images = obj.get("images")
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.shape[0] != n:
            return None
        self.written.append(path)
        return images, obj.get("labels")

    def save(self, n: int, seed: int, per_class: bool, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Store a set (atomically)."""
        key = self._key(n, seed, per_class)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            torch.save({"images": images, "labels": labels, "key": json.loads(json.dumps(key, default=str))}, fh)
        self.written.append(path)

    def finish(self) -> None:
        """After eval.json is written: delete this evaluation's sets unless ``keep``."""
        if self.keep:
            return
        for path in self.written:
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
