"""Small builders for the metrics tests: real-data subsets, CSV files, tiny evaluators, tiny runs.

Not used by the metrics themselves. Everything here is sized to run in seconds on a 2-core CPU.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from exprbench.data import SPLITS, FaceDataset, load_fer2013

from exprbench.metrics.extractors.evaluator_net import NetConfig
from exprbench.metrics.extractors.classifier_training import TrainRecipe, train_evaluator


def real_data_path() -> Path | None:
    """FER2013 at ``$EXPRBENCH_DATA`` or ``../shared/data/fer2013.zip`` relative to the repo; None if absent."""
    env = os.environ.get("EXPRBENCH_DATA")
    if env and Path(env).exists():
        return Path(env)
    p = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013.zip"
    return p if p.exists() else None


def subset(ds: FaceDataset, per_class: dict[str, int], seed: int = 0) -> FaceDataset:
    """A FaceDataset with at most ``per_class[split]`` images of each class in each split (random, seeded)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for si, s in enumerate(SPLITS):
        for k in range(len(ds.class_names)):
            idx = torch.nonzero((ds.splits == si) & (ds.labels == k)).flatten()
            keep.append(idx[torch.randperm(len(idx), generator=g)[: per_class.get(s, 0)]])
    idx = torch.cat(keep).sort().values
    return FaceDataset(ds.images[idx], ds.labels[idx], ds.splits[idx], ds.class_names, ds.label_set,
                       ds.fingerprint, ds.source)


def write_fer_csv(ds: FaceDataset, path: Path) -> Path:
    """Write ``ds`` (fer7) as a ``fer2013.csv`` (emotion,pixels,Usage) file."""
    usage = ("Training", "PublicTest", "PrivateTest")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, lab, sp in zip(ds.images, ds.labels.tolist(), ds.splits.tolist()):
            w.writerow([lab, " ".join(map(str, img.flatten().tolist())), usage[sp]])
    return path


def tiny_evaluator(ds: FaceDataset, out: Path, width: int = 4, feat_dim: int = 32, epochs: int = 2,
                   seed: int = 0) -> Path:
    """Train a tiny evaluator on ``ds`` (seconds) and write weights + card to ``out``; returns ``out``."""
    train_evaluator(ds, out, NetConfig(width=width, feat_dim=feat_dim, dropout=0.1),
                    TrainRecipe(epochs=epochs, batch_size=64, lr=0.05, seed=seed), "cpu", command="tests")
    return out


def tiny_run(data_csv: Path, out: Path, model: str = "cgan", steps: int = 2, dataset: FaceDataset | None = None) -> Path:
    """Train ``model`` for a few steps at a tiny width into run directory ``out``."""
    from exprbench.runs.config import resolve_config
    from exprbench.runs.harness import Trainer

    cfg = resolve_config(model, "default", [
        "model.ch=4", f"train.steps={steps}", "train.batch_size=8", "train.device=cpu", "train.sample_every=0",
        "train.ckpt_every=0", "train.samples_per_class=1", "train.log_every=1", f"data.path={data_csv}"])
    Trainer(cfg, out, dataset=dataset or load_fer2013(data_csv), progress=False).run()
    return out
